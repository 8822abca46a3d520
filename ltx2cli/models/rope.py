"""Rotary position embeddings of LTX-2: video 3D, audio 1D, cross-modal 1D, text connector 1D.

One routine serves every case:
- a log-spaced frequency ladder `ω_k = (π/2)·theta^(k/(N−1))`, `N = dim // (2·n_axes)`, computed in
  float64 when the checkpoint says `frequencies_precision: "float64"` and stored as float32;
- positions are `[start, end)` bounds whose midpoint is used (or raw indices for the connectors),
  mapped per axis to `u = 2·p/max_pos − 1`; angle `θ[k, a] = ω_k·u_a`, flattened frequency-major;
- "split" layout: cos/sin padded at the front with identity entries up to `dim/2`, then spread
  over the heads; each head rotates its first half against its second half.

Tables are returned as `(cos, sin)` of shape `(B, T, H, d/2)` so they apply to `(B, T, H·d)`
projections without a transpose (the reference stores `(B, H, T, d/2)`; the values are the same).
Nothing is computed at construction time; callers build the tables once per forward. The
`[start, end)` position grids themselves come from `ltx2cli.diffusion.patchify`.
"""

from __future__ import annotations

import functools
import math

import torch


@functools.lru_cache(maxsize=16)
def frequency_grid(
    theta: float, n_axes: int, dim: int, double_precision: bool = True
) -> torch.Tensor:
    """The `dim // (2·n_axes)` frequencies `(π/2)·theta^(k/(N−1))`, CPU float32."""
    count = dim // (2 * n_axes)
    if double_precision:
        # The reference builds this ladder with numpy in float64; use numpy too so the float32
        # result is identical bit for bit (torch and numpy linspace/pow can differ by an ulp).
        import numpy as np

        exponents = np.linspace(0.0, 1.0, count, dtype=np.float64)
        ladder = np.power(theta, exponents) * math.pi / 2
        return torch.as_tensor(ladder, dtype=torch.float32)
    exponents = torch.linspace(0.0, 1.0, count, dtype=torch.float32)
    return (theta**exponents).to(torch.float32) * math.pi / 2


def rope_angles(
    positions: torch.Tensor,
    dim: int,
    theta: float,
    max_pos: tuple[int, ...] | list[int],
    use_middle: bool = True,
    double_precision: bool = True,
) -> torch.Tensor:
    """Angles `(B, T, N·n_axes)` for `positions` `(B, n_axes, T, 2)` (or `(B, n_axes, T)`)."""
    if use_middle:
        if positions.ndim != 4 or positions.shape[-1] != 2:
            raise ValueError(
                f"positions must be (B, n_axes, T, 2) bounds, got {tuple(positions.shape)}"
            )
        grid = (positions[..., 0] + positions[..., 1]) / 2.0
    else:
        grid = positions[..., 0] if positions.ndim == 4 else positions
    n_axes = grid.shape[1]
    if len(max_pos) != n_axes:
        raise ValueError(
            f"max_pos {list(max_pos)} has {len(max_pos)} axes, positions have {n_axes}"
        )
    fractions = torch.stack([grid[:, a] / max_pos[a] for a in range(n_axes)], dim=-1)  # (B, T, n)
    freqs = frequency_grid(float(theta), n_axes, dim, double_precision).to(fractions.device)
    angles = freqs * (fractions.unsqueeze(-1) * 2 - 1)  # (B, T, n, N)
    return angles.transpose(-1, -2).flatten(2)  # (B, T, N·n): frequency-major, axis-minor


def rope_tables(
    positions: torch.Tensor,
    dim: int,
    num_heads: int,
    theta: float,
    max_pos: tuple[int, ...] | list[int],
    use_middle: bool = True,
    double_precision: bool = True,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split-layout `(cos, sin)`, each `(B, T, num_heads, dim / (2·num_heads))`, cast to `dtype`."""
    angles = rope_angles(positions, dim, theta, max_pos, use_middle, double_precision)
    cos, sin = angles.cos(), angles.sin()
    pad = dim // 2 - angles.shape[-1]
    if pad:
        # Missing channels go at the FRONT as identity rotations (video: 2048 − 3·682 = 2).
        cos = torch.cat([torch.ones_like(cos[..., :pad]), cos], dim=-1)
        sin = torch.cat([torch.zeros_like(sin[..., :pad]), sin], dim=-1)
    b, t, _ = cos.shape
    cos = cos.reshape(b, t, num_heads, -1).to(dtype)
    sin = sin.reshape(b, t, num_heads, -1).to(dtype)
    return cos, sin


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate `x` `(B, T, H·d)` per head: `[x1·cos − x2·sin, x2·cos + x1·sin]` on the two halves."""
    b, t, _ = x.shape
    heads = cos.shape[-2]
    halves = x.view(b, t, heads, 2, -1)  # (B, T, H, 2, d/2)
    c, s = cos.unsqueeze(-2), sin.unsqueeze(-2)
    out = halves * c
    out[..., 0, :].addcmul_(halves[..., 1, :], s[..., 0, :], value=-1)
    out[..., 1, :].addcmul_(halves[..., 0, :], s[..., 0, :])
    return out.view(b, t, -1)
