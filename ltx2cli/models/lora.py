"""LoRA files: read the common key styles and fuse any number of them into weights.

- Key styles (`models/lora_keys.py`): official/PEFT `<m>.lora_A.weight` [r, in] +
  `<m>.lora_B.weight` [out, r] (adapter-named `<m>.lora_A.<name>.weight` too), kohya/ComfyUI
  `<m>.lora_down.weight` + `<m>.lora_up.weight` + optional `<m>.alpha` (kohya's flattened
  `lora_unet_...` names too), and diffusers (`transformer.` with diffusers' module names).
  Every style is turned into the model's own module names before matching. The reference
  accepts only the first style (it deletes `diffusion_model.`); for those files the result
  is the same.
- Checks before any LoRA tensor is read (from the file header): a LoRA of the other
  generation (`lora_generation` of its targets vs the model's weights), pairs whose shapes do
  not fit their weight, and a LoRA none of whose modules exist in the model are one-line
  errors; some unmatched modules are a warning (the reference ignores them silently).
- Alpha: the reference ignores `.alpha` tensors; ComfyUI and kohya scale by alpha/rank. We
  apply alpha/rank when the file has an alpha for that module (what its author intended);
  `use_alpha=False`, or a `Compat` whose `lora_alpha` is off (`1.0.0`), reproduces the
  reference. Official and PEFT files carry no alpha, so they fuse exactly as in the reference
  either way.
- Fusion reproduces the reference (gotchas.md "LoRA", ltx-core `fuse_loras.py`): per weight
  and LoRA, `(B·s) @ A` is computed in the LoRA file's dtype and cast to the build dtype;
  several LoRAs' products are stacked and summed (`torch.stack(...).sum(0)`), then added:
  plain weights `ΔW + W`, fp8-cast weights `fp8(ΔW + W)` with W dequantised to the delta's
  dtype, fp8-scaled-mm weights `W·s_w + ΔW` in float32 re-quantised with a fresh per-tensor
  scale. The build dtype is the dtype the model is built in (`load_component(dtype=...)`;
  the weight's own dtype when fusing into a loaded module; bfloat16 for float8 weights), so
  a float32 build fuses in float32. Once any strength is non-zero every LoRA takes part (a
  zero-strength one adds zeros); all strengths zero leaves the weights untouched.
- Fusion runs on the weight's device when it is CUDA/MPS, else on CUDA when available, else
  on the CPU. LoRA tensors are staged on `lora_load_device` (CPU by default); each pair moves
  to the fusion device only while its weight is fused.
- `load_component(..., loras=...)` fuses each weight as it is read, before the dtype cast, as
  the reference builder does; `fuse_loras` fuses into an already loaded module. Unfusing: the
  originals are copied (to `backup_device`, CPU by default) before fusion and copied back by
  `LoraFusion.unfuse()`, bit for bit.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ltx2cli.compat import Compat
from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.models.checkpoint import CheckpointInfo, read_checkpoint
from ltx2cli.models.fp8 import FP8_DTYPES, Fp8ScaledLinear, quantize_per_tensor, to_fp8
from ltx2cli.models.lora_keys import DOWN, UP, lora_generation, parse_lora_key, split_strength

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA file and the strength it is fused with."""

    path: Path
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.strength):
            raise UsageError(f"LoRA strength {self.strength} for {self.path.name} is not finite")


def parse_lora(value: str | os.PathLike[str] | LoraSpec | tuple[Any, float]) -> LoraSpec:
    """`LoraSpec` from a spec, a `(path, strength)` pair, or text `PATH[:STRENGTH]`."""
    if isinstance(value, LoraSpec):
        return value
    if isinstance(value, tuple):
        return LoraSpec(Path(value[0]), float(value[1]))
    path, strength = split_strength(os.fspath(value))
    return LoraSpec(Path(path), strength)


class _Pairs:
    """Modules by pair completeness, over `down` and `up` dicts keyed by module."""

    down: dict[str, Any]
    up: dict[str, Any]

    @property
    def modules(self) -> list[str]:
        """Modules with both halves of the pair."""
        return sorted(self.down.keys() & self.up.keys())

    @property
    def incomplete(self) -> list[str]:
        """Modules with only one half of the pair."""
        return sorted(self.down.keys() ^ self.up.keys())


@dataclass
class LoraLayout(_Pairs):
    """Which keys of a LoRA file hold each module's pair and alpha (read from the header).

    Modules are the model's own module names, whatever the file's key style.
    """

    info: CheckpointInfo
    down: dict[str, str]  # module → key of A / lora_down [r, in]
    up: dict[str, str]  # module → key of B / lora_up [out, r]
    alpha: dict[str, str]  # module → key of its 0-d alpha
    styles: list[str]  # key styles seen, most common first
    ignored: list[str]  # keys of kinds that are not fused (.diff, dora_scale, ...)

    @property
    def style(self) -> str:
        return self.styles[0]

    def pair_shapes(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
        """`{module: (A shape, B shape)}` for the complete pairs."""
        t = self.info.tensors
        return {m: (t[self.down[m]].shape, t[self.up[m]].shape) for m in self.modules}

    def target_shapes(self) -> dict[str, tuple[int, int]]:
        """`{module: (out, in)}`: the (flattened) shape of the weight each pair updates."""
        return {m: (b[0], math.prod(a[1:])) for m, (a, b) in self.pair_shapes().items()}

    def rank(self, module: str) -> int:
        return self.info.tensors[self.down[module]].shape[0]


def lora_layout(path: str | os.PathLike[str] | CheckpointInfo) -> LoraLayout:
    """Parse a LoRA file's header; CheckpointError if it holds no LoRA pairs."""
    info = path if isinstance(path, CheckpointInfo) else read_checkpoint(path)
    slots: dict[str, dict[str, str]] = {DOWN: {}, UP: {}, "alpha": {}}
    styles: dict[str, int] = {}
    ignored: list[str] = []
    for key in info.tensors:
        parsed = parse_lora_key(key)
        if parsed is None:
            ignored.append(key)
            continue
        slot = slots[parsed.kind]
        if parsed.module in slot:
            raise CheckpointError(
                f"{info.path.name}: keys {slot[parsed.module]!r} and {key!r} are the same "
                f"LoRA tensor of {parsed.module}",
                "the file mixes key styles; keep one of them",
            )
        slot[parsed.module] = key
        styles[parsed.style] = styles.get(parsed.style, 0) + 1
    if not slots[DOWN] and not slots[UP]:
        raise CheckpointError(
            f"{info.path.name} has no LoRA weights (no lora_A/lora_B or lora_down/lora_up keys)",
            "pass a LoRA file, or load full checkpoints with --model",
        )
    ranked = sorted(styles, key=lambda s: -styles[s])
    return LoraLayout(info, slots[DOWN], slots[UP], slots["alpha"], ranked, ignored)


@dataclass
class LoraWeights(_Pairs):
    """The pairs of one LoRA file, keyed by the model's module names."""

    path: Path
    down: dict[str, torch.Tensor]  # A / lora_down [r, in]
    up: dict[str, torch.Tensor]  # B / lora_up [out, r]
    alpha: dict[str, float]
    style: str  # "official", "comfy" or "diffusers" (lora_keys.STYLES)
    ignored: list[str] = field(default_factory=list)  # keys of kinds we do not fuse (.diff, ...)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def ranks(self) -> list[int]:
        return sorted({self.down[m].shape[0] for m in self.modules})

    @property
    def scaled_by_alpha(self) -> bool:
        """Whether fusing with `use_alpha=True` differs from the reference (which ignores alpha)."""
        return any(self.alpha[m] != self.down[m].shape[0] for m in self.modules if m in self.alpha)

    def scale(self, module: str, use_alpha: bool | Compat = True) -> float:
        if not alpha_applies(use_alpha) or module not in self.alpha:
            return 1.0
        return self.alpha[module] / self.down[module].shape[0]


def alpha_applies(use_alpha: bool | Compat) -> bool:
    """Whether kohya `.alpha` tensors scale a LoRA: the flag itself, or a `Compat`'s switch."""
    return use_alpha.lora_alpha if isinstance(use_alpha, Compat) else bool(use_alpha)


def read_lora(
    path: str | os.PathLike[str] | LoraLayout,
    *,
    device: torch.device | str = "cpu",
    modules: Iterable[str] | None = None,
) -> LoraWeights:
    """Read a LoRA safetensors file onto `device` (CPU by default); only `modules` if given."""
    layout = path if isinstance(path, LoraLayout) else lora_layout(path)
    wanted = set(layout.down.keys() | layout.up.keys() if modules is None else modules)
    from safetensors import safe_open

    info = layout.info
    with safe_open(str(info.path), framework="pt", device=str(torch.device(device))) as f:
        down = {m: f.get_tensor(k) for m, k in layout.down.items() if m in wanted}
        up = {m: f.get_tensor(k) for m, k in layout.up.items() if m in wanted}
        alpha = {m: float(f.get_tensor(k).float().item()) for m, k in layout.alpha.items()}
    return LoraWeights(info.path, down, up, alpha, layout.style, layout.ignored, info.metadata)


@dataclass
class LoraMatch:
    """How a LoRA's modules meet a model's weights."""

    matched: dict[str, str]  # module → weight key
    mismatched: dict[str, str]  # module → "B [..] @ A [..] vs weight [..]"
    unmatched: list[str]  # modules the model does not have


def match_lora(
    pairs: Mapping[str, tuple[Sequence[int], Sequence[int]]],
    weights: Mapping[str, Sequence[int]],
) -> LoraMatch:
    """Match `{module: (A shape, B shape)}` against a model's `{"<m>.weight": shape}`."""
    match = LoraMatch({}, {}, [])
    for module, (a, b) in sorted(pairs.items()):
        key = f"{module}.weight"
        if key not in weights:
            match.unmatched.append(module)
            continue
        shape = tuple(weights[key])
        fits = (
            len(shape) >= 2
            and b[0] == shape[0]
            and math.prod(b[1:]) == a[0]
            and math.prod(a[1:]) == math.prod(shape[1:])
        )
        if fits:
            match.matched[module] = key
        else:
            match.mismatched[module] = f"B {list(b)} @ A {list(a)} vs weight {list(shape)}"
    return match


def check_generation(layout: LoraLayout, weights: Mapping[str, Sequence[int]]) -> None:
    """CheckpointError when the LoRA's targets say one generation and the weights the other."""
    lora_gen, evidence = lora_generation(layout.target_shapes())
    model_shapes = {
        k.removesuffix(".weight"): s for k, s in weights.items() if k.endswith(".weight")
    }
    model_gen, _ = lora_generation(model_shapes)
    if lora_gen and model_gen and lora_gen != model_gen:
        raise CheckpointError(
            f"{layout.info.path.name} is a LoRA for LTX-{lora_gen} (it targets {evidence}), "
            f"the model is LTX-{model_gen}",
            f"use a LoRA trained for LTX-{model_gen}, or an LTX-{lora_gen} model",
        )


@dataclass
class LoraPlan:
    """Which weights each LoRA touches: `terms[weight key] = [(A, B, factor), ...]` in order."""

    terms: dict[str, list[tuple[torch.Tensor, torch.Tensor, float]]]
    unmatched: dict[str, list[str]]  # per LoRA file: module names with no weight in the model
    incomplete: dict[str, list[str]]  # per LoRA file: modules with only lora_A or only lora_B
    ignored: dict[str, list[str]]  # per LoRA file: keys of kinds that are not fused
    count: int  # LoRA files


def plan_loras(
    weights: Mapping[str, torch.Size | tuple[int, ...]],
    loras: Sequence[Any] | Iterable[Any],
    *,
    lora_load_device: torch.device | str = "cpu",
    use_alpha: bool | Compat = True,
) -> LoraPlan:
    """Check every LoRA against `weights` (`{"<m>.weight": shape}`), then read its pairs.

    Raises CheckpointError (naming the file and module) for a LoRA of the other generation,
    a pair whose shapes do not fit its weight, or a LoRA that matches no weight at all.
    """
    specs = [parse_lora(x) for x in loras]
    # The reference skips fusion only when every strength is zero.
    active = any(spec.strength != 0 for spec in specs)
    plan = LoraPlan({}, {}, {}, {}, len(specs))
    for spec in specs:
        layout = lora_layout(spec.path)
        check_generation(layout, weights)
        match = match_lora(layout.pair_shapes(), weights)
        name = spec.path.name
        if match.mismatched:
            module, detail = next(iter(match.mismatched.items()))
            raise CheckpointError(
                f"{name}: the LoRA for {module} does not fit the model ({detail})",
                "this LoRA was trained for a different model",
            )
        if layout.modules and not match.matched:
            raise CheckpointError(
                f"{name}: none of its {len(layout.modules)} LoRA modules exist in the model "
                f"(e.g. {match.unmatched[0]})",
                f"see `ltx2 lora inspect {spec.path} --model MODEL`",
            )
        label = str(spec.path)
        plan.incomplete[label], plan.ignored[label] = layout.incomplete, layout.ignored
        plan.unmatched[label] = match.unmatched
        if match.unmatched:
            logger.warning(
                "%s: %d LoRA modules match no weight (e.g. %s)",
                name,
                len(match.unmatched),
                match.unmatched[0],
            )
        if not active:
            continue
        lora = read_lora(layout, device=lora_load_device, modules=match.matched)
        for module, key in match.matched.items():
            factor = spec.strength * lora.scale(module, use_alpha)
            plan.terms.setdefault(key, []).append((lora.down[module], lora.up[module], factor))
    return plan


def fusion_device(device: torch.device | str) -> torch.device:
    """Where a weight on `device` is fused: its own accelerator, else CUDA if present, else CPU."""
    device = torch.device(device)
    if device.type in ("cuda", "mps"):
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def fusion_dtype(weight: torch.dtype, build: torch.dtype | None = None) -> torch.dtype:
    """The dtype LoRA products are cast to and summed in: the build dtype; without one the
    weight's own dtype, or bfloat16 for a float8 weight (the reference dequantises to bf16)."""
    if build is not None:
        return build
    return torch.bfloat16 if weight in FP8_DTYPES else weight


def lora_delta(
    terms: Iterable[tuple[torch.Tensor, torch.Tensor, float]],
    shape: torch.Size | tuple[int, ...],
    *,
    dtype: torch.dtype = torch.bfloat16,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """`Σ_i dtype((B_i·s_i) @ A_i)` shaped `shape`, as the reference computes it.

    Each product is taken in its LoRA file's dtype, cast to `dtype` (the build dtype), and
    several products are stacked and summed in `dtype`.
    """
    parts = []
    for a, b, factor in terms:
        own = torch.promote_types(a.dtype, b.dtype)  # the file's dtype (A and B share it)
        a2 = a.to(device=device, dtype=own).flatten(1)  # (r, in)
        b2 = b.to(device=device, dtype=own).flatten(1)  # (out, r)
        parts.append(torch.matmul(b2 * factor, a2).to(dtype))
    if not parts:
        raise ValueError("lora_delta needs at least one term")
    # One product is its own sum: skip the stacked copy (same values, less memory).
    delta = parts[0] if len(parts) == 1 else torch.stack(parts).sum(0)
    return delta.reshape(shape)


def fuse_weight(
    weight: torch.Tensor, delta: torch.Tensor, weight_scale: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`(new weight, new weight_scale or None)`; `delta` (from `lora_delta`) may be consumed.

    Plain weights become `delta + weight` (dtype promotion, then the caller's build cast);
    float8 weights are dequantised to the delta's dtype, added and re-cast; `weight_scale`
    marks an fp8-scaled-mm weight: dequantise, add in float32, re-quantise.
    """
    if weight_scale is not None:
        full = weight.float() * weight_scale.float() + delta.float()
        return quantize_per_tensor(full)
    if weight.dtype in FP8_DTYPES:
        return to_fp8(delta.add_(weight.to(delta.dtype))), None
    if torch.promote_types(delta.dtype, weight.dtype) == delta.dtype:
        return delta.add_(weight), None  # in place: same values as `delta + weight`
    return delta + weight, None


@dataclass
class LoraFusion:
    """What a fusion did; `unfuse()` restores the original weights exactly (if backed up)."""

    model: nn.Module
    targeted: list[str]  # parameter names that changed
    unmatched: dict[str, list[str]]  # per LoRA file: module names with no weight in the model
    incomplete: dict[str, list[str]]  # per LoRA file: modules with only lora_A or only lora_B
    ignored: dict[str, list[str]]  # per LoRA file: keys of kinds that are not fused
    backups: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_targeted(self) -> int:
        return len({n.removesuffix("_scale") for n in self.targeted if n.endswith(".weight")})

    def unfuse(self) -> None:
        if self.targeted and not self.backups:
            raise UsageError("these LoRAs were fused without a backup", "reload the model instead")
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, original in self.backups.items():
                params[name].data = original.to(params[name].device)
        self.backups.clear()
        self.targeted = []


def fuse_loras(
    model: nn.Module,
    loras: Sequence[Any] | Iterable[Any],
    *,
    lora_load_device: torch.device | str = "cpu",
    use_alpha: bool | Compat = True,
    keep_backup: bool = True,
    backup_device: torch.device | str = "cpu",
) -> LoraFusion:
    """Fuse every LoRA (`LoraSpec`, path, `(path, strength)` or `PATH:STRENGTH`) into `model`.

    The weights are fused in their current dtype (float8 ones through bfloat16); to fuse a
    checkpoint's stored weights before the build cast, pass the LoRAs to `load_component`.
    """
    params = dict(model.named_parameters())
    modules = dict(model.named_modules())
    plan = plan_loras(
        {n: p.shape for n, p in params.items()},
        loras,
        lora_load_device=lora_load_device,
        use_alpha=use_alpha,
    )
    fusion = LoraFusion(model, [], plan.unmatched, plan.incomplete, plan.ignored)
    for key, terms in plan.terms.items():
        w = params[key]
        module = modules[key.removesuffix(".weight")]
        scale_key = f"{key}_scale" if isinstance(module, Fp8ScaledLinear) else None
        names = [key, scale_key] if scale_key else [key]
        if keep_backup:
            for n in names:
                fusion.backups[n] = params[n].detach().to(backup_device, copy=True)
        where = fusion_device(w.device)
        delta = lora_delta(terms, w.shape, dtype=fusion_dtype(w.dtype), device=where)
        scale = params[scale_key].detach().to(where) if scale_key else None
        new_w, new_scale = fuse_weight(w.detach().to(where), delta, scale)
        with torch.no_grad():
            w.data = new_w.to(device=w.device, dtype=w.dtype)
            if scale_key and new_scale is not None:
                params[scale_key].data = new_scale.to(params[scale_key].device)
        fusion.targeted.extend(names)
    logger.info("fused %d LoRA(s) into %d weights", plan.count, fusion.num_targeted)
    return fusion
