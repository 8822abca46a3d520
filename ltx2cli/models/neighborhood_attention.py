"""3-D neighbourhood attention (NATTEN `na3d` semantics) for the LTX-2.5 diffusion VAE decoder.

Each query at (t, h, w) attends to the `kt×kh×kw` keys of a window centred on it; at a border
the window is shifted inward so that it keeps its full size (it is not clipped), exactly as
NATTEN does for odd kernels without dilation. Softmax scale 1: callers scale q beforehand.

Design choices:
- The plain-PyTorch path is correct on every device: queries are cut into blocks, each block
  attends to the union of its windows through one masked `scaled_dot_product_attention`, with
  blocks sized so that a score matrix stays under a fixed element budget.
- The `natten` package's fused kernel is used only where it exists and applies: installed
  (never a dependency of ltx2; its wheels are CUDA builds) and the tensors live on CUDA.
- q and k are cast to v's dtype first, as the reference does before either backend.
"""

from __future__ import annotations

import functools
import importlib
import math
from types import ModuleType

import torch
from torch.nn import functional as F

# Upper bound on one block's query×key score elements (per batch and head).
SCORE_BUDGET = 1 << 22


def window_starts(length: int, kernel: int, device: torch.device | None = None) -> torch.Tensor:
    """First key index of each query's window along one axis: `clamp(i − k//2, 0, L − k)`."""
    if kernel > length:
        raise ValueError(f"neighbourhood kernel {kernel} is larger than the axis length {length}")
    index = torch.arange(length, device=device)
    return (index - kernel // 2).clamp(min=0, max=length - kernel)


@functools.cache
def _natten() -> ModuleType | None:
    try:
        return importlib.import_module("natten")
    except ImportError:
        return None


def natten_usable(x: torch.Tensor) -> bool:
    """Whether the fused NATTEN kernel can run on `x` (installed and on a CUDA device)."""
    return x.is_cuda and _natten() is not None


def _block_sizes(dims: tuple[int, ...], kernels: tuple[int, ...]) -> list[int]:
    """Per-axis query-block lengths keeping `block queries × covered keys` under budget."""
    sizes = list(dims)

    def cost(s: list[int]) -> int:
        return math.prod(s) * math.prod(
            min(d, b + k - 1) for b, k, d in zip(s, kernels, dims, strict=True)
        )

    while cost(sizes) > SCORE_BUDGET and max(sizes) > 1:
        axis = max(range(len(sizes)), key=lambda a: sizes[a] / kernels[a])
        sizes[axis] = (sizes[axis] + 1) // 2
    return sizes


def _axis_visibility(
    starts: torch.Tensor, q0: int, q1: int, k0: int, k1: int, kernel: int
) -> torch.Tensor:
    """(q1−q0, k1−k0) bool: key j lies in query i's window along one axis."""
    keys = torch.arange(k0, k1, device=starts.device)
    s = starts[q0:q1, None]
    return (keys[None, :] >= s) & (keys[None, :] < s + kernel)


def _na3d_torch(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: tuple[int, int, int]
) -> torch.Tensor:
    b, t, h, w, heads, d = q.shape
    dims = (t, h, w)
    starts = [window_starts(n, kk, q.device) for n, kk in zip(dims, kernel_size, strict=True)]
    blocks = _block_sizes(dims, kernel_size)
    out = torch.empty(b, t, h, w, heads, d, dtype=v.dtype, device=v.device)
    ranges = [
        [(s, min(s + size, n)) for s in range(0, n, size)]
        for n, size in zip(dims, blocks, strict=True)
    ]
    for t0, t1 in ranges[0]:
        for h0, h1 in ranges[1]:
            for w0, w1 in ranges[2]:
                q_rng = ((t0, t1), (h0, h1), (w0, w1))
                k_rng = [
                    (int(st[a0]), int(st[a1 - 1]) + kk)
                    for st, (a0, a1), kk in zip(starts, q_rng, kernel_size, strict=True)
                ]
                vis = [
                    _axis_visibility(st, a0, a1, c0, c1, kk)
                    for st, (a0, a1), (c0, c1), kk in zip(
                        starts, q_rng, k_rng, kernel_size, strict=True
                    )
                ]
                mask = (
                    vis[0][:, None, None, :, None, None]
                    & vis[1][None, :, None, None, :, None]
                    & vis[2][None, None, :, None, None, :]
                )
                nq = (t1 - t0) * (h1 - h0) * (w1 - w0)
                (c0t, c1t), (c0h, c1h), (c0w, c1w) = k_rng
                nk = (c1t - c0t) * (c1h - c0h) * (c1w - c0w)

                def heads_first(x: torch.Tensor, n: int) -> torch.Tensor:
                    return x.reshape(b, n, heads, d).transpose(1, 2)

                qb = heads_first(q[:, t0:t1, h0:h1, w0:w1], nq)
                kb = heads_first(k[:, c0t:c1t, c0h:c1h, c0w:c1w], nk)
                vb = heads_first(v[:, c0t:c1t, c0h:c1h, c0w:c1w], nk)
                o = F.scaled_dot_product_attention(
                    qb, kb, vb, attn_mask=mask.reshape(nq, nk), scale=1.0
                )
                out[:, t0:t1, h0:h1, w0:w1] = o.transpose(1, 2).reshape(
                    b, t1 - t0, h1 - h0, w1 - w0, heads, d
                )
    return out


def neighborhood_attention_3d(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kernel_size: tuple[int, int, int],
    use_natten: bool | None = None,
) -> torch.Tensor:
    """`(B, T, H, W, heads, d)` q/k/v (q already scaled) → `(B, T, H, W, heads, d)`.

    `use_natten`: None picks NATTEN when `natten_usable(q)`; False forces the PyTorch path.
    Every axis must be at least as long as its kernel.
    """
    kernel_size = tuple(int(x) for x in kernel_size)
    for n, kk in zip(q.shape[1:4], kernel_size, strict=True):
        if n < kk:
            raise ValueError(
                f"neighbourhood attention needs (T, H, W)={tuple(q.shape[1:4])} >= "
                f"kernel {kernel_size}"
            )
    q, k = q.to(v.dtype), k.to(v.dtype)
    if use_natten is None:
        use_natten = natten_usable(q)
    if use_natten:
        natten = _natten()
        if natten is None:
            raise RuntimeError("use_natten=True but the natten package is not installed")
        return natten.na3d(
            q.contiguous(), k.contiguous(), v.contiguous(), kernel_size=kernel_size, scale=1.0
        )
    return _na3d_torch(q, k, v, kernel_size)
