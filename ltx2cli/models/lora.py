"""LoRA files: read the common key styles and fuse any number of them into loaded weights.

- Key styles: official/PEFT `<m>.lora_A.weight` [r, in] + `<m>.lora_B.weight` [out, r]
  (adapter-named `<m>.lora_A.<name>.weight` too), kohya/ComfyUI `<m>.lora_down.weight` +
  `<m>.lora_up.weight` + optional `<m>.alpha`, and kohya's underscored module names
  (`lora_unet_transformer_blocks_0_attn1_to_q`). Prefixes `diffusion_model.` (what the official
  trainer writes), `model.diffusion_model.`, `transformer.`, `base_model.model.` and
  `lora_unet_` are removed before the name is matched against the module's weights.
- Alpha: the reference ignores `.alpha`; ComfyUI and kohya scale by alpha/rank. We apply
  alpha/rank when the file has an alpha (what the author intended) and `use_alpha=False`
  reproduces the reference exactly. Files without alpha behave the same either way.
- Fusion: `W' = W + Σ_i s_i · scale_i · (B_i @ A_i)`, summed in float32 on the weight's
  device, then cast back to W's dtype. float8 weights are upcast, fused and requantised
  (fp8-cast: plain saturating cast; fp8-scaled-mm: new per-tensor scale amax/448).
- LoRA tensors are staged on `lora_load_device` (CPU by default); each pair moves to the
  weight's device only while that weight is fused.
- Unfusing: the fused weights' originals are copied (to `backup_device`, CPU by default)
  before fusion and copied back by `LoraFusion.unfuse()`, bit for bit.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

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

    def scale(self, module: str, use_alpha: bool = True) -> float:
        if not use_alpha or module not in self.alpha:
            return 1.0
        return self.alpha[module] / self.down[module].shape[0]


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


def _resolve(model: nn.Module) -> tuple[dict[str, str], dict[str, str]]:
    """`{module name: weight param}` and kohya's underscored names → module names."""
    names = {
        n.removesuffix(".weight"): n for n, _ in model.named_parameters() if n.endswith(".weight")
    }
    return names, {m.replace(".", "_"): m for m in names}


def fuse_loras(
    model: nn.Module,
    loras: Sequence[Any] | Iterable[Any],
    *,
    lora_load_device: torch.device | str = "cpu",
    use_alpha: bool = True,
    keep_backup: bool = True,
    backup_device: torch.device | str = "cpu",
) -> LoraFusion:
    """Fuse every LoRA (`LoraSpec`, path, `(path, strength)` or `PATH:STRENGTH`) into `model`."""
    specs = [parse_lora(x) for x in loras]
    by_name, by_underscore = _resolve(model)
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    deltas: dict[str, list[tuple[torch.Tensor, torch.Tensor, float]]] = {}
    unmatched: dict[str, list[str]] = {}
    incomplete: dict[str, list[str]] = {}
    ignored: dict[str, list[str]] = {}
    for spec in specs:
        weights = read_lora(spec.path, device=lora_load_device)
        label = str(spec.path)
        incomplete[label], ignored[label], unmatched[label] = (
            weights.incomplete,
            weights.ignored,
            [],
        )
        for name in weights.modules:
            target = name if name in by_name else by_underscore.get(name)
            if target is None:
                unmatched[label].append(name)
                continue
            if spec.strength == 0:
                continue
            factor = spec.strength * weights.scale(name, use_alpha)
            deltas.setdefault(target, []).append((weights.down[name], weights.up[name], factor))
        if unmatched[label]:
            logger.warning(
                "%s: %d LoRA modules match no weight (e.g. %s)",
                spec.path.name,
                len(unmatched[label]),
                unmatched[label][0],
            )

    fusion = LoraFusion(model, [], unmatched, incomplete, ignored)
    for target, terms in deltas.items():
        weight_name = by_name[target]
        w = params[weight_name]
        delta = torch.zeros(w.shape, dtype=torch.float32, device=w.device)
        for a, b, factor in terms:
            a2, b2 = (
                a.to(w.device, torch.float32).flatten(1),
                b.to(w.device, torch.float32).flatten(1),
            )
            if b2.shape[1] != a2.shape[0] or (b2.shape[0], a2.shape[1]) != (
                w.shape[0],
                w[0].numel(),
            ):
                raise CheckpointError(
                    f"LoRA for {target} has shapes {list(b.shape)} @ {list(a.shape)}, "
                    f"the weight is {list(w.shape)}",
                    "this LoRA was trained for a different model",
                )
            delta += (b2 @ a2).reshape(w.shape) * factor
        module = modules[target]
        scaled = isinstance(module, Fp8ScaledLinear)
        names = [weight_name, f"{target}.weight_scale"] if scaled else [weight_name]
        if keep_backup:
            for n in names:
                fusion.backups[n] = params[n].detach().to(backup_device, copy=True)
        with torch.no_grad():
            if scaled:
                full = w.float() * module.weight_scale.float() + delta
                q, s = quantize_per_tensor(full)
                module.weight.data, module.weight_scale.data = q, s.to(module.weight_scale.device)
            elif w.dtype in FP8_DTYPES:
                w.data = to_fp8(w.float() + delta)
            else:
                w.data = (w.float() + delta).to(w.dtype)
        fusion.targeted.extend(names)
    logger.info("fused %d LoRA(s) into %d weights", len(specs), fusion.num_targeted)
    return fusion
