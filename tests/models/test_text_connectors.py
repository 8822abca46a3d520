"""Feature extractors V1/V2 and the embeddings connectors on tiny configs."""

from __future__ import annotations

import math

import pytest
import torch

from ltx2cli.errors import CheckpointError
from ltx2cli.models.text_connectors import (
    FeatureExtractorV1,
    FeatureExtractorV2,
    build_audio_connector,
    build_text_projection,
    build_video_connector,
    encode_text_context,
)

SEED = 0
REGISTERS = 128
SEQ = 256  # two register tiles
HIDDEN = 6  # tiny "Gemma" hidden size
LAYERS = 3  # tiny number of hidden states
VALID = 100
EPS = 1e-6
ATOL = 1e-5


def connector_config(num_layers: int = 1, v2: bool = True) -> dict:
    section = {
        "connector_num_attention_heads": 2,
        "connector_attention_head_dim": 4,
        "connector_num_layers": num_layers,
        "connector_positional_embedding_max_pos": [4096],
        "connector_num_learnable_registers": REGISTERS,
        "frequencies_precision": "float64",
        "caption_channels": HIDDEN,
        "num_attention_heads": 2,
        "attention_head_dim": 4,
        "audio_num_attention_heads": 2,
        "audio_attention_head_dim": 2,
    }
    if v2:
        section |= {
            "audio_connector_num_attention_heads": 2,
            "audio_connector_attention_head_dim": 2,
            "connector_apply_gated_attention": True,
            "caption_proj_before_connector": True,
            "caption_projection_first_linear": False,
            "caption_projection_second_linear": False,
            "caption_proj_input_norm": False,
        }
    return {"transformer": section}


def seeded(module):
    module.init_weights(torch.Generator().manual_seed(SEED))
    return module.eval()


def rms(x: torch.Tensor) -> torch.Tensor:
    return x / torch.sqrt(x.square().mean(-1, keepdim=True) + EPS)


def left_padded_mask(batch: int = 1, valid: int = VALID) -> torch.Tensor:
    mask = torch.zeros(batch, SEQ, dtype=torch.int64)
    mask[:, SEQ - valid :] = 1
    return mask


def test_registers_replace_padding_in_order() -> None:
    """With no blocks the output is rms(valid tokens first, then register p mod 128 at slot p)."""
    connector = seeded(build_video_connector(connector_config(num_layers=0)))
    dim = connector.config.dim
    features = torch.randn(1, SEQ, dim, generator=torch.Generator().manual_seed(1))
    mask = left_padded_mask()
    out, out_mask = connector(features, mask)

    registers = connector.learnable_registers.detach()
    slots = torch.arange(VALID, SEQ) % REGISTERS
    expected = torch.cat([features[0, SEQ - VALID :], registers[slots]])
    assert torch.allclose(out[0], rms(expected), atol=ATOL)
    assert torch.equal(out_mask, torch.ones(1, SEQ, dtype=torch.int64))


@pytest.mark.parametrize("builder", [build_video_connector, build_audio_connector])
def test_padding_side_and_pad_content_do_not_matter(builder) -> None:
    connector = seeded(builder(connector_config(num_layers=2)))
    dim = connector.config.dim
    g = torch.Generator().manual_seed(2)
    valid_tokens = torch.randn(1, VALID, dim, generator=g)
    left = torch.cat([torch.randn(1, SEQ - VALID, dim, generator=g), valid_tokens], dim=1)
    right = torch.cat([valid_tokens, 100 * torch.randn(1, SEQ - VALID, dim, generator=g)], dim=1)
    right_mask = left_padded_mask().flip(-1)
    with torch.no_grad():
        out_left, _ = connector(left, left_padded_mask())
        out_right, _ = connector(right, right_mask)
    assert out_left.shape == (1, SEQ, dim) and torch.isfinite(out_left).all()
    assert torch.allclose(out_left, out_right, atol=ATOL)
    # Every position is attended: changing a register changes the valid tokens' output.
    with torch.no_grad():
        connector.learnable_registers[REGISTERS - 1] += 1.0
        out_changed, _ = connector(left, left_padded_mask())
    assert not torch.allclose(out_changed[:, :VALID], out_left[:, :VALID], atol=1e-4)


def test_connector_widths_follow_generation() -> None:
    v2 = connector_config(v2=True)
    v1 = connector_config(v2=False)
    assert build_audio_connector(v2).config.dim == 4  # audio_connector_* keys
    assert build_audio_connector(v1).config.dim == 8  # falls back to the video connector
    assert build_video_connector(v2).transformer_1d_blocks[0].attn1.to_gate_logits is not None
    assert build_video_connector(v1).transformer_1d_blocks[0].attn1.to_gate_logits is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("connector_num_learnable_registers", 64), ("positional_embedding_theta", 500.0)],
)
def test_connector_ignores_keys_the_reference_does_not_read(key: str, value) -> None:
    """The reference connector hard-codes 128 registers and RoPE theta 10000."""
    config = connector_config(num_layers=1)
    changed = connector_config(num_layers=1)
    changed["transformer"][key] = value
    plain, other = seeded(build_video_connector(config)), seeded(build_video_connector(changed))
    assert other.learnable_registers.shape == (REGISTERS, other.config.dim)
    features = torch.randn(1, SEQ, plain.config.dim, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(
            plain(features, left_padded_mask())[0], other(features, left_padded_mask())[0]
        )


def test_connector_ff_bias_key() -> None:
    config = connector_config()
    config["transformer"]["connector_ff_bias"] = False
    keys = build_video_connector(config).state_dict().keys()
    assert "transformer_1d_blocks.0.ff.net.0.proj.bias" not in keys
    assert "transformer_1d_blocks.0.attn1.to_q.bias" in keys


def hidden_states(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    states = 3 * torch.randn(batch, SEQ, HIDDEN, LAYERS, generator=g) + 1
    mask = torch.cat([left_padded_mask(), left_padded_mask(valid=SEQ - 7)])[:batch]
    return states, mask


def test_feature_extractor_v1_normalisation() -> None:
    extractor = build_text_projection(
        connector_config(v2=False), gemma_hidden_size=HIDDEN, gemma_hidden_states=LAYERS
    )
    assert isinstance(extractor, FeatureExtractorV1)
    seeded(extractor)
    states, mask = hidden_states()
    video, audio = extractor(states, mask)
    assert video is audio

    expected = torch.zeros(2, SEQ, HIDDEN * LAYERS)
    for b in range(2):
        valid = mask[b].bool()
        for layer in range(LAYERS):
            x = states[b, :, :, layer]
            v = x[valid]
            mean = v.sum() / (v.numel() + EPS)
            normed = 8 * (x - mean) / (v.max() - v.min() + EPS)
            expected[b, valid, layer::LAYERS] = normed[valid]  # layer index fastest
    weight = extractor.aggregate_embed.weight.detach()
    assert torch.allclose(video, expected @ weight.T, atol=1e-4)


def test_feature_extractor_v2_rms_and_rescale() -> None:
    extractor = build_text_projection(
        connector_config(v2=True), gemma_hidden_size=HIDDEN, gemma_hidden_states=LAYERS
    )
    assert isinstance(extractor, FeatureExtractorV2)
    seeded(extractor)
    states, mask = hidden_states()
    video, audio = extractor(states, mask)

    normed = rms(states.transpose(-1, -2)).transpose(-1, -2).reshape(2, SEQ, -1)
    normed = normed * mask.unsqueeze(-1)
    for out, proj, width in (
        (video, extractor.video_aggregate_embed, 8),
        (audio, extractor.audio_aggregate_embed, 4),
    ):
        assert out.shape == (2, SEQ, width)
        expected = (
            normed * math.sqrt(width / HIDDEN)
        ) @ proj.weight.detach().T + proj.bias.detach()
        assert torch.allclose(out, expected, atol=1e-4)


def test_partial_v2_config_is_rejected() -> None:
    config = connector_config(v2=True)
    config["transformer"]["caption_proj_input_norm"] = True
    with pytest.raises(CheckpointError, match="caption_proj_input_norm"):
        build_text_projection(config)


def test_encode_text_context_shapes() -> None:
    config = connector_config(num_layers=1, v2=True)
    extractor = seeded(
        build_text_projection(config, gemma_hidden_size=HIDDEN, gemma_hidden_states=LAYERS)
    )
    video_connector = seeded(build_video_connector(config))
    audio_connector = seeded(build_audio_connector(config))
    states, mask = hidden_states()
    with torch.no_grad():
        video, audio, out_mask = encode_text_context(
            states, mask, extractor, video_connector, audio_connector
        )
    assert video.shape == (2, SEQ, 8) and audio.shape == (2, SEQ, 4)
    assert torch.equal(out_mask, torch.ones(2, SEQ, dtype=torch.int64))
    assert torch.isfinite(video).all() and torch.isfinite(audio).all()


@pytest.mark.parametrize("builder", [build_video_connector, build_audio_connector])
def test_interleaved_rope_is_rejected(builder) -> None:
    config = connector_config()
    config["transformer"]["rope_type"] = "interleaved"
    with pytest.raises(CheckpointError, match="rope_type"):
        builder(config)
