"""Small primitives shared by the LTX-2 model families.

- `rms_norm`: weightless RMS normalisation over the last dim (the transformer's block norms,
  the connectors' norms, the V2 feature extractor).
- `timestep_sinusoids` + `TimestepEmbedder`: the 256-channel sinusoidal timestep projection
  (cosines first) followed by the PixArt-style Linear-SiLU-Linear MLP. Key layout
  `timestep_embedder.linear_1/linear_2`, shared by the transformer's AdaLN and the VAE decoder.
- `AdaLayerNormSingle`: timestep → `coeff·dim` modulation vector plus the embedded timestep.
- `FeedForward`: Linear → tanh-GELU → Linear with the `net.0.proj` / `net.2` key layout.
- `TwoLayerMLP`: `linear_1` → activation → `linear_2` (timestep MLP, 19B caption projection).
- `cpu_inference_linears`: routes float32 CPU `F.linear` calls to oneDNN during inference.

Nothing here computes tensors at construction time, so every module is meta-device safe.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

_T = TypeVar("_T")

# Switch for `cpu_inference_linears` (set False to keep float32 CPU Linears on MKL, e.g. to
# reproduce results computed with stock PyTorch bit for bit).
ONEDNN_CPU_LINEARS = True

TIMESTEP_CHANNELS = 256
TIMESTEP_MAX_PERIOD = 10000.0


def rms_norm(
    x: torch.Tensor, eps: float = 1e-6, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """`x / sqrt(mean(x², last dim) + eps)` (times `weight` if given).

    Exactly `F.rms_norm`, which is what the reference calls for its weightless block norms and
    (through `nn.RMSNorm`) for the q/k norms: low-precision inputs are normalised in float32
    and the weight multiplies the float32 result before the cast back. A hand-written variant
    is no faster on CPU and differs from the reference by an ulp in float32.
    """
    return F.rms_norm(x, (x.shape[-1],), weight=weight, eps=eps)


def timestep_sinusoids(
    timesteps: torch.Tensor,
    channels: int = TIMESTEP_CHANNELS,
    max_period: float = TIMESTEP_MAX_PERIOD,
) -> torch.Tensor:
    """Sinusoidal embedding of a 1-D tensor of timesteps → `(N, channels)` float32, `[cos, sin]`.

    Frequencies `exp(-ln(max_period)·i/half)` for `i < half` (no frequency shift, scale 1);
    the cosine half comes first (the reference's `flip_sin_to_cos=True`).
    """
    half = channels // 2
    exponent = -math.log(max_period) * torch.arange(
        0, half, dtype=torch.float32, device=timesteps.device
    )
    freqs = torch.exp(exponent / half)
    args = timesteps[:, None].float() * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if channels % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


class TwoLayerMLP(nn.Module):
    """Linear(in → dim) → activation → Linear(dim → dim), both biased; keys `linear_1`,
    `linear_2`. SiLU: the timestep MLP; tanh-GELU: the 19B caption projection."""

    def __init__(
        self,
        in_features: int,
        dim: int,
        activation: Callable[[torch.Tensor], torch.Tensor] = F.silu,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.linear_1 = nn.Linear(in_features, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.activation(self.linear_1(x)))


class TimestepEmbedder(nn.Module):
    """Sinusoids (256 ch) cast to `dtype`, then the MLP. Keys `timestep_embedder.linear_{1,2}`."""

    def __init__(self, dim: int, channels: int = TIMESTEP_CHANNELS) -> None:
        super().__init__()
        self.channels = channels
        self.timestep_embedder = TwoLayerMLP(channels, dim)

    def forward(self, timesteps: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """`timesteps` (N,) → (N, dim) in `dtype` (default: the MLP's weight dtype)."""
        proj = timestep_sinusoids(timesteps.reshape(-1), self.channels)
        if dtype is None:
            dtype = self.timestep_embedder.linear_1.weight.dtype
        return self.timestep_embedder(proj.to(dtype))


class AdaLayerNormSingle(nn.Module):
    """Timestep → `(mod, embedded)`: `mod = linear(SiLU(e))` (N, coeff·dim), `embedded = e`.

    Keys: `emb.timestep_embedder.linear_{1,2}`, `linear`.
    """

    def __init__(self, dim: int, coeff: int) -> None:
        super().__init__()
        self.coeff = coeff
        self.emb = TimestepEmbedder(dim)
        self.linear = nn.Linear(dim, coeff * dim)

    def forward(
        self, timesteps: torch.Tensor, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.emb(timesteps, dtype)
        return self.linear(F.silu(embedded)), embedded


class GELUProj(nn.Module):
    """Linear followed by tanh-approximated GELU; key `proj`."""

    def __init__(self, dim_in: int, dim_out: int, bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu_tanh(self.proj(x))


class FeedForward(nn.Module):
    """`net.0.proj` (dim → mult·dim) → tanh-GELU → `net.2` (→ dim_out); `net.1` holds no keys."""

    def __init__(
        self, dim: int, dim_out: int | None = None, mult: int = 4, bias: bool = True
    ) -> None:
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(
            GELUProj(dim, inner, bias=bias),
            nn.Identity(),
            nn.Linear(inner, dim_out or dim, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _OneDNNLinear(TorchFunctionMode):
    """Sends float32 CPU `F.linear` calls to oneDNN's matmul; everything else passes through."""

    def __torch_function__(
        self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func is F.linear and not torch.is_grad_enabled():
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            if (
                x.dim() >= 2
                and x.dtype == weight.dtype == torch.float32
                and x.device.type == weight.device.type == "cpu"
                and x.layout == weight.layout == torch.strided
                and (bias is None or bias.dtype == torch.float32)
            ):
                return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
        return func(*args, **kwargs)


def cpu_inference_linears(forward: Callable[..., _T]) -> Callable[..., _T]:
    """Decorates a module's `forward`: float32 Linears run through oneDNN when the module is on
    the CPU and no gradient is recorded.

    PyTorch sends float32 `F.linear` to MKL, whose sgemm takes its AVX2 path on AMD CPUs;
    oneDNN uses AVX-512 there (2-2.5x faster GEMMs on the benchmark machine) and agrees with
    MKL to float32 rounding (another summation order, ~1e-6 relative). Training keeps MKL: the
    oneDNN op has no autograd formula. GPU modules and builds without the op are untouched.
    """

    @functools.wraps(forward)
    def wrapper(self: nn.Module, *args: Any, **kwargs: Any) -> _T:
        param = next(self.parameters(), None)
        if (
            not ONEDNN_CPU_LINEARS
            or torch.is_grad_enabled()
            or param is None
            or param.device.type != "cpu"
            or not _onednn_linear_available()
        ):
            return forward(self, *args, **kwargs)
        with _OneDNNLinear():
            return forward(self, *args, **kwargs)

    return wrapper


@functools.cache
def _onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
