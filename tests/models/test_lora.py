"""LoRA fusion: every key style, several LoRAs with strengths, alpha, fp8 weights, exact unfuse."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.models.fp8 import Fp8ScaledLinear, apply_fp8_cast
from ltx2cli.models.lora import LoraSpec, fuse_loras, parse_lora, read_lora

DIM = 12
RANK = 4
TARGETS = ("transformer_blocks.0.attn1.to_q", "transformer_blocks.0.ff.net.2")


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn1 = nn.Module()
        self.attn1.to_q = nn.Linear(DIM, DIM)
        self.attn1.to_k = nn.Linear(DIM, DIM)
        self.ff = nn.Module()
        self.ff.net = nn.ModuleList([nn.Identity(), nn.Identity(), nn.Linear(DIM, DIM)])


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.transformer_blocks = nn.ModuleList([Block()])
        self.proj_out = nn.Linear(DIM, 3)


def _model(dtype=torch.bfloat16) -> Model:
    torch.manual_seed(0)
    return Model().to(dtype)


def _pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(RANK, DIM, generator=g), torch.randn(DIM, RANK, generator=g)  # A, B


def _name(module: str, style: str) -> str:
    if style == "kohya-underscore":
        return "lora_unet_" + module.replace(".", "_")
    prefix = {
        "peft": "diffusion_model.",
        "diffusers": "transformer.",
        "peft-base": "base_model.model.",
    }
    return prefix.get(style, "") + module


def _write_lora(path, style: str, seed: int = 1, alpha: float | None = None, modules=TARGETS):
    down, up = (
        ("lora_A", "lora_B")
        if style.startswith(("peft", "diffusers"))
        else ("lora_down", "lora_up")
    )
    tensors = {}
    for i, module in enumerate(modules):
        a, b = _pair(seed + i)
        name = _name(module, style)
        tensors[f"{name}.{down}.weight"] = a
        tensors[f"{name}.{up}.weight"] = b
        if alpha is not None:
            tensors[f"{name}.alpha"] = torch.tensor(alpha)
    save_file(tensors, str(path))
    return path


BF16 = torch.bfloat16


def _reference_delta(terms) -> torch.Tensor:
    """model.md §9 written out: factors in bf16, first `(B·s) @ A`, then `addmm(alpha=s)`."""
    delta = None
    for a, b, s in terms:
        a, b = a.to(BF16), b.to(BF16)
        delta = (b * s) @ a if delta is None else torch.addmm(delta, b, a, alpha=s)
    return delta


def _expected(base: torch.Tensor, terms) -> torch.Tensor:
    """`(ΔW + W)` rounded once to bf16 (the aggregation dtype), then cast to W's dtype."""
    return (_reference_delta(terms).float() + base.float()).to(BF16).to(base.dtype)


@pytest.mark.parametrize("style", ["peft", "peft-base", "diffusers", "kohya", "kohya-underscore"])
def test_fused_weight_follows_the_reference_arithmetic(tmp_path, style):
    model = _model()
    base = {t: model.get_submodule(t).weight.detach().clone() for t in TARGETS}
    path = _write_lora(tmp_path / "l.safetensors", style)
    strength = 0.7
    fusion = fuse_loras(model, [(path, strength)])
    assert fusion.num_targeted == len(TARGETS)
    assert fusion.unmatched[str(path)] == []
    for i, target in enumerate(TARGETS):
        a, b = _pair(1 + i)
        expected = _expected(base[target], [(a, b, strength)])
        assert torch.equal(model.get_submodule(target).weight, expected), target


def test_float32_weights_pass_through_bfloat16_like_the_reference(tmp_path):
    """The reference adds into its bf16 accumulator, so a fused float32 weight is bf16-exact."""
    model = _model(torch.float32)
    target = model.get_submodule(TARGETS[0])
    base = target.weight.detach().clone()
    assert not torch.equal(base.to(BF16).float(), base)  # the model really has fp32 detail
    fuse_loras(model, [_write_lora(tmp_path / "l.safetensors", "peft")])
    fused = target.weight.detach()
    assert fused.dtype == torch.float32
    assert torch.equal(fused.to(BF16).float(), fused)
    assert torch.equal(fused, _expected(base, [(*_pair(1), 1.0)]))


def test_kohya_alpha_scales_by_alpha_over_rank_unless_disabled(tmp_path):
    alpha = 2.0
    path = _write_lora(tmp_path / "k.safetensors", "kohya", alpha=alpha)
    assert read_lora(path).scaled_by_alpha
    a, b = _pair(1)
    for use_alpha, scale in ((True, alpha / RANK), (False, 1.0)):
        model = _model()
        base = model.get_submodule(TARGETS[0]).weight.detach().clone()
        fuse_loras(model, [path], use_alpha=use_alpha)
        expected = _expected(base, [(a, b, scale)])
        assert torch.equal(model.get_submodule(TARGETS[0]).weight, expected)


def test_alpha_equal_to_rank_is_the_reference(tmp_path):
    path = _write_lora(tmp_path / "k.safetensors", "peft", alpha=float(RANK))
    assert not read_lora(path).scaled_by_alpha
    fused = [_model(), _model()]
    for model, use_alpha in zip(fused, (True, False), strict=True):
        fuse_loras(model, [path], use_alpha=use_alpha)
    assert all(torch.equal(x, y) for x, y in zip(*(m.parameters() for m in fused), strict=True))


def test_several_loras_accumulate_in_order_with_their_strengths(tmp_path):
    model = _model()
    base = model.get_submodule(TARGETS[0]).weight.detach().clone()
    first = _write_lora(tmp_path / "a.safetensors", "peft", seed=1)
    second = _write_lora(tmp_path / "b.safetensors", "kohya", seed=5)
    fuse_loras(model, [f"{first}:0.5", LoraSpec(second, -1.25)])
    expected = _expected(base, [(*_pair(1), 0.5), (*_pair(5), -1.25)])
    assert torch.equal(model.get_submodule(TARGETS[0]).weight, expected)


def test_a_zero_strength_lora_still_takes_part_when_another_is_active(tmp_path):
    """Reference: fusion is skipped only when all strengths are 0; a 0-strength LoRA adds a
    zero delta, which still rounds its (float32) targets through bf16."""
    model = _model(torch.float32)
    base = {t: model.get_submodule(t).weight.detach().clone() for t in TARGETS}
    zero = _write_lora(tmp_path / "z.safetensors", "peft", modules=TARGETS[:1])
    active = _write_lora(tmp_path / "a.safetensors", "peft", seed=7, modules=TARGETS[1:])
    fuse_loras(model, [(zero, 0.0), (active, 1.0)])
    assert torch.equal(model.get_submodule(TARGETS[0]).weight, base[TARGETS[0]].to(BF16).float())
    expected = _expected(base[TARGETS[1]], [(*_pair(7), 1.0)])
    assert torch.equal(model.get_submodule(TARGETS[1]).weight, expected)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_unfuse_restores_the_weights_bit_for_bit(tmp_path, dtype):
    model = _model(dtype)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = _write_lora(tmp_path / "l.safetensors", "peft")
    fusion = fuse_loras(model, [path, (path, 0.3)])
    assert not torch.equal(model.get_submodule(TARGETS[0]).weight, before[TARGETS[0] + ".weight"])
    fusion.unfuse()
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_unmatched_and_incomplete_keys_are_reported(tmp_path):
    path = tmp_path / "l.safetensors"
    a, b = _pair(1)
    save_file(
        {
            "diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight": a,
            "diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight": b,
            "diffusion_model.transformer_blocks.7.attn1.to_q.lora_A.weight": a.clone(),
            "diffusion_model.transformer_blocks.7.attn1.to_q.lora_B.weight": b.clone(),
            "diffusion_model.transformer_blocks.0.attn1.to_k.lora_A.weight": a.clone(),
            "diffusion_model.proj_out.diff": torch.zeros(3, DIM),
        },
        str(path),
    )
    fusion = fuse_loras(_model(), [path])
    assert fusion.num_targeted == 1
    assert fusion.unmatched[str(path)] == ["transformer_blocks.7.attn1.to_q"]
    assert fusion.incomplete[str(path)] == ["transformer_blocks.0.attn1.to_k"]
    assert fusion.ignored[str(path)] == ["diffusion_model.proj_out.diff"]


def test_zero_strength_changes_nothing(tmp_path):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fusion = fuse_loras(model, [(_write_lora(tmp_path / "l.safetensors", "peft"), 0.0)])
    assert fusion.num_targeted == 0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_fp8_cast_weights_are_dequantised_to_bf16_fused_and_recast(tmp_path):
    model = _model(torch.float32)
    apply_fp8_cast(model)
    target = model.get_submodule(TARGETS[0])
    stored = target.weight.detach().clone()
    path = _write_lora(tmp_path / "l.safetensors", "peft")
    fusion = fuse_loras(model, [path])
    a, b = _pair(1)
    assert target.weight.dtype == torch.float8_e4m3fn
    expected = (_reference_delta([(a, b, 1.0)]) + stored.to(BF16)).to(torch.float8_e4m3fn)
    assert torch.equal(target.weight.view(torch.uint8), expected.view(torch.uint8))
    fusion.unfuse()
    assert torch.equal(target.weight.view(torch.uint8), stored.view(torch.uint8))


def test_fp8_scaled_weights_are_requantised_with_a_fresh_scale(tmp_path):
    model = _model(torch.float32)
    old = model.transformer_blocks[0].attn1.to_q
    layer = Fp8ScaledLinear(DIM, DIM, device="cpu")
    w_scale = torch.tensor(0.01)
    layer.weight.data = (old.weight.detach() / w_scale).to(torch.float8_e4m3fn)
    layer.weight_scale.data = w_scale
    layer.bias.data = old.bias.detach().to(BF16)
    model.transformer_blocks[0].attn1.to_q = layer
    stored = layer.weight.detach().clone()
    path = _write_lora(tmp_path / "l.safetensors", "peft", modules=TARGETS[:1])
    fuse_loras(model, [path])
    full = stored.float() * w_scale + _reference_delta([(*_pair(1), 1.0)]).float()
    inv = 448.0 / full.abs().amax()  # model.md §10.2: q = clamp(w·448/amax), scale = amax/448
    expected = (full * inv).clamp(-448, 448).to(torch.float8_e4m3fn)
    assert torch.equal(layer.weight.view(torch.uint8), expected.view(torch.uint8))
    assert layer.weight_scale.item() == inv.reciprocal().item()


def test_shape_mismatch_names_the_module(tmp_path):
    path = tmp_path / "l.safetensors"
    save_file(
        {
            "transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(RANK, DIM + 1),
            "transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(DIM, RANK),
        },
        str(path),
    )
    with pytest.raises(CheckpointError, match=r"transformer_blocks\.0\.attn1\.to_q"):
        fuse_loras(_model(), [path])


def test_lora_tensors_are_staged_on_the_requested_device(tmp_path):
    weights = read_lora(_write_lora(tmp_path / "l.safetensors", "kohya", alpha=4.0))
    assert weights.style == "kohya"
    assert weights.ranks == [RANK]
    assert {t.device.type for t in weights.down.values()} == {"cpu"}
    assert weights.scale(TARGETS[0]) == pytest.approx(4.0 / RANK)


def test_non_lora_file_is_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    save_file({"weight": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="has no LoRA weights"):
        read_lora(path)


@pytest.mark.parametrize(
    ("text", "path", "strength"),
    [
        ("a/b.safetensors", "a/b.safetensors", 1.0),
        ("a/b.safetensors:0.5", "a/b.safetensors", 0.5),
        ("C:/x/y.safetensors", "C:/x/y.safetensors", 1.0),
        ("x.safetensors:-2", "x.safetensors", -2.0),
    ],
)
def test_parse_lora_text(text, path, strength):
    spec = parse_lora(text)
    assert (str(spec.path), spec.strength) == (path, strength)


def test_non_finite_strength_is_a_usage_error():
    with pytest.raises(UsageError):
        parse_lora("x.safetensors:nan")
