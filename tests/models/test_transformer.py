"""Behaviour of the LTX-2 / LTX-2.3 transformer on tiny random weights."""

from __future__ import annotations

import pytest
import torch

from ltx2cli.diffusion.patchify import (
    AudioLatentShape,
    VideoLatentShape,
    audio_positions,
    video_positions,
)
from ltx2cli.errors import CheckpointError
from ltx2cli.families import GEN_2_0, GEN_2_3
from ltx2cli.models import tiny
from ltx2cli.models.transformer import (
    BatchedPerturbations,
    Modality,
    Perturbation,
    PerturbationType,
    build_transformer,
    velocity_to_x0,
)

SEED = 0
SIGMA = 0.7
GRID = (2, 2, 3)  # latent frames, rows, columns → 12 video tokens
AUDIO_TOKENS = 5
CONTEXT_TOKENS = 6
_TINY = tiny.tiny_config(GEN_2_3)["transformer"]
CHANNELS = _TINY["in_channels"]
AUDIO_CHANNELS = _TINY["audio_out_channels"]
CAPTION = _TINY["caption_channels"]
# LTX-2.3 contexts arrive at each stream's inner width (heads × head dim).
VIDEO_INNER = _TINY["num_attention_heads"] * _TINY["attention_head_dim"]
AUDIO_INNER = _TINY["audio_num_attention_heads"] * _TINY["audio_attention_head_dim"]
FPS = 24.0
ATOL = 1e-5
GENERATIONS = ["19b", "2.3"]


def tiny_config(generation: str, num_layers: int = 2) -> dict:
    """The tiny checkpoint's transformer section with `num_layers` blocks."""
    config = tiny.tiny_config(GEN_2_0 if generation == "19b" else GEN_2_3)
    config["transformer"]["num_layers"] = num_layers
    return {"transformer": config["transformer"]}


def tiny_model(generation: str = "2.3", num_layers: int = 2, **options):
    model = build_transformer(tiny_config(generation, num_layers), **options).eval()
    model.init_weights(torch.Generator().manual_seed(SEED))
    return model


def inputs(generation: str = "2.3", batch: int = 1, seed: int = 1, sigma: float = SIGMA):
    g = torch.Generator().manual_seed(seed)
    n_video = GRID[0] * GRID[1] * GRID[2]
    video_ctx = VIDEO_INNER if generation == "2.3" else CAPTION
    audio_ctx = AUDIO_INNER if generation == "2.3" else CAPTION
    sigmas = torch.full((batch,), sigma)
    video = Modality(
        latent=torch.randn(batch, n_video, CHANNELS, generator=g),
        sigma=sigmas,
        timesteps=torch.full((batch, n_video, 1), sigma),
        positions=video_positions(VideoLatentShape(batch, CHANNELS, *GRID), FPS),
        context=torch.randn(batch, CONTEXT_TOKENS, video_ctx, generator=g),
    )
    audio = Modality(
        latent=torch.randn(batch, AUDIO_TOKENS, AUDIO_CHANNELS, generator=g),
        sigma=sigmas,
        timesteps=torch.full((batch, AUDIO_TOKENS, 1), sigma),
        positions=audio_positions(AudioLatentShape(batch, AUDIO_CHANNELS, AUDIO_TOKENS, 1)),
        context=torch.randn(batch, CONTEXT_TOKENS, audio_ctx, generator=g),
    )
    return video, audio


def replace(m: Modality, **changes) -> Modality:
    import dataclasses

    return dataclasses.replace(m, **changes)


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("mode", ["av", "video_only", "audio_only", "video_disabled"])
def test_output_shapes_and_finite(generation: str, mode: str) -> None:
    model = tiny_model(generation)
    video, audio = inputs(generation, batch=2)
    if mode == "video_only":
        audio = None
    elif mode == "audio_only":
        video = None
    elif mode == "video_disabled":
        video = replace(video, enabled=False)
    with torch.no_grad():
        v, a = model(video, audio)
    if video is None:
        assert v is None
    else:
        assert v.shape == video.latent.shape and torch.isfinite(v).all()
    if audio is None:
        assert a is None
    else:
        assert a.shape == audio.latent.shape and torch.isfinite(a).all()


@pytest.mark.parametrize("generation", GENERATIONS)
def test_same_seed_same_weights_and_outputs(generation: str) -> None:
    first, second = tiny_model(generation), tiny_model(generation)
    for (key, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), key
    video, audio = inputs(generation)
    with torch.no_grad():
        out1, out2 = first(video, audio), second(video, audio)
    assert torch.equal(out1[0], out2[0]) and torch.equal(out1[1], out2[1])


def test_uniform_per_token_timesteps_equal_per_sample_timesteps() -> None:
    model = tiny_model()
    video, audio = inputs(batch=2)
    per_sample = (
        replace(video, timesteps=torch.full((2, 1), SIGMA)),
        replace(audio, timesteps=torch.full((2, 1), SIGMA)),
    )
    with torch.no_grad():
        v1, a1 = model(video, audio)
        v2, a2 = model(*per_sample)
    assert torch.allclose(v1, v2, atol=ATOL) and torch.allclose(a1, a2, atol=ATOL)


@pytest.mark.parametrize("generation", GENERATIONS)
def test_clean_conditioning_tokens(generation: str) -> None:
    """Tokens of latent frame 0 with denoise mask 0 (timestep 0): x0 returns them unchanged,
    and their modulation differs from noisy tokens."""
    model = tiny_model(generation)
    video, audio = inputs(generation)
    first_frame = GRID[1] * GRID[2]
    mask = torch.ones(1, video.latent.shape[1], 1)
    mask[:, :first_frame] = 0
    conditioned = replace(video, timesteps=mask * SIGMA)
    with torch.no_grad():
        v_noisy, _ = model(video, audio)
        v_cond, _ = model(conditioned, audio)
    x0 = velocity_to_x0(conditioned.latent, v_cond, conditioned.timesteps)
    assert torch.equal(x0[:, :first_frame], conditioned.latent[:, :first_frame])
    expected_rest = conditioned.latent[:, first_frame:] - v_cond[:, first_frame:] * SIGMA
    assert torch.allclose(x0[:, first_frame:], expected_rest, atol=ATOL)
    assert not torch.allclose(v_cond[:, :first_frame], v_noisy[:, :first_frame], atol=1e-3)


@pytest.mark.parametrize(
    ("kind", "stream"),
    [(PerturbationType.SKIP_VIDEO_SELF_ATTN, 0), (PerturbationType.SKIP_AUDIO_SELF_ATTN, 1)],
)
def test_skipped_self_attention_is_identity_attention_map(kind, stream: int) -> None:
    """Skipping self-attention everywhere equals attending only to oneself (an identity mask)."""
    model = tiny_model()
    streams = list(inputs())
    perturbed = BatchedPerturbations([[Perturbation(kind)]], model.num_blocks)
    tokens = streams[stream].latent.shape[1]
    identity = list(streams)
    identity[stream] = replace(streams[stream], attention_mask=torch.eye(tokens)[None])
    with torch.no_grad():
        skipped = model(*streams, perturbed)
        masked = model(*identity)
        plain = model(*streams)
    assert torch.allclose(skipped[stream], masked[stream], atol=ATOL)
    assert torch.allclose(skipped[1 - stream], masked[1 - stream], atol=ATOL)
    assert not torch.allclose(skipped[stream], plain[stream], atol=1e-3)


def test_self_attention_skip_is_per_sample() -> None:
    model = tiny_model()
    video, audio = inputs(batch=1)
    pair = [
        replace(
            m,
            **{
                f: torch.cat([getattr(m, f)] * 2)
                for f in ("latent", "sigma", "timesteps", "positions", "context")
            },
        )
        for m in (video, audio)
    ]
    skip = Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, blocks=(1,))
    with torch.no_grad():
        mixed, _ = model(*pair, BatchedPerturbations([[skip], []], model.num_blocks))
        alone, _ = model(video, audio, BatchedPerturbations([[skip]], model.num_blocks))
        plain, _ = model(video, audio)
    assert torch.allclose(mixed[0], alone[0], atol=ATOL)
    assert torch.allclose(mixed[1], plain[0], atol=ATOL)
    assert not torch.allclose(mixed[0], mixed[1], atol=1e-3)


def test_self_attention_skip_only_acts_in_its_block() -> None:
    model = tiny_model()
    video, audio = inputs()
    captured = []
    hook = model.transformer_blocks[0].register_forward_hook(lambda m, i, o: captured.append(o[0]))
    skip_last = BatchedPerturbations(
        [[Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, blocks=(1,))]], model.num_blocks
    )
    with torch.no_grad():
        plain, _ = model(video, audio)
        skipped, _ = model(video, audio, skip_last)
    hook.remove()
    assert torch.equal(captured[0], captured[1])  # block 0 is untouched
    assert not torch.allclose(plain, skipped, atol=1e-3)


@pytest.mark.parametrize(
    ("kind", "reader"),
    [(PerturbationType.SKIP_A2V_CROSS_ATTN, 0), (PerturbationType.SKIP_V2A_CROSS_ATTN, 1)],
)
def test_skipped_cross_modal_attention_cuts_the_other_stream_off(kind, reader: int) -> None:
    """Without A→V (V→A) attention the video (audio) output ignores the other stream's latent."""
    model = tiny_model()
    video, audio = inputs()
    streams = [video, audio]
    other = 1 - reader
    changed = list(streams)
    changed[other] = replace(streams[other], latent=streams[other].latent + 1.0)
    skip = BatchedPerturbations([[Perturbation(kind)]], model.num_blocks)
    with torch.no_grad():
        base_skip = model(*streams, skip)[reader]
        changed_skip = model(*changed, skip)[reader]
        base = model(*streams)[reader]
        changed_plain = model(*changed)[reader]
    assert torch.allclose(base_skip, changed_skip, atol=ATOL)
    assert not torch.allclose(base, changed_plain, atol=1e-3)


def test_disabled_stream_only_goes_through_the_output_head() -> None:
    model = tiny_model()
    no_blocks = tiny_model(num_layers=0)
    no_blocks.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith("transformer_blocks.")}
    )
    video, audio = inputs()
    disabled = replace(video, enabled=False)
    with torch.no_grad():
        v_disabled, a_with_disabled = model(disabled, audio)
        v_head_only, _ = no_blocks(video, audio)
        _, a_alone = model(None, audio)
    assert torch.allclose(v_disabled, v_head_only, atol=ATOL)
    # The disabled video still feeds the audio stream's V→A attention.
    assert not torch.allclose(a_with_disabled, a_alone, atol=1e-3)


def test_gradient_checkpointing_same_output_and_gradients() -> None:
    model = tiny_model().train()
    video, audio = inputs()

    def loss_and_grads():
        model.zero_grad()
        v, a = model(video, audio)
        (v.square().mean() + a.square().mean()).backward()
        return v.detach(), {
            n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
        }

    plain_out, plain_grads = loss_and_grads()
    model.set_gradient_checkpointing(True)
    ckpt_out, ckpt_grads = loss_and_grads()
    assert torch.allclose(plain_out, ckpt_out, atol=ATOL)
    assert plain_grads.keys() == ckpt_grads.keys() and len(plain_grads) > 0
    for name, grad in plain_grads.items():
        assert torch.allclose(grad, ckpt_grads[name], atol=ATOL), name


def test_legacy_av_adaln_changes_only_the_cross_modal_adaln() -> None:
    current = tiny_model()
    legacy = tiny_model(av_adaln="1.0.0")
    video, audio = inputs()
    other_sigma = replace(
        audio, sigma=torch.tensor([0.3]), timesteps=torch.full((1, AUDIO_TOKENS, 1), 0.3)
    )
    isolate = BatchedPerturbations(
        [
            [
                Perturbation(PerturbationType.SKIP_A2V_CROSS_ATTN),
                Perturbation(PerturbationType.SKIP_V2A_CROSS_ATTN),
            ]
        ],
        current.num_blocks,
    )
    with torch.no_grad():
        # One shared sigma, no conditioned token: both variants feed the same timestep.
        same = [
            torch.allclose(x, y, atol=ATOL)
            for x, y in zip(current(video, audio), legacy(video, audio), strict=True)
        ]
        # Different per-stream sigmas: the cross-modal scale/shift inputs differ.
        differ = current(video, other_sigma)[0], legacy(video, other_sigma)[0]
        # ... unless the A↔V attentions (the only users of that AdaLN) are skipped.
        isolated = current(video, other_sigma, isolate), legacy(video, other_sigma, isolate)
    assert all(same)
    assert not torch.allclose(*differ, atol=1e-3)
    assert torch.equal(isolated[0][0], isolated[1][0]) and torch.equal(
        isolated[0][1], isolated[1][1]
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("rope_type", "interleaved"), ("activation_fn", "gelu"), ("use_middle_indices_grid", False)],
)
def test_unsupported_config_names_the_key(key: str, value) -> None:
    config = tiny_config("2.3")
    config["transformer"][key] = value
    with pytest.raises(CheckpointError, match=key):
        build_transformer(config)


def test_unequal_head_counts_rejected() -> None:
    config = tiny_config("19b")
    config["transformer"]["audio_num_attention_heads"] = 4
    with pytest.raises(CheckpointError, match="audio_num_attention_heads"):
        build_transformer(config)


def test_caption_projection_follows_caption_proj_before_connector_alone() -> None:
    """Like the reference configurator, only `caption_proj_before_connector` decides whether
    the transformer owns caption projections; the other caption keys select the extractor."""
    config = tiny_config("19b")
    config["transformer"]["caption_proj_before_connector"] = True
    keys = build_transformer(config).state_dict().keys()
    assert not any(k.startswith(("caption_projection.", "audio_caption_projection.")) for k in keys)
    assert (
        "caption_projection.linear_1.weight" in build_transformer(tiny_config("19b")).state_dict()
    )


def test_newer_checkpoint_keys_drop_ff_biases_and_prompt_adaln() -> None:
    config = tiny_config("2.3")
    config["transformer"] |= {
        "ff_bias": False,
        "audio_ff_bias": False,
        "use_prompt_adaln_single": False,
    }
    model = build_transformer(config).eval()
    model.init_weights(torch.Generator().manual_seed(SEED))
    keys = model.state_dict().keys()
    assert "transformer_blocks.0.ff.net.0.proj.bias" not in keys
    assert "transformer_blocks.0.audio_ff.net.2.bias" not in keys
    assert not any("prompt_adaln_single" in k for k in keys)
    assert "transformer_blocks.0.prompt_scale_shift_table" in keys
    video, audio = inputs()
    with torch.no_grad():
        first = model(video, audio)
        # Without the prompt AdaLN the text K/V modulation does not depend on sigma: changing
        # only the video sigma (not its per-token timesteps) leaves the video output unchanged.
        second = model(replace(video, sigma=torch.tensor([0.1])), None)
        third = model(video, None)
    assert torch.isfinite(first[0]).all()
    assert torch.equal(second[0], third[0])


def test_cpu_inference_linears_agree_with_the_training_path() -> None:
    """Without autograd the float32 CPU Linears go through oneDNN; the result equals the
    grad-enabled (MKL) forward to float32 rounding."""
    model = tiny_model()
    video, audio = inputs(batch=2)
    with torch.no_grad(), torch.profiler.profile() as prof:
        fast = model(video, audio)
    with torch.enable_grad():
        plain = [t.detach() for t in model(video, audio)]
    if torch.backends.mkldnn.is_available():
        assert any(e.name == "mkldnn::_linear_pointwise" for e in prof.events())
    for x, y in zip(fast, plain, strict=True):
        assert torch.allclose(x, y, atol=ATOL)
