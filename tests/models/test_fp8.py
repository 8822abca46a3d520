"""FP8: fp8-cast layers, memory and accuracy on the tiny transformer; fp8-scaled-mm errors."""

from __future__ import annotations

import pytest
import torch

from ltx2cli.errors import DeviceError
from ltx2cli.models.fp8 import (
    FP8_MAX,
    Fp8CastLinear,
    is_fp8_cast_layer,
    quantize_per_tensor,
    to_fp8,
)
from ltx2cli.models.loading import load_component
from ltx2cli.models.tiny import tiny_config, write_tiny_checkpoint
from ltx2cli.models.transformer import Modality

VIDEO_TOKENS, AUDIO_TOKENS, TEXT_TOKENS = 6, 4, 5
SIGMA = 0.6


@pytest.fixture(scope="module")
def tiny_23(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("fp8") / "tiny.safetensors", "2.3")


@pytest.mark.parametrize(
    ("name", "covered"),
    [
        ("transformer_blocks.0.attn1.to_q", True),
        ("transformer_blocks.3.audio_attn2.to_k", True),
        ("transformer_blocks.1.audio_to_video_attn.to_v", True),
        ("transformer_blocks.1.video_to_audio_attn.to_out.0", True),
        ("transformer_blocks.0.ff.net.0.proj", True),
        ("transformer_blocks.0.audio_ff.net.2", True),
        ("transformer_blocks.0.attn1.to_gate_logits", False),
        ("transformer_blocks.0.attn1.q_norm", False),
        ("patchify_proj", False),
        ("adaln_single.linear", False),
        ("caption_projection.linear_1", False),
        ("proj_out", False),
        ("audio_proj_out", False),
    ],
)
def test_fp8_cast_covers_exactly_the_block_linears(name, covered):
    assert is_fp8_cast_layer(name) is covered


def _param_bytes(module, layers=None) -> int:
    return sum(
        p.numel() * p.element_size()
        for n, p in module.named_parameters()
        if layers is None or n.rpartition(".")[0] in layers
    )


def test_fp8_cast_halves_the_covered_layers_and_keeps_the_rest(tiny_23):
    ref = load_component(tiny_23, "transformer", dtype=torch.bfloat16)
    q = load_component(tiny_23, "transformer", dtype=torch.bfloat16, quantization="fp8-cast")
    covered = {n for n, m in q.named_modules() if isinstance(m, Fp8CastLinear)}
    expected = {
        n for n, m in ref.named_modules() if isinstance(m, torch.nn.Linear) and is_fp8_cast_layer(n)
    }
    assert covered == expected and covered
    assert _param_bytes(q, covered) * 2 == _param_bytes(ref, covered)
    # Everything else is untouched, so total bytes drop by exactly half the covered bytes.
    assert _param_bytes(ref) - _param_bytes(q) == _param_bytes(ref, covered) // 2
    for name, p in q.named_parameters():
        layer = name.rpartition(".")[0]
        assert (p.dtype == torch.float8_e4m3fn) == (layer in covered), name
        if layer not in covered:
            assert torch.equal(p, ref.get_parameter(name)), name


def _inputs(config: dict, generator: torch.Generator) -> tuple[Modality, Modality]:
    t = config["transformer"]
    video_dim = t["num_attention_heads"] * t["attention_head_dim"]
    audio_dim = t["audio_num_attention_heads"] * t["audio_attention_head_dim"]

    def modality(tokens: int, channels: int, axes: int, ctx: int) -> Modality:
        start = torch.rand(1, axes, tokens, 1, generator=generator) * 4
        return Modality(
            latent=torch.randn(1, tokens, channels, generator=generator),
            sigma=torch.tensor([SIGMA]),
            timesteps=torch.full((1, tokens, 1), SIGMA),
            positions=torch.cat([start, start + 1], dim=-1),
            context=torch.randn(1, TEXT_TOKENS, ctx, generator=generator),
        )

    return (
        modality(VIDEO_TOKENS, t["in_channels"], 3, video_dim),
        modality(AUDIO_TOKENS, t["audio_out_channels"], 1, audio_dim),
    )


def test_fp8_cast_outputs_stay_close_to_unquantised(tiny_23):
    torch.manual_seed(0)
    ref = load_component(tiny_23, "transformer", dtype=torch.float32)
    q = load_component(tiny_23, "transformer", dtype=torch.float32, quantization="fp8-cast")
    video, audio = _inputs(tiny_config("2.3"), torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref_v, ref_a = ref(video, audio)
        q_v, q_a = q(video, audio)
    for r, o in ((ref_v, q_v), (ref_a, q_a)):
        assert torch.isfinite(o).all()
        relative = (o - r).norm() / r.norm()
        assert 0 < relative < 0.1  # e4m3 keeps 3 mantissa bits: a few percent of error


def test_fp8_cast_linear_matches_upcast_weights():
    layer = torch.nn.Linear(16, 8)
    q = Fp8CastLinear(16, 8)
    q.weight = torch.nn.Parameter(to_fp8(layer.weight), requires_grad=False)
    q.bias = torch.nn.Parameter(to_fp8(layer.bias), requires_grad=False)
    x = torch.randn(3, 16)
    expected = torch.nn.functional.linear(x, q.weight.float(), q.bias.float())
    torch.testing.assert_close(q(x), expected)


def test_casts_saturate_instead_of_overflowing():
    big = torch.tensor([1e6, -1e6, 3.0])
    assert to_fp8(big).float().tolist() == [FP8_MAX, -FP8_MAX, 3.0]


def test_quantize_per_tensor_uses_amax_over_448():
    w = torch.tensor([[0.5, -2.0], [1.0, 0.25]])
    q, scale = quantize_per_tensor(w)
    assert scale.item() == pytest.approx(2.0 / FP8_MAX)
    assert q.dtype == torch.float8_e4m3fn and scale.dim() == 0
    torch.testing.assert_close(q.float() * scale, w, rtol=2**-3, atol=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_fp8_scaled_mm_without_cuda_is_a_device_error(tiny_23):
    with pytest.raises(DeviceError, match="fp8-scaled-mm needs a CUDA GPU"):
        load_component(tiny_23, "transformer", quantization="fp8-scaled-mm")


def test_fp8_cast_layer_count_on_the_released_19b_transformer(manifest, tmp_path):
    """48 blocks × (6 attentions × q/k/v/out + 2 feed-forwards × 2 Linears) = 1344 layers."""
    from ltx2cli.models.checkpoint import CheckpointInfo, TensorInfo
    from ltx2cli.models.loading import plan_component

    m = manifest("ltx-2-19b")
    keys = m["components"]["transformer"]["keys"]
    tensors = {k: TensorInfo("BF16", tuple(s), 0) for k, s in keys.items()}
    info = CheckpointInfo(tmp_path / "19b.safetensors", 0, tensors, {"config": m["config"]})
    plan = plan_component(info, "transformer", quantization="fp8-cast")
    assert len(plan.fp8_layers) == 48 * (6 * 4 + 2 * 2)
