"""LoRA fusion: every key style, several LoRAs with strengths, alpha, fp8 weights, exact unfuse,
and the reference arithmetic (gotchas.md "LoRA") into loaded modules and while loading."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ltx2cli.compat import CURRENT, V1_0_0
from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.models.checkpoint import TRANSFORMER_PREFIX
from ltx2cli.models.fp8 import Fp8ScaledLinear, apply_fp8_cast
from ltx2cli.models.loading import load_component
from ltx2cli.models.lora import LoraSpec, fuse_loras, parse_lora, read_lora
from ltx2cli.models.lora_keys import lora_generation, lora_key, parse_lora_key
from ltx2cli.models.tiny import write_tiny_checkpoint

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


def _reference_delta(terms, build=BF16) -> torch.Tensor:
    """gotchas.md "LoRA": `matmul(B·s, A)` in the LoRA file's dtype, cast to the build dtype,
    several LoRAs `torch.stack(...).sum(0)`."""
    return torch.stack([((b * s) @ a).to(build) for a, b, s in terms]).sum(0)


def _expected(base: torch.Tensor, terms) -> torch.Tensor:
    """`W' = ΔW + W`, the model built in W's dtype."""
    return _reference_delta(terms, base.dtype) + base


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


def test_float32_weights_fuse_in_float32(tmp_path):
    """A float32 model gets the float32 delta: no step through bfloat16 (issue 9, item 1)."""
    model = _model(torch.float32)
    target = model.get_submodule(TARGETS[0])
    base = target.weight.detach().clone()
    fuse_loras(model, [_write_lora(tmp_path / "l.safetensors", "peft")])
    fused = target.weight.detach()
    a, b = _pair(1)
    assert fused.dtype == torch.float32
    assert torch.equal(fused, (b @ a) + base)
    assert not torch.equal(fused.to(BF16).float(), fused)


def test_the_product_is_taken_in_the_lora_files_dtype(tmp_path):
    """A float32 LoRA on a bf16 model: `bf16(B @ A)` from float32 factors, not a bf16 matmul."""
    model = _model()
    target = model.get_submodule(TARGETS[0])
    base = target.weight.detach().clone()
    fuse_loras(model, [_write_lora(tmp_path / "l.safetensors", "peft")])
    a, b = _pair(1)
    expected = (b @ a).to(BF16) + base
    assert torch.equal(target.weight, expected)
    assert not torch.equal(expected, (b.to(BF16) @ a.to(BF16)) + base)  # the routes differ


def test_a_bf16_lora_multiplies_in_bf16(tmp_path):
    a, b = (t.to(BF16) for t in _pair(3))
    path = tmp_path / "l.safetensors"
    save_file({f"diffusion_model.{TARGETS[0]}.lora_A.weight": a,
               f"diffusion_model.{TARGETS[0]}.lora_B.weight": b}, str(path))  # fmt: skip
    model = _model(torch.float32)
    base = model.get_submodule(TARGETS[0]).weight.detach().clone()
    fuse_loras(model, [(path, 0.3)])
    expected = ((b * 0.3) @ a).float() + base
    assert torch.equal(model.get_submodule(TARGETS[0]).weight, expected)


def test_several_loras_are_stacked_and_summed_in_the_build_dtype(tmp_path):
    paths = [_write_lora(tmp_path / f"{i}.safetensors", "peft", seed=10 * i) for i in (1, 2, 3)]
    strengths = (0.9, -0.6, 1.7)
    model = _model()
    base = model.get_submodule(TARGETS[0]).weight.detach().clone()
    fuse_loras(model, list(zip(paths, strengths, strict=True)))
    terms = [(*_pair(10 * i), s) for i, s in zip((1, 2, 3), strengths, strict=True)]
    deltas = [((b * s) @ a).to(BF16) for a, b, s in terms]
    expected = torch.stack(deltas).sum(0) + base
    assert torch.equal(model.get_submodule(TARGETS[0]).weight, expected)
    sequential = deltas[0] + deltas[1] + deltas[2] + base  # bf16 rounding after every add
    assert not torch.equal(sequential, expected)


def test_kohya_alpha_scales_by_alpha_over_rank_unless_disabled(tmp_path):
    alpha = 2.0
    path = _write_lora(tmp_path / "k.safetensors", "kohya", alpha=alpha)
    assert read_lora(path).scaled_by_alpha
    a, b = _pair(1)
    cases = ((True, alpha / RANK), (False, 1.0), (CURRENT, alpha / RANK), (V1_0_0, 1.0))
    for use_alpha, scale in cases:
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
    zero delta (stacked with the others)."""
    model = _model()
    base = {t: model.get_submodule(t).weight.detach().clone() for t in TARGETS}
    zero = _write_lora(tmp_path / "z.safetensors", "peft", modules=TARGETS)
    active = _write_lora(tmp_path / "a.safetensors", "peft", seed=7, modules=TARGETS[1:])
    fusion = fuse_loras(model, [(zero, 0.0), (active, 1.0)])
    assert fusion.num_targeted == 2
    assert torch.equal(model.get_submodule(TARGETS[0]).weight, base[TARGETS[0]])
    expected = _expected(base[TARGETS[1]], [(*_pair(2), 0.0), (*_pair(7), 1.0)])
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
    expected = ((b @ a).to(BF16) + stored.to(BF16)).to(torch.float8_e4m3fn)
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
    a, b = _pair(1)
    full = stored.float() * w_scale + (b @ a).to(BF16).float()
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
    assert weights.style == "comfy"
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


@pytest.mark.parametrize(
    ("stored", "build"),
    [(BF16, torch.float32), (BF16, BF16), (BF16, None), (torch.float32, BF16)],
)
def test_load_component_fuses_in_the_build_dtype(tmp_path, stored, build):
    """While loading: the product cast to the build dtype (the stored one when None), added
    to the stored weight, then the build cast; a float32 build keeps float32 detail."""
    ckpt = write_tiny_checkpoint(tmp_path / "t.safetensors", "2.3", dtype=stored)
    raw = TRANSFORMER_PREFIX + TARGETS[0] + ".weight"
    with safe_open(str(ckpt), framework="pt") as f:
        w = f.get_tensor(raw)
    g = torch.Generator().manual_seed(4)
    a = torch.randn(RANK, w.shape[1], generator=g)
    b = torch.randn(w.shape[0], RANK, generator=g)
    lora = tmp_path / "l.safetensors"
    save_file({f"diffusion_model.{TARGETS[0]}.lora_A.weight": a,
               f"diffusion_model.{TARGETS[0]}.lora_B.weight": b}, str(lora))  # fmt: skip
    model = load_component(ckpt, "transformer", dtype=build, loras=[(lora, 0.8)])
    target = build or stored
    expected = (((b * 0.8) @ a).to(target) + w).to(target)
    fused = model.get_submodule(TARGETS[0]).weight
    assert fused.dtype == target
    assert torch.equal(fused, expected)
    if target == torch.float32:
        assert not torch.equal(fused.to(BF16).float(), fused)
    untouched = model.get_submodule("transformer_blocks.0.attn1.to_k").weight
    with safe_open(str(ckpt), framework="pt") as f:
        assert torch.equal(untouched, f.get_tensor(raw.replace("to_q", "to_k")).to(target))


# Literal keys of one module per style, as each tool writes them (diffusers: its LTX-2 LoRA
# converter's renames; kohya: flattened names), and the model module they address.
STYLE_KEYS = [
    ("transformer_blocks.0.audio_ff.net.0.proj", "official",
     "diffusion_model.transformer_blocks.0.audio_ff.net.0.proj.lora_A.weight"),
    ("transformer_blocks.0.audio_ff.net.0.proj", "comfy",
     "diffusion_model.transformer_blocks.0.audio_ff.net.0.proj.lora_down.weight"),
    ("transformer_blocks.0.audio_ff.net.0.proj", "comfy",
     "lora_unet_transformer_blocks_0_audio_ff_net_0_proj.lora_down.weight"),
    ("transformer_blocks.3.attn1.to_out.0", "diffusers",
     "transformer.transformer_blocks.3.attn1.to_out.0.lora_A.weight"),
    ("adaln_single.linear", "diffusers", "transformer.time_embed.linear.lora_A.weight"),
    ("audio_adaln_single.emb.timestep_embedder.linear_1", "diffusers",
     "transformer.audio_time_embed.emb.timestep_embedder.linear_1.lora_A.weight"),
    ("audio_patchify_proj", "diffusers", "transformer.audio_proj_in.lora_A.weight"),
    ("av_ca_a2v_gate_adaln_single.linear", "diffusers",
     "transformer.av_cross_attn_video_a2v_gate.linear.lora_A.weight"),
    ("prompt_adaln_single.linear", "diffusers", "transformer.prompt_adaln.linear.lora_A.weight"),
    ("text_embedding_projection.aggregate_embed", "diffusers",
     "connectors.text_proj_in.lora_A.weight"),
    ("text_embedding_projection.aggregate_embed", "official",
     "text_embedding_projection.aggregate_embed.lora_A.weight"),
]  # fmt: skip


@pytest.mark.parametrize(("module", "style", "key"), STYLE_KEYS)
def test_every_key_style_names_the_models_module(module, style, key):
    parsed = parse_lora_key(key)
    assert (parsed.module, parsed.kind, parsed.style) == (module, "down", style)
    if not key.startswith("lora_unet_"):  # we write dotted names, not kohya's flattened ones
        assert lora_key(module, "down", style) == key


@pytest.mark.parametrize(
    ("shapes", "generation"),
    [
        ({"transformer_blocks.0.attn1.to_q": (DIM, DIM)}, None),
        ({"transformer_blocks.0.attn1.to_gate_logits": (2, DIM)}, "2.3"),
        ({"prompt_adaln_single.linear": (2 * DIM, DIM)}, "2.3"),
        ({"caption_projection.linear_1": (DIM, DIM)}, "2.0"),
        ({"adaln_single.linear": (6 * DIM, DIM)}, "2.0"),  # 6 AdaLN rows per block in 2.0
        ({"audio_adaln_single.linear": (9 * DIM, DIM)}, "2.3"),  # 9 in 2.3
    ],
)
def test_lora_generation_from_module_names_and_adaln_widths(shapes, generation):
    assert lora_generation(shapes)[0] == generation


def _tiny_lora(path, ckpt, modules, rank=RANK):
    """A LoRA in the official style for `modules` of a tiny checkpoint, shapes from its header."""
    g = torch.Generator().manual_seed(9)
    tensors = {}
    with safe_open(str(ckpt), framework="pt") as f:
        for module in modules:
            out_f, in_f = f.get_slice(f"{TRANSFORMER_PREFIX}{module}.weight").get_shape()
            tensors[f"diffusion_model.{module}.lora_A.weight"] = torch.randn(
                rank, in_f, generator=g
            )
            tensors[f"diffusion_model.{module}.lora_B.weight"] = torch.randn(
                out_f, rank, generator=g
            )
    save_file(tensors, str(path))
    return path


def test_a_lora_of_the_other_generation_is_refused_in_one_line(tmp_path):
    new = write_tiny_checkpoint(tmp_path / "23.safetensors", "2.3")
    old = write_tiny_checkpoint(tmp_path / "20.safetensors", "2.0")
    lora = _tiny_lora(
        tmp_path / "l.safetensors", new, ["transformer_blocks.0.attn1.to_gate_logits"]
    )
    with pytest.raises(CheckpointError) as err:
        load_component(old, "transformer", loras=[lora])
    assert "l.safetensors is a LoRA for LTX-2.3" in err.value.message
    assert "the model is LTX-2.0" in err.value.message
    assert "\n" not in str(err.value)


def test_a_lora_that_matches_nothing_is_refused(tmp_path):
    path = _write_lora(
        tmp_path / "l.safetensors", "peft", modules=["transformer_blocks.9.attn1.to_q"]
    )
    with pytest.raises(CheckpointError, match=r"none of its 1 LoRA modules exist in the model"):
        fuse_loras(_model(), [path])


@pytest.mark.parametrize(("name", "generation"), [("ltx-2-19b", "2.0"), ("ltx-2.3-22b", "2.3")])
def test_released_transformers_name_their_generation_and_every_module_round_trips(
    manifest, name, generation
):
    keys = manifest(name)["components"]["transformer"]["keys"]
    shapes = {
        k.removeprefix(TRANSFORMER_PREFIX).removesuffix(".weight"): s
        for k, s in keys.items()
        if k.endswith(".weight")
    }
    assert lora_generation(shapes)[0] == generation
    for module in shapes:
        kohya = "lora_unet_" + module.replace(".", "_") + ".lora_down.weight"
        assert parse_lora_key(kohya).module == module
        for style in ("official", "comfy", "diffusers"):
            assert parse_lora_key(lora_key(module, "up", style)).module == module
