"""LoRA fusion: every key style, several LoRAs with strengths, alpha, fp8 weights, exact unfuse."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.models.fp8 import apply_fp8_cast, to_fp8
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


def _expected(base: torch.Tensor, terms) -> torch.Tensor:
    """W + Σ s·scale·(B @ A) in float64, cast back to W's dtype."""
    delta = sum(s * (b.double() @ a.double()) for a, b, s in terms)
    return (base.double() + delta).to(base.dtype)


@pytest.mark.parametrize("style", ["peft", "peft-base", "diffusers", "kohya", "kohya-underscore"])
def test_fused_weight_is_w_plus_strength_times_delta(tmp_path, style):
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
        torch.testing.assert_close(
            model.get_submodule(target).weight, expected, atol=1e-3, rtol=2**-7
        )


def test_kohya_alpha_scales_by_alpha_over_rank_unless_disabled(tmp_path):
    alpha = 2.0
    path = _write_lora(tmp_path / "k.safetensors", "kohya", alpha=alpha)
    a, b = _pair(1)
    for use_alpha, scale in ((True, alpha / RANK), (False, 1.0)):
        model = _model(torch.float32)
        base = model.get_submodule(TARGETS[0]).weight.detach().clone()
        fuse_loras(model, [path], use_alpha=use_alpha)
        expected = _expected(base, [(a, b, scale)])
        torch.testing.assert_close(model.get_submodule(TARGETS[0]).weight, expected)


def test_several_loras_sum_with_their_strengths(tmp_path):
    model = _model(torch.float32)
    base = model.get_submodule(TARGETS[0]).weight.detach().clone()
    first = _write_lora(tmp_path / "a.safetensors", "peft", seed=1)
    second = _write_lora(tmp_path / "b.safetensors", "kohya", seed=5)
    fuse_loras(model, [f"{first}:0.5", LoraSpec(second, -1.25)])
    expected = _expected(base, [(*_pair(1), 0.5), (*_pair(5), -1.25)])
    torch.testing.assert_close(model.get_submodule(TARGETS[0]).weight, expected)


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


def test_fp8_cast_weights_are_upcast_fused_and_requantised(tmp_path):
    model = _model(torch.float32)
    apply_fp8_cast(model)
    target = model.get_submodule(TARGETS[0])
    stored = target.weight.detach().clone()
    path = _write_lora(tmp_path / "l.safetensors", "peft")
    fusion = fuse_loras(model, [path])
    a, b = _pair(1)
    assert target.weight.dtype == torch.float8_e4m3fn
    assert torch.equal(target.weight, to_fp8(stored.float() + b @ a))
    fusion.unfuse()
    assert torch.equal(target.weight.view(torch.uint8), stored.view(torch.uint8))


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
