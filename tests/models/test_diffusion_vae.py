"""The LTX-2.5 diffusion VAE decoder on tiny random weights, checked against direct formulas."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from ltx2cli.errors import CheckpointError
from ltx2cli.models.diffusion_vae import (
    DiffusionDecoderConfig,
    DiffusionVideoDecoder,
    NeighborhoodAttention3D,
    PixelShuffleUpsample,
    build_diffusion_decoder,
    decoder_state_from_raw,
    default_rope_split,
    raw_decoder_state,
)

TINY = DiffusionDecoderConfig(
    in_channels=4,
    head_dim=16,
    stage_channels=(64, 32, 16, 16, 16),
    upsamples=(((1, 2, 2), 2), ((2, 1, 1), 2), ((2, 2, 2), 1), ((2, 2, 2), 1)),
    stage_depths=(1, 1, 1, 1, 2),
    stage_kernels=((3, 3, 3),) * 5,
    stage5_kernel=(3, 3, 3),
    t_emb_dim=16,
)


def tiny_decoder(config: DiffusionDecoderConfig = TINY, seed: int = 0) -> DiffusionVideoDecoder:
    decoder = DiffusionVideoDecoder(config).eval()
    decoder.init_weights(torch.Generator().manual_seed(seed))
    return decoder


def test_released_defaults_and_config_reading() -> None:
    cfg = DiffusionDecoderConfig()
    assert cfg.scale == (8, 32, 32)
    assert cfg.trailing_pad_frames == 2
    assert cfg.min_latent_size == (3, 7, 7)
    assert default_rope_split(64) == (16, 24, 24)
    section = {
        "vae": {
            "_class_name": "CausalDiffusionVAE",
            "model_output_type": "x0",
            "decoder": {
                "stage5_kernel": [11, 11, 11],
                "default_num_inference_steps": 1,
                "timestep_scale_multiplier": 1000.0,
                "stage_channels": [2048, 1024, 512, 512, 256],
                "stage_depths": [4, 6, 4, 2, 8],
                "stage_kernels": [[3, 7, 7], [3, 7, 7], [3, 5, 5], [3, 5, 5], [3, 3, 3]],
                "upsamples": [[[1, 2, 2], 2], [[2, 1, 1], 2], [[2, 2, 2], 1], [[2, 2, 2], 2]],
            },
        }
    }
    assert DiffusionDecoderConfig.from_checkpoint_config(section) == cfg


def test_missing_fields_take_the_reference_code_defaults(caplog) -> None:
    with caplog.at_level("WARNING"):
        cfg = DiffusionDecoderConfig.from_checkpoint_config({"vae": {"decoder": {}}})
    assert cfg.default_num_inference_steps == 2
    assert cfg.timestep_scale_multiplier == 1.0
    assert cfg.model_output_type == "v"
    assert cfg.stage_channels == (1024, 512, 256, 256, 128)
    assert cfg.stage5_kernel == (3, 7, 7)
    assert "default_num_inference_steps" in caplog.text


def test_inconsistent_ladders_are_checkpoint_errors() -> None:
    with pytest.raises(CheckpointError, match="upsamples"):
        DiffusionDecoderConfig(upsamples=(((1, 2, 2), 2),))
    with pytest.raises(CheckpointError, match="head_dim"):
        DiffusionDecoderConfig(head_dim=48)
    with torch.no_grad(), pytest.raises(CheckpointError, match="cannot feed"):
        DiffusionDecoderConfig(stage_channels=(2048, 2048, 512, 512, 256))


def test_pixel_shuffle_channel_order_and_leading_frame_drop() -> None:
    up = PixelShuffleUpsample(2, (2, 1, 2), reduction=1)
    with torch.no_grad():
        up.proj.weight.zero_()
        up.proj.bias.copy_(torch.arange(8.0))  # output channel i carries value i
    x = torch.zeros(1, 3, 1, 1, 2)
    kept = up(x, drop_leading_frame=False)
    assert kept.shape == (1, 6, 1, 2, 2)
    # channel index = c·(pt·ph·pw) + i·(ph·pw) + j·pw + k for frame i, row j, column k
    for i in range(2):
        for k in range(2):
            for c in range(2):
                assert kept[0, i, 0, k, c] == c * 4 + i * 2 + k
    dropped = up(x)
    assert torch.equal(dropped, kept[:, 1:])


def _rope_direct(x, dims_split):
    """Interleaved pairs rotated by pos·10000^(−2i/d) per axis (positions 0-based)."""
    out = torch.empty_like(x, dtype=torch.float64)
    t, h, w = x.shape[1:4]
    start = 0
    for axis, d in enumerate(dims_split):
        inv = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
        n = (t, h, w)[axis]
        pos = torch.arange(n, dtype=torch.float64)
        shape = [1, 1, 1, 1, 1, d // 2]
        shape[axis + 1] = n
        ang = (pos[:, None] * inv[None]).reshape(shape)
        chunk = x[..., start : start + d].double()
        z = torch.complex(chunk[..., 0::2], chunk[..., 1::2]) * torch.polar(
            torch.ones_like(ang), ang
        )
        out[..., start : start + d : 2] = z.real
        out[..., start + 1 : start + d : 2] = z.imag
        start += d
    return out


def test_attention_is_normed_roped_windowed_softmax() -> None:
    torch.manual_seed(0)
    attn = NeighborhoodAttention3D(32, (3, 3, 3), head_dim=16)
    with torch.no_grad():
        for p in attn.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        attn.q_norm.weight.add_(1.0)
        attn.k_norm.weight.add_(1.0)
    x = torch.randn(1, 3, 3, 3, 32)
    with torch.no_grad():
        out = attn(x)
        split = lambda z: z.reshape(1, 3, 3, 3, 2, 16)  # noqa: E731
        # The fused qkv rows are q, k, v in that order (the reference splits them in thirds).
        q_all, k_all, v_all = (x @ attn.qkv.weight.T + attn.qkv.bias).chunk(3, dim=-1)
        q, k, v = (split(z).double() for z in (q_all, k_all, v_all))

        def norm(z, w):
            return z / torch.sqrt(z.pow(2).mean(-1, keepdim=True) + 1e-6) * w.double()

        q = _rope_direct(norm(q, attn.q_norm.weight) / math.sqrt(16), (4, 6, 6))
        k = _rope_direct(norm(k, attn.k_norm.weight), (4, 6, 6))
        # the 3×3×3 kernel covers the whole 3×3×3 volume: plain softmax attention
        flat = lambda z: z.reshape(27, 2, 16).transpose(0, 1)  # noqa: E731
        o = torch.softmax(flat(q) @ flat(k).transpose(-1, -2), -1) @ flat(v)
        o = o.transpose(0, 1).reshape(1, 3, 3, 3, 32)
        expected = o @ attn.proj.weight.double().T + attn.proj.bias.double()
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("frames", "height", "width"), [(1, 1, 1), (2, 1, 2), (4, 3, 3)])
def test_decoded_shape_and_range(frames, height, width) -> None:
    decoder = tiny_decoder()
    latent = torch.randn(1, 4, frames, height, width, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        pixels = decoder(latent, generator=torch.Generator().manual_seed(7))
    assert pixels.shape == (1, 3, 8 * (frames - 1) + 1, 32 * height, 32 * width)
    assert torch.isfinite(pixels).all()


def test_stage5_noise_comes_from_the_callers_generator() -> None:
    decoder = tiny_decoder()
    latent = torch.randn(1, 4, 2, 1, 1, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a = decoder(latent, generator=torch.Generator().manual_seed(7))
        b = decoder(latent, generator=torch.Generator().manual_seed(7))
        c = decoder(latent, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)

    # One draw of pixel noise the size of the padded stage-5 volume: the latent is padded to
    # 3×3×3 cells, + 2 trailing frames → 5 latent frames → 33 context frames, cropped by the
    # ghost (2·8) to 17; 3 cells × 8 × 4 = 96 pixels per side.
    used = torch.Generator().manual_seed(7)
    with torch.no_grad():
        decoder(latent, generator=used)
    fresh = torch.Generator().manual_seed(7)
    torch.randn(1, 3, 17, 96, 96, generator=fresh)
    assert torch.equal(torch.randn(5, generator=used), torch.randn(5, generator=fresh))


def test_single_x0_step_is_the_model_prediction_on_noise() -> None:
    decoder = tiny_decoder()
    latent = torch.randn(1, 4, 3, 3, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        pixels = decoder(latent, generator=torch.Generator().manual_seed(11))
        padded = torch.cat([latent, latent[:, :, -1:].expand(-1, -1, 2, -1, -1)], dim=2)
        context = decoder._context(decoder._stage4_input(padded), origin=True, trailing=True)
        noise = torch.randn(
            1, 3, context.shape[1], 96, 96, generator=torch.Generator().manual_seed(11)
        )
        prediction = decoder._predict(noise, context, torch.ones(1))
    torch.testing.assert_close(pixels, prediction[:, :, :17])


def test_v_output_takes_euler_steps() -> None:
    cfg = DiffusionDecoderConfig(
        **{**TINY.__dict__, "model_output_type": "v", "default_num_inference_steps": 2}
    )
    decoder = tiny_decoder(cfg)
    latent = torch.randn(1, 4, 3, 3, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        pixels = decoder(latent, generator=torch.Generator().manual_seed(11))
        padded = torch.cat([latent, latent[:, :, -1:].expand(-1, -1, 2, -1, -1)], dim=2)
        context = decoder._context(decoder._stage4_input(padded), origin=True, trailing=True)
        x = torch.randn(1, 3, context.shape[1], 96, 96, generator=torch.Generator().manual_seed(11))
        x = x - 0.5 * decoder._predict(x, context, torch.ones(1))  # t 1 → 0.5
        x = x - 0.5 * decoder._predict(x, context, torch.full((1,), 0.5))  # t 0.5 → 0
    torch.testing.assert_close(pixels, x[:, :, :17])


def test_raw_layout_round_trip_renames_the_timestep_mlp() -> None:
    decoder = tiny_decoder()
    state = decoder.state_dict()
    raw = raw_decoder_state(state)
    assert "diff_blocks.0.attn.qkv.weight" in raw and "t_embedder.mlp.0.weight" in raw
    assert not any("timestep_embedder" in k for k in raw)
    assert torch.equal(
        raw["t_embedder.mlp.2.bias"], state["t_embedder.timestep_embedder.linear_2.bias"]
    )
    back = decoder_state_from_raw(
        raw | {"type_emb": torch.zeros(3), "coarse_head.weight": torch.ones(1)}
    )
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_legacy_gates_are_folded_into_their_linears() -> None:
    decoder = tiny_decoder()
    raw = raw_decoder_state(decoder.state_dict())
    gate = torch.linspace(0.5, 1.5, 16)
    raw["diff_blocks.0.gate_msa"] = gate
    raw["diff_blocks.1.gate_ctx"] = gate
    state = decoder_state_from_raw(raw)
    assert not any("gate_" in k for k in state)
    w = raw["diff_blocks.0.attn.proj.weight"]
    torch.testing.assert_close(state["diff_blocks.0.attn.proj.weight"], gate[:, None] * w)
    torch.testing.assert_close(
        state["diff_blocks.1.context_proj.bias"], gate * raw["diff_blocks.1.context_proj.bias"]
    )
    decoder.load_state_dict(state)


def test_build_from_metadata_section() -> None:
    with torch.device("meta"):
        decoder = build_diffusion_decoder(
            {
                "vae": {
                    "decoder": TINY.__dict__ | {"upsamples": TINY.upsamples},
                    "model_output_type": "x0",
                }
            }
        )
    assert decoder.config == TINY


def test_bfloat16_decode_runs_and_returns_the_latent_dtype() -> None:
    decoder = tiny_decoder().to(torch.bfloat16)
    latent = torch.randn(1, 4, 2, 1, 1, dtype=torch.bfloat16)
    with torch.no_grad():
        pixels = decoder(latent, generator=torch.Generator().manual_seed(0))
    assert pixels.dtype == torch.bfloat16
    assert torch.isfinite(pixels.float()).all()
    assert F.mse_loss(pixels.float(), pixels.float()) == 0


def test_gated_mlp_in_token_slices_equals_the_whole_formula(monkeypatch) -> None:
    from ltx2cli.models.diffusion_vae import SwiGLU

    mlp = SwiGLU(16)
    x = torch.randn(2, 3, 5, 7, 16)
    with torch.no_grad():
        expected = F.linear(
            F.silu(F.linear(x, mlp.w_gate.weight)) * F.linear(x, mlp.w_up.weight), mlp.w_down.weight
        )
        monkeypatch.setattr("ltx2cli.models.diffusion_vae.SWIGLU_TOKENS", 37)
        sliced = mlp(x)
    assert mlp.w_up.weight.shape == (64, 16)
    torch.testing.assert_close(sliced, expected)


def test_the_vae_class_name_selects_the_decoder_kind() -> None:
    from ltx2cli.models.diffusion_vae import is_diffusion_vae_config

    assert is_diffusion_vae_config({"vae": {"_class_name": "CausalDiffusionVAE"}})
    assert not is_diffusion_vae_config({"vae": {"_class_name": "CausalVideoAutoencoder"}})
    assert not is_diffusion_vae_config({"vae": {}})  # the reference's default is the conv VAE
