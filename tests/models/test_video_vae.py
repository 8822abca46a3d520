"""Video VAE behaviour on tiny configs of both generations' block layouts."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.families import GEN_2_0, GEN_2_3
from ltx2cli.models import tiny
from ltx2cli.models.video_vae import (
    DECODE_NOISE_SCALE,
    DECODE_TIMESTEP,
    TIMESTEP_SCALE_MULTIPLIER_INIT,
    VideoVAEConfig,
    build_video_decoder,
    build_video_encoder,
)
from ltx2cli.models.video_vae_blocks import (
    ResnetBlock3D,
    ResStage,
    pixel_patchify,
    pixel_unpatchify,
)

torch.set_num_threads(min(2, torch.get_num_threads()))

GENERATIONS = ["19b", "2.3"]
LATENT_CHANNELS = tiny.TINY_VIDEO_LATENT_CHANNELS
PATCH = 4
FRAMES, HEIGHT, WIDTH = 9, 64, 96  # → latent (2, 2, 3)
LATENT_GRID = (2, 2, 3)
SEED = 0
SINUSOID_CHANNELS = 256  # PixArt timestep projection width
MAX_PERIOD = 10000.0


def tiny_config(generation: str, **vae: object) -> dict:
    """The tiny checkpoint's VAE section (the released block layouts, one res block per stage)."""
    section = tiny.tiny_config(GEN_2_0 if generation == "19b" else GEN_2_3)["vae"]
    return {"vae": {**section, **vae}}


def tiny_encoder(generation: str = "19b", seed: int = SEED, **vae: object):
    encoder = build_video_encoder(tiny_config(generation, **vae))
    encoder.init_weights(torch.Generator().manual_seed(seed))
    return encoder.eval()


def tiny_decoder(generation: str = "19b", seed: int = SEED, **options: object):
    vae = {k: options.pop(k) for k in list(options) if k == "timestep_conditioning"}
    decoder = build_video_decoder(tiny_config(generation, **vae), **options)
    decoder.init_weights(torch.Generator().manual_seed(seed))
    return decoder.eval()


def random_video(frames: int = FRAMES, height: int = HEIGHT, width: int = WIDTH, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, height, width, generator=g) * 2 - 1


def random_latent(seed: int = 2) -> torch.Tensor:
    return torch.randn(
        1, LATENT_CHANNELS, *LATENT_GRID, generator=torch.Generator().manual_seed(seed)
    )


def _stats(module) -> tuple[torch.Tensor, torch.Tensor]:
    stats = module.per_channel_statistics
    view = (1, -1, 1, 1, 1)
    return stats.get_buffer("mean-of-means").view(view), stats.get_buffer("std-of-means").view(view)


def _with_identity_stats(module):
    clone = type(module)(module.config)
    clone.load_state_dict(module.state_dict())
    clone.per_channel_statistics.get_buffer("mean-of-means").zero_()
    clone.per_channel_statistics.get_buffer("std-of-means").fill_(1.0)
    return clone.eval()


@pytest.mark.parametrize("generation", GENERATIONS)
@torch.no_grad()
def test_encode_then_decode_shapes(generation):
    video = random_video()
    latent = tiny_encoder(generation)(video)
    assert latent.shape == (1, LATENT_CHANNELS, *LATENT_GRID)
    decoded = tiny_decoder(generation)(latent)
    assert decoded.shape == video.shape
    assert torch.isfinite(latent).all() and torch.isfinite(decoded).all()


@torch.no_grad()
def test_same_seed_same_weights_same_outputs():
    video, latent = random_video(), random_latent()
    assert torch.equal(tiny_encoder(seed=3)(video), tiny_encoder(seed=3)(video))
    assert torch.equal(tiny_decoder(seed=3)(latent), tiny_decoder(seed=3)(latent))
    assert not torch.allclose(tiny_encoder(seed=3)(video), tiny_encoder(seed=4)(video))


@torch.no_grad()
def test_pixel_patchify_channel_order_matches_the_checkpoint_layout():
    x = torch.arange(2 * 3 * 2 * 8 * 12, dtype=torch.float32).reshape(2, 3, 2, 8, 12)
    expected = torch.empty(2, 3 * PATCH * PATCH, 2, 8 // PATCH, 12 // PATCH)
    # Patchify order: channel c·16 + r·4 + q, q = row (height) offset, r = column (width) offset.
    for c in range(3):
        for r in range(PATCH):
            for q in range(PATCH):
                expected[:, c * 16 + r * 4 + q] = x[:, c, :, q::PATCH, r::PATCH]
    assert torch.equal(pixel_patchify(x, PATCH), expected)
    assert torch.equal(pixel_unpatchify(expected, PATCH), x)


@pytest.mark.parametrize("generation", GENERATIONS)
@torch.no_grad()
def test_encoder_is_causal_in_time(generation):
    encoder = tiny_encoder(generation)
    video = random_video(frames=17)  # latent frames: {0}, {1..8}, {9..16}
    latent = encoder(video)
    later = video.clone()
    later[:, :, 9:] = random_video(frames=8, seed=7)
    changed = encoder(later)
    torch.testing.assert_close(changed[:, :, :2], latent[:, :, :2], rtol=0, atol=1e-6)
    assert (changed[:, :, 2] - latent[:, :, 2]).abs().max() > 1e-3
    middle = video.clone()
    middle[:, :, 1:9] = random_video(frames=8, seed=8)
    torch.testing.assert_close(encoder(middle)[:, :, 0], latent[:, :, 0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("log_var", ["uniform", "per_channel"])
@torch.no_grad()
def test_only_the_means_reach_the_latent(log_var):
    encoder = tiny_encoder(latent_log_var=log_var)
    video = random_video()
    latent = encoder(video)
    head = encoder.conv_out.conv
    assert head.out_channels == (
        LATENT_CHANNELS + 1 if log_var == "uniform" else 2 * LATENT_CHANNELS
    )
    head.weight[LATENT_CHANNELS:] += 1.0  # the log-variance outputs
    head.bias[LATENT_CHANNELS:] += 1.0
    assert torch.equal(encoder(video), latent)


@torch.no_grad()
def test_encoder_output_is_normalised_with_the_statistics():
    encoder = tiny_encoder()
    video = random_video()
    raw = _with_identity_stats(encoder)(video)
    mean, std = _stats(encoder)
    latent = encoder(video)
    torch.testing.assert_close(latent, (raw - mean) / std)
    torch.testing.assert_close(encoder.denormalize(latent), raw)
    torch.testing.assert_close(encoder.normalize(encoder.denormalize(latent)), latent)


@torch.no_grad()
def test_decoder_unnormalises_before_decoding():
    decoder = tiny_decoder()
    latent = random_latent()
    mean, std = _stats(decoder)
    plain = _with_identity_stats(decoder)
    torch.testing.assert_close(decoder(latent), plain(latent * std + mean))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def test_timestep_conditioned_decoder_needs_the_pipeline_generator():
    decoder = tiny_decoder(timestep_conditioning=True)
    with pytest.raises(ValueError, match="generator"):
        decoder(random_latent())


@torch.no_grad()
def test_timestep_conditioned_decoder_noise_follows_the_seed():
    decoder = tiny_decoder(timestep_conditioning=True)
    latent = random_latent()

    def decode(seed: int) -> torch.Tensor:
        return decoder(latent, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(decode(5), decode(5))
    assert not torch.allclose(decode(5), decode(6))


@torch.no_grad()
def test_decode_noise_is_blended_in_normalised_space():
    noisy = tiny_decoder(timestep_conditioning=True)
    quiet = tiny_decoder(timestep_conditioning=True, decode_noise_scale=0.0)
    latent = random_latent()
    seed = 9
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(seed))
    blended = DECODE_NOISE_SCALE * noise + (1 - DECODE_NOISE_SCALE) * latent
    expected = quiet(blended, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(
        noisy(latent, generator=torch.Generator().manual_seed(seed)), expected
    )


@torch.no_grad()
def test_decode_timestep_defaults_to_the_reference_value():
    decoder = tiny_decoder(timestep_conditioning=True, decode_noise_scale=0.0)
    latent = random_latent()
    default = decoder(latent, generator=_gen())
    torch.testing.assert_close(decoder(latent, DECODE_TIMESTEP, _gen()), default)
    assert not torch.allclose(decoder(latent, 0.5, _gen()), default)


@torch.no_grad()
def test_encoder_drops_frames_beyond_8k_plus_1(caplog):
    encoder = tiny_encoder()
    video = random_video(frames=FRAMES + 3)
    with caplog.at_level(logging.WARNING, logger="ltx2cli"):
        latent = encoder(video)
    assert "dropping the last 3" in caplog.text
    torch.testing.assert_close(latent, encoder(video[:, :, :FRAMES]), rtol=0, atol=0)


def test_encoder_rejects_sizes_off_the_32_grid():
    with pytest.raises(UsageError, match="48x96"):
        tiny_encoder()(random_video(height=48))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"_class_name": "CausalDiffusionVAE"}, "_class_name"),
        ({"encoder_blocks": [["attn", {}]]}, "attn"),
        (
            {"decoder_blocks": [["res_x", {"num_layers": 1, "attention_head_dim": 8}]]},
            "attention_head_dim",
        ),
        ({"dims": 2}, "dims"),
        ({"norm_layer": "layer_norm"}, "norm_layer"),
        ({"latent_log_var": "none"}, "latent_log_var"),
    ],
)
def test_unsupported_configs_name_the_key(change, named):
    with pytest.raises(CheckpointError, match=named):
        build_video_encoder(tiny_config("19b", **change))


def test_absent_keys_take_the_reference_configurator_defaults():
    # ltx-core's configurator: missing block lists are empty, missing timestep_conditioning
    # is True (the released configs state both explicitly).
    config = VideoVAEConfig.from_checkpoint_config({"vae": {"latent_channels": LATENT_CHANNELS}})
    assert config.encoder_blocks == () and config.decoder_blocks == ()
    assert config.timestep_conditioning
    assert config.encoder_scale == (1, PATCH, PATCH)
    with torch.device("meta"):
        decoder = build_video_decoder({"vae": {"latent_channels": LATENT_CHANNELS}})
    assert "last_scale_shift_table" in decoder.state_dict()
    assert len(decoder.up_blocks) == 0


def test_plain_compress_blocks_hold_their_conv_directly():
    blocks = [
        ["compress_time", {}],
        ["compress_space", {}],
        ["compress_all_x_y", {"multiplier": 2}],
    ]
    with torch.device("meta"):
        encoder = build_video_encoder(tiny_config("19b", encoder_blocks=blocks))
    shapes = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    # The reference builds these as bare causal convs: `down_blocks.i.conv.{weight,bias}`.
    c = LATENT_CHANNELS
    assert shapes["down_blocks.0.conv.weight"] == (c, c, 3, 3, 3)
    assert shapes["down_blocks.1.conv.weight"] == (c, c, 3, 3, 3)
    assert shapes["down_blocks.2.conv.weight"] == (2 * c, c, 3, 3, 3)
    assert not any(".conv.conv." in k for k in shapes)
    assert encoder.scale == (4, 4 * PATCH, 4 * PATCH)


@torch.no_grad()
def test_plain_temporal_compress_is_a_causal_stride_2_conv():
    encoder = tiny_encoder(encoder_blocks=[["compress_time", {}]], latent_log_var="per_channel")
    video = random_video(frames=5, height=4 * PATCH, width=4 * PATCH)
    conv = encoder.down_blocks[0].conv
    x = encoder.conv_in(pixel_patchify(video, PATCH))
    # Two copies of frame 0 in front, then stride 2 in time: 5 frames → 3.
    padded = torch.cat([x[:, :, :1], x[:, :, :1], x], dim=2)
    expected = F.conv3d(padded, conv.weight, conv.bias, stride=(2, 1, 1), padding=(0, 1, 1))
    torch.testing.assert_close(encoder.down_blocks[0](x), expected)


@torch.no_grad()
def test_vae_time_embedding_is_the_pixart_sinusoid_mlp():
    stage = ResStage(
        LATENT_CHANNELS,
        1,
        norm_layer="pixel_norm",
        padding_mode="zeros",
        timestep_conditioning=True,
    )
    generator = torch.Generator().manual_seed(4)
    for p in stage.parameters():
        p.normal_(0.0, 0.1, generator=generator)
    t = torch.tensor([DECODE_TIMESTEP * TIMESTEP_SCALE_MULTIPLIER_INIT, 1.0])
    half = SINUSOID_CHANNELS // 2
    # [cos, sin] of t · max_period^(-i/half), i < half (flip_sin_to_cos, no frequency shift).
    freqs = torch.tensor([MAX_PERIOD ** (-i / half) for i in range(half)], dtype=torch.float64)
    angles = t.double()[:, None] * freqs[None]
    sinusoids = torch.cat([angles.cos(), angles.sin()], dim=-1).float()
    mlp = stage.time_embedder.timestep_embedder
    expected = mlp.linear_2(F.silu(mlp.linear_1(sinusoids)))
    torch.testing.assert_close(stage.time_embedder(t, torch.float32), expected)
    assert expected.shape == (2, 4 * LATENT_CHANNELS)


@torch.no_grad()
def test_decoder_timestep_is_scaled_by_the_stored_multiplier():
    decoder = tiny_decoder(timestep_conditioning=True, decode_noise_scale=0.0)
    latent = random_latent()
    default = decoder(latent, generator=_gen())  # 0.05 × 1000
    decoder.timestep_scale_multiplier.fill_(1.0)
    scaled = DECODE_TIMESTEP * TIMESTEP_SCALE_MULTIPLIER_INIT
    torch.testing.assert_close(decoder(latent, scaled, _gen()), default)


@torch.no_grad()
def test_decoder_final_modulation_rows_are_shift_then_scale():
    decoder = tiny_decoder(timestep_conditioning=True, decode_noise_scale=0.0)
    latent = random_latent()
    captured: dict[str, torch.Tensor] = {}
    decoder.conv_norm_out.register_forward_hook(lambda m, a, out: captured.update(normed=out))
    decoder.conv_out.register_forward_pre_hook(lambda m, args: captured.update(act=args[0]))
    decoder(latent, generator=_gen())
    t = torch.tensor([DECODE_TIMESTEP]) * TIMESTEP_SCALE_MULTIPLIER_INIT
    embed = decoder.last_time_embedder(t, torch.float32).view(2, -1)
    shift, scale = (decoder.last_scale_shift_table + embed).view(2, -1, 1, 1, 1)
    expected = F.silu(captured["normed"] * (1 + scale) + shift)
    torch.testing.assert_close(captured["act"], expected)


@torch.no_grad()
def test_noise_injection_draws_two_spatial_maps_from_the_given_generator():
    # out = x + conv2(...) + n2 · scale2 with n1, n2 the generator's first two (H, W) draws.
    block = ResnetBlock3D(
        LATENT_CHANNELS, LATENT_CHANNELS, norm_layer="pixel_norm", padding_mode="zeros",
        inject_noise=True,
    )  # fmt: skip
    x = torch.randn(1, LATENT_CHANNELS, 2, 3, 4, generator=_gen(1))
    quiet = block(x, causal=False, generator=_gen(7))
    scale = torch.linspace(0.5, 1.5, LATENT_CHANNELS)
    block.per_channel_scale2.copy_(scale.view(-1, 1, 1))
    noisy = block(x, causal=False, generator=_gen(7))
    g = _gen(7)
    torch.randn(3, 4, generator=g)  # the first map, scaled by per_channel_scale1 = 0
    second = torch.randn(3, 4, generator=g)
    expected = second[None, None] * scale.view(-1, 1, 1, 1)[None]
    torch.testing.assert_close(noisy - quiet, expected.expand_as(noisy))
    with pytest.raises(ValueError, match="generator"):
        block(x, causal=False)
