"""LoRA files: read the common key styles and fuse any number of them into weights.

- Key styles: official/PEFT `<m>.lora_A.weight` [r, in] + `<m>.lora_B.weight` [out, r]
  (adapter-named `<m>.lora_A.<name>.weight` too), kohya/ComfyUI `<m>.lora_down.weight` +
  `<m>.lora_up.weight` + optional `<m>.alpha`, and kohya's underscored module names
  (`lora_unet_transformer_blocks_0_attn1_to_q`). Prefixes `diffusion_model.` (what the official
  trainer writes), `model.diffusion_model.`, `transformer.`, `base_model.model.` and
  `lora_unet_` are removed before the name is matched against the module's weights. The
  reference accepts only the first style (it deletes `diffusion_model.`); for those files the
  result is the same.
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
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ltx2cli.compat import Compat
from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.models.checkpoint import read_checkpoint
from ltx2cli.models.fp8 import FP8_DTYPES, Fp8ScaledLinear, quantize_per_tensor, to_fp8

logger = logging.getLogger(__name__)

_PAIR_KEY = re.compile(
    r"^(?P<module>.+?)\.(?P<kind>lora_A|lora_B|lora_down|lora_up)(\.[^.]+)?\.weight$"
)
_ALPHA_KEY = re.compile(r"^(?P<module>.+)\.alpha$")
_DOWN, _UP = ("lora_A", "lora_down"), ("lora_B", "lora_up")
STRIP_PREFIXES = (
    "base_model.model.",
    "model.diffusion_model.",
    "diffusion_model.",
    "transformer.",
    "lora_unet_",
    "lora_transformer_",
)


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
    text = os.fspath(value)
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            return LoraSpec(Path(head), float(tail))
        except ValueError:
            pass  # a colon that belongs to the path
    return LoraSpec(Path(text), 1.0)


@dataclass
class LoraWeights:
    """The pairs of one LoRA file, keyed by module name with known prefixes removed."""

    path: Path
    down: dict[str, torch.Tensor]  # A / lora_down [r, in]
    up: dict[str, torch.Tensor]  # B / lora_up [out, r]
    alpha: dict[str, float]
    style: str  # "peft" or "kohya"
    ignored: list[str] = field(default_factory=list)  # keys of kinds we do not fuse (.diff, ...)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def modules(self) -> list[str]:
        return sorted(self.down.keys() & self.up.keys())

    @property
    def incomplete(self) -> list[str]:
        """Modules with only one half of the pair."""
        return sorted(self.down.keys() ^ self.up.keys())

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


def _strip(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in STRIP_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix) :], True
    return name


def read_lora(path: str | os.PathLike[str], *, device: torch.device | str = "cpu") -> LoraWeights:
    """Read a LoRA safetensors file onto `device` (CPU by default)."""
    info = read_checkpoint(path)
    down: dict[str, torch.Tensor] = {}
    up: dict[str, torch.Tensor] = {}
    alpha: dict[str, float] = {}
    ignored: list[str] = []
    kinds: set[str] = set()
    from safetensors import safe_open

    with safe_open(str(info.path), framework="pt", device=str(torch.device(device))) as f:
        for key in info.tensors:
            if m := _PAIR_KEY.match(key):
                kind = m["kind"]
                kinds.add(kind)
                target = down if kind in _DOWN else up
                target[_strip(m["module"])] = f.get_tensor(key)
            elif m := _ALPHA_KEY.match(key):
                alpha[_strip(m["module"])] = float(f.get_tensor(key).float().item())
            else:
                ignored.append(key)
    if not down and not up:
        raise CheckpointError(
            f"{info.path.name} has no LoRA weights (no lora_A/lora_B or lora_down/lora_up keys)",
            "pass a LoRA file, or load full checkpoints with --model",
        )
    style = "kohya" if kinds & {"lora_down", "lora_up"} else "peft"
    return LoraWeights(info.path, down, up, alpha, style, ignored, dict(info.metadata))


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
    """Read every LoRA and match its modules against `weights` (`{"<m>.weight": shape}`).

    Raises CheckpointError naming the module when a pair's shapes do not fit its weight.
    """
    specs = [parse_lora(x) for x in loras]
    by_name = {k.removesuffix(".weight"): k for k in weights if k.endswith(".weight")}
    by_underscore = {m.replace(".", "_"): m for m in by_name}
    # The reference skips fusion only when every strength is zero.
    active = any(spec.strength != 0 for spec in specs)
    plan = LoraPlan({}, {}, {}, {}, len(specs))
    for spec in specs:
        lora = read_lora(spec.path, device=lora_load_device)
        label = str(spec.path)
        plan.incomplete[label], plan.ignored[label] = lora.incomplete, lora.ignored
        plan.unmatched[label] = []
        for name in lora.modules:
            module = name if name in by_name else by_underscore.get(name)
            if module is None:
                plan.unmatched[label].append(name)
                continue
            key = by_name[module]
            a, b = lora.down[name], lora.up[name]
            shape = tuple(weights[key])
            rank = a.shape[0]
            fits = (
                len(shape) >= 2
                and (b.shape[0], b[0].numel()) == (shape[0], rank)
                and a[0].numel() == math.prod(shape[1:])
            )
            if not fits:
                raise CheckpointError(
                    f"LoRA for {module} has shapes {list(b.shape)} @ {list(a.shape)}, "
                    f"the weight is {list(shape)}",
                    "this LoRA was trained for a different model",
                )
            if active:
                factor = spec.strength * lora.scale(name, use_alpha)
                plan.terms.setdefault(key, []).append((a, b, factor))
        if plan.unmatched[label]:
            logger.warning(
                "%s: %d LoRA modules match no weight (e.g. %s)",
                spec.path.name,
                len(plan.unmatched[label]),
                plan.unmatched[label][0],
            )
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
