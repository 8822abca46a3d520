"""FP8: fp8-cast layers, memory and accuracy; pre-quantised files under both policies; the
reference's quantisation arithmetic; LoRAs fused into fp8 weights while loading."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ltx2cli.errors import CheckpointError, DeviceError
from ltx2cli.models.checkpoint import TRANSFORMER_PREFIX
from ltx2cli.models.fp8 import (
    FP8_MAX,
    Fp8CastLinear,
    Fp8ScaledLinear,
    check_scaled_mm_device,
    is_fp8_cast_layer,
    quantize_per_tensor,
    to_fp8,
)
from ltx2cli.models.loading import load_component
from ltx2cli.models.tiny import tiny_config, write_tiny_checkpoint
from ltx2cli.models.transformer import Modality

VIDEO_TOKENS, AUDIO_TOKENS, TEXT_TOKENS = 6, 4, 5
SIGMA = 0.6
FP8 = torch.float8_e4m3fn
BF16 = torch.bfloat16
INPUT_SCALE = 2.0**-6  # static activation scale in the pre-quantised file (float32-exact)
FOLD_ONLY = ".to_gate_logits.weight"  # quantised in the file, but kept high precision by fp8-cast
Q_LAYER = "transformer_blocks.0.attn1.to_q"
GATE_LAYER = "transformer_blocks.0.attn1.to_gate_logits"


@pytest.fixture(scope="module")
def tiny_23(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("fp8") / "tiny.safetensors", "2.3")


@pytest.fixture(scope="module")
def prequantised(tiny_23):
    """The tiny file in the -fp8 layout: float8 weights with 0-d float32 weight/input scales."""
    tensors = load_file(str(tiny_23))
    for raw in [k for k in tensors if k.startswith(TRANSFORMER_PREFIX)]:
        name = raw.removeprefix(TRANSFORMER_PREFIX)
        layer = name.removesuffix(".weight")
        covered = is_fp8_cast_layer(layer) or name.endswith(FOLD_ONLY)
        if name.startswith("transformer_blocks.") and name.endswith(".weight") and covered:
            tensors[raw], tensors[raw + "_scale"] = quantize_per_tensor(tensors[raw])
            tensors[f"{TRANSFORMER_PREFIX}{layer}.input_scale"] = torch.tensor(INPUT_SCALE)
    path = tiny_23.with_name("tiny-fp8.safetensors")
    with safe_open(str(tiny_23), framework="pt") as f:  # keep the embedded config
        metadata = f.metadata()
    save_file(tensors, str(path), metadata=metadata)
    return path


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


def test_quantize_per_tensor_is_the_reference_formula():
    """`s = 448/amax`, `q = clamp(w·s)`, scale = `1/s`: `w / (amax/448)` would round differently."""
    w = torch.randn(64, 48, generator=torch.Generator().manual_seed(1)) * 0.37
    q, scale = quantize_per_tensor(w.to(BF16))
    inv = FP8_MAX / w.to(BF16).float().abs().amax()
    assert torch.equal(q.view(torch.uint8), (w.to(BF16).float() * inv).to(FP8).view(torch.uint8))
    assert scale.dtype == torch.float32 and scale.item() == inv.reciprocal().item()


def test_scaled_linear_quantises_inputs_in_their_own_dtype():
    """x·(1/input_scale) is rounded to bf16 before the float8 cast (reference FP8Linear):
    1·1.0635 rounds to 1.0625 in bf16, a float8 tie that goes to 1.0; in float32 it is 1.125."""
    layer = Fp8ScaledLinear(16, 16, bias=False, device="cpu")
    layer.weight.data = torch.eye(16).to(FP8)
    layer.weight_scale.data = torch.tensor(1.0)
    layer.input_scale.data = torch.tensor(1.0635).reciprocal()
    y = layer(torch.ones(1, 16, dtype=BF16))
    expected = 1.0 * layer.input_scale.item()
    torch.testing.assert_close(y, torch.full((1, 16), expected, dtype=BF16))


@pytest.mark.parametrize("device", ["mps", "meta"])
def test_fp8_scaled_mm_refuses_devices_without_fp8_matmul(device):
    with pytest.raises(DeviceError, match="fp8-scaled-mm needs"):
        check_scaled_mm_device(device)


def test_fp8_scaled_mm_refuses_a_checkpoint_that_is_not_prequantised(tiny_23):
    with pytest.raises(CheckpointError, match="not pre-quantised"):
        load_component(tiny_23, "transformer", quantization="fp8-scaled-mm")


def test_fp8_scaled_mm_loads_the_checkpoint_scales_and_runs_on_cpu(prequantised, tiny_23):
    stored = load_file(str(prequantised))
    model = load_component(prequantised, "transformer", dtype=BF16, quantization="fp8-scaled-mm")
    layers = {n: m for n, m in model.named_modules() if isinstance(m, Fp8ScaledLinear)}
    assert set(layers) == {k.removesuffix(".weight_scale").removeprefix(TRANSFORMER_PREFIX)
                           for k in stored if k.endswith(".weight_scale")}  # fmt: skip
    raw = TRANSFORMER_PREFIX + Q_LAYER
    assert torch.equal(
        layers[Q_LAYER].weight.view(torch.uint8), stored[raw + ".weight"].view(torch.uint8)
    )
    assert layers[Q_LAYER].weight_scale.dtype == torch.float32
    assert layers[Q_LAYER].weight_scale.item() == stored[raw + ".weight_scale"].item()
    assert layers[Q_LAYER].input_scale.item() == INPUT_SCALE
    ref = load_component(tiny_23, "transformer", dtype=BF16)
    video, audio = _inputs(tiny_config("2.3"), torch.Generator().manual_seed(0))
    video, audio = (
        dataclasses.replace(m, latent=m.latent.to(BF16), context=m.context.to(BF16))
        for m in (video, audio)
    )
    with torch.no_grad():
        for r, o in zip(ref(video, audio), model(video, audio), strict=True):
            assert torch.isfinite(o).all()
            assert (o.float() - r.float()).norm() / r.float().norm() < 0.2


def test_fp8_cast_folds_prequantised_scales_through_bf16(prequantised):
    """Reference: `bf16(w_fp8·scale)`, then covered layers back to fp8, the rest cast to dtype."""
    stored = load_file(str(prequantised))
    model = load_component(
        prequantised, "transformer", dtype=torch.float32, quantization="fp8-cast"
    )
    for layer in (Q_LAYER, GATE_LAYER):
        raw = TRANSFORMER_PREFIX + layer
        folded = (stored[raw + ".weight"].float() * stored[raw + ".weight_scale"]).to(BF16)
        weight = model.get_submodule(layer).weight
        if layer == Q_LAYER:
            assert torch.equal(weight.view(torch.uint8), folded.to(FP8).view(torch.uint8))
        else:
            assert weight.dtype == torch.float32 and torch.equal(weight, folded.float())
    assert not any(k.endswith("_scale") for k in model.state_dict())


def _lora_for(path, layers, seed=0):
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer, (out_f, in_f) in layers.items():
        tensors[f"diffusion_model.{layer}.lora_A.weight"] = torch.randn(2, in_f, generator=g)
        tensors[f"diffusion_model.{layer}.lora_B.weight"] = torch.randn(out_f, 2, generator=g)
    save_file(tensors, str(path))
    return path, tensors


def _delta(tensors, layer, strength):
    """gotchas.md "LoRA": `(B·s) @ A` in the LoRA file's dtype (float32), cast to bf16."""
    a = tensors[f"diffusion_model.{layer}.lora_A.weight"]
    b = tensors[f"diffusion_model.{layer}.lora_B.weight"]
    return ((b * strength) @ a).to(BF16)


@pytest.mark.parametrize("quantization", ["fp8-cast", "fp8-scaled-mm"])
def test_loras_fuse_into_fp8_weights_while_loading(prequantised, tmp_path, quantization):
    stored = load_file(str(prequantised))
    raw = TRANSFORMER_PREFIX + Q_LAYER
    shape = tuple(stored[raw + ".weight"].shape)
    path, lora = _lora_for(tmp_path / "l.safetensors", {Q_LAYER: shape})
    strength = 0.5
    model = load_component(
        prequantised, "transformer", dtype=BF16, quantization=quantization,
        loras=[(path, strength)],
    )  # fmt: skip
    layer = model.get_submodule(Q_LAYER)
    delta = _delta(lora, Q_LAYER, strength)
    if quantization == "fp8-cast":
        folded = (stored[raw + ".weight"].float() * stored[raw + ".weight_scale"]).to(BF16)
        expected = (delta + folded.to(FP8).to(BF16)).to(FP8)
    else:
        full = stored[raw + ".weight"].float() * stored[raw + ".weight_scale"] + delta.float()
        inv = FP8_MAX / full.abs().amax()
        expected = (full * inv).clamp(-FP8_MAX, FP8_MAX).to(FP8)
        assert layer.weight_scale.item() == inv.reciprocal().item()
    assert torch.equal(layer.weight.view(torch.uint8), expected.view(torch.uint8))


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


# Everything but the block Linears (AdaLN MLPs and tables, patchify, projections, norms, gate
# logits) is ~2 % of the released transformer, so fp8-cast stores it in just over half the bytes.
FP8_CAST_MAX_FRACTION = 0.55


@pytest.mark.parametrize("name", ["ltx-2-19b", "ltx-2.3-22b"])
def test_fp8_cast_stores_the_released_transformer_in_about_half_the_bf16_bytes(
    manifest, tmp_path, name
):
    from ltx2cli.models.checkpoint import CheckpointInfo, TensorInfo
    from ltx2cli.models.loading import plan_component

    m = manifest(name)
    keys = m["components"]["transformer"]["keys"]
    tensors = {k: TensorInfo("BF16", tuple(s), 0) for k, s in keys.items()}
    info = CheckpointInfo(tmp_path / f"{name}.safetensors", 0, tensors, {"config": m["config"]})
    module = plan_component(info, "transformer", quantization="fp8-cast").module
    state = module.state_dict()
    bf16_bytes = 2 * sum(t.numel() for t in state.values())
    fp8_bytes = sum(t.numel() * (1 if t.dtype == FP8 else 2) for t in state.values())
    assert 0.5 < fp8_bytes / bf16_bytes < FP8_CAST_MAX_FRACTION


def test_large_tensors_cast_to_the_same_bytes_as_one_cast():
    """Casts run piece by piece to bound memory; a tensor of several pieces must not notice."""
    w = torch.randn(3, 2_000_003, generator=torch.Generator().manual_seed(0)).to(BF16) * 40
    inv = FP8_MAX / w.float().abs().amax()
    expected = (w.float() * inv).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    q, scale = quantize_per_tensor(w)
    assert torch.equal(q.view(torch.uint8), expected.view(torch.uint8))
    assert scale.item() == inv.reciprocal().item()
    plain = w.float().clamp(-FP8_MAX, FP8_MAX).to(FP8)
    assert torch.equal(to_fp8(w).view(torch.uint8), plain.view(torch.uint8))
