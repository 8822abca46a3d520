"""FP8 weight storage for the transformer: `fp8-cast` on every device, `fp8-scaled-mm` where
`torch._scaled_mm` runs (CUDA with FP8 tensor cores, and CPU builds of torch that implement it).

- `fp8-cast`: the Linears of the transformer blocks (q/k/v/out of every attention and both
  feed-forwards) keep weight and bias as `float8_e4m3fn` (plain cast, no scale) and upcast them
  to the activation dtype inside each forward, halving their memory against bf16. Everything
  else (gate logits, norms, scale-shift tables, patchify, AdaLN MLPs, caption projections,
  proj_out) stays in high precision, as in the reference.
- `fp8-scaled-mm`: for pre-quantised checkpoints only. Layers whose file has a `F8_E4M3`
  `.weight` plus a `.weight_scale` run `torch._scaled_mm` with the checkpoint's static
  per-tensor scales, quantising activations as `clamp(x · (1/input_scale))` in x's own dtype.
- Per-tensor quantisation follows the reference exactly: `s = 448/amax`, `q = clamp(w·s)`,
  `weight_scale = 1/s` (so re-quantising after a LoRA reproduces its bytes).
- Deliberate difference: plain casts clamp to ±448 first, so a value beyond the float8 range
  saturates where the reference's unclamped `.to(float8)` would store NaN. Values in range
  (every real weight) cast to the same bytes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ltx2cli.errors import DeviceError, UsageError

logger = logging.getLogger(__name__)

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = 448.0  # largest finite float8_e4m3fn
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
QUANTIZATIONS = ("fp8-cast", "fp8-scaled-mm")

# model.md §10.1: the covered Linears, matched as name suffixes under `transformer_blocks.`;
# "ff.net.0.proj" without a leading dot also covers `audio_ff.net.0.proj`.
FP8_CAST_BLOCK_PREFIX = "transformer_blocks."
FP8_CAST_SUFFIXES = (".to_q", ".to_k", ".to_v", ".to_out.0", "ff.net.0.proj", "ff.net.2")


def check_quantization(name: str | None) -> str | None:
    if name is None or name == "none":
        return None
    if name not in QUANTIZATIONS:
        raise UsageError(
            f"unknown quantization {name!r}", f"use one of: none, {', '.join(QUANTIZATIONS)}"
        )
    return name


def is_fp8_cast_layer(name: str) -> bool:
    """Whether the module at `name` (transformer state-dict naming) is stored in fp8 by fp8-cast."""
    return name.startswith(FP8_CAST_BLOCK_PREFIX) and name.endswith(FP8_CAST_SUFFIXES)


# Elements per float32 temporary when casting: casts and quantisation work piece by piece so a
# large weight never needs more than a few float32 copies of one piece (same values: each output
# element depends on its input element and the scale only).
_PIECE = 1 << 22


def _cast_pieces(t: torch.Tensor, cast: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    flat = t.detach().reshape(-1)
    out = torch.empty(flat.shape, dtype=FP8_DTYPE, device=t.device)
    for start in range(0, flat.numel(), _PIECE):
        out[start : start + _PIECE] = cast(flat[start : start + _PIECE].float())
    return out.reshape(t.shape)


def to_fp8(t: torch.Tensor) -> torch.Tensor:
    """Plain (unscaled) cast to float8_e4m3fn, saturating at ±448."""
    return _cast_pieces(t, lambda x: x.clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE))


def quantize_per_tensor(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(q, weight_scale)`: `s = 448/amax`, `q = clamp(w·s)` in fp8, `weight_scale = 1/s` (0-d).

    The reference's op order (multiply by `448/amax`, then take the reciprocal as the scale) is
    kept because `w / (amax/448)` rounds differently. An all-zero tensor gets scale 1.
    """
    amax = w.detach().abs().amax().float()  # |w| and max are exact in w's own dtype
    inv = torch.where(amax > 0, FP8_MAX / amax, torch.ones_like(amax))
    q = _cast_pieces(w, lambda x: (x * inv).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE))
    return q, inv.reciprocal()


class Fp8CastLinear(nn.Linear):
    """A Linear whose weight and bias live in float8 and are upcast per call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), bias)


class Fp8ScaledLinear(nn.Module):
    """`y = (q(x) @ q(W).T) · s_x · s_w + b` through `torch._scaled_mm`, per-tensor scales.

    `input_scale` comes from the checkpoint (static activation scale); without one the scale is
    computed from each input's absolute maximum.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        static_input_scale: bool = True,
        device: torch.device | str | None = None,
        bias_dtype: torch.dtype = torch.bfloat16,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(
            torch.empty(out_features, in_features, dtype=FP8_DTYPE, device=device),
            requires_grad=False,
        )
        self.weight_scale = nn.Parameter(torch.ones((), device=device), requires_grad=False)
        self.input_scale = (
            nn.Parameter(torch.ones((), device=device), requires_grad=False)
            if static_input_scale
            else None
        )
        self.bias = (
            nn.Parameter(torch.zeros(out_features, dtype=bias_dtype, device=device))
            if bias
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        if self.input_scale is None:
            scale_x = (x.detach().abs().amax().float() / FP8_MAX).clamp(min=1e-12)
        else:
            scale_x = self.input_scale
        # As the reference: multiply by the reciprocal in x's own dtype (a 0-d float32 tensor
        # does not promote bf16), clamp, then cast; dividing in float32 rounds differently.
        q = (x * scale_x.reciprocal()).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
        y = torch._scaled_mm(
            q.reshape(-1, shape[-1]),  # (N, in)
            self.weight.t(),
            scale_a=scale_x,
            scale_b=self.weight_scale,
            out_dtype=x.dtype,
            use_fast_accum=True,
        )
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*shape[:-1], self.out_features)


def check_scaled_mm_device(device: torch.device | str) -> None:
    """Raise DeviceError unless `device` can run FP8 `torch._scaled_mm`."""
    device = torch.device(device)
    hint = "use --quantization fp8-cast, which works on every device"
    if device.type == "cpu":
        if not _cpu_scaled_mm():
            raise DeviceError("this torch build has no FP8 matmul on the CPU", hint)
        return
    if device.type != "cuda" or not torch.cuda.is_available():
        raise DeviceError(
            f"fp8-scaled-mm needs a CUDA GPU with FP8 support or the CPU, not {device.type!r}",
            hint,
        )
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 9) or not hasattr(torch, "_scaled_mm"):
        raise DeviceError(
            f"fp8-scaled-mm needs compute capability 8.9+, this GPU has {major}.{minor}",
            hint,
        )


@functools.cache
def _cpu_scaled_mm() -> bool:
    """Whether this torch build implements `_scaled_mm` on the CPU (probed once)."""
    a = torch.zeros(16, 16, dtype=FP8_DTYPE)
    one = torch.ones(())
    try:
        torch._scaled_mm(a, a.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    # A CPU build without the kernel raises a RuntimeError subclass; old torch lacks the op.
    except (RuntimeError, AttributeError):
        return False
    return True


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def _fp8_like(t: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(t, dtype=FP8_DTYPE) if t.is_meta else to_fp8(t.detach())


def apply_fp8_cast(model: nn.Module) -> list[str]:
    """Swap every covered `nn.Linear` for an `Fp8CastLinear` (meta or materialised); their names.

    On a materialised model the weights and biases are cast to fp8 in place of the originals.
    """
    names = [
        n
        for n, m in model.named_modules()
        if is_fp8_cast_layer(n) and type(m) is nn.Linear  # exact type: skip already-swapped
    ]
    for name in names:
        old = model.get_submodule(name)
        new = Fp8CastLinear(
            old.in_features, old.out_features, bias=old.bias is not None, device="meta"
        )
        new.weight = nn.Parameter(_fp8_like(old.weight), requires_grad=False)
        if old.bias is not None:
            new.bias = nn.Parameter(_fp8_like(old.bias), requires_grad=False)
        _replace(model, name, new)
    logger.debug("fp8-cast: %d Linear layers stored as float8_e4m3fn", len(names))
    return names


def scaled_mm_layers(keys: Iterable[str], fp8_keys: Iterable[str]) -> list[str]:
    """Module paths with a float8 `.weight` and a `.weight_scale` sibling (model.md §10.2)."""
    keys = set(keys)
    return sorted(
        k.removesuffix(".weight")
        for k in fp8_keys
        if k.endswith(".weight") and k.removesuffix(".weight") + ".weight_scale" in keys
    )


def apply_fp8_scaled_mm(
    model: nn.Module, layers: Iterable[str], module_keys: Mapping[str, object]
) -> list[str]:
    """Swap the named `nn.Linear`s (on meta) for `Fp8ScaledLinear`; `module_keys` decides which
    have a static `input_scale` and a bias."""
    done = []
    for name in layers:
        old = model.get_submodule(name)
        if not isinstance(old, nn.Linear):
            continue
        new = Fp8ScaledLinear(
            old.in_features,
            old.out_features,
            bias=old.bias is not None,
            static_input_scale=f"{name}.input_scale" in module_keys,
            device="meta",
        )
        _replace(model, name, new)
        done.append(name)
    return done
