"""Sigma schedules: each returns a float32 tensor of steps+1 noise levels from 1 down to 0.

- `ltx2_sigmas`: the default. A flux-style time shift whose strength grows linearly with the
  token count (0.95 at 1024 tokens, 2.05 at 4096, extrapolated beyond), then a stretch that puts
  the last nonzero sigma at 0.1. Most official pipelines pass no latent, i.e. 4096 tokens and a
  fixed shift of 2.05 whatever the resolution; the HQ pipeline passes the stage-1 token count.
- `linear_quadratic_sigmas` and `beta_sigmas`: the two alternatives the reference ships.
- `DISTILLED_SIGMAS_STAGE_1` / `_STAGE_2`: the fixed lists of the distilled model and of every
  two-stage refinement.
"""

from __future__ import annotations

import math

import torch

# LTX2Scheduler
MAX_SHIFT = 2.05
BASE_SHIFT = 0.95
BASE_SHIFT_ANCHOR = 1024
MAX_SHIFT_ANCHOR = 4096
DEFAULT_TOKEN_COUNT = MAX_SHIFT_ANCHOR
TERMINAL_SIGMA = 0.1

# LinearQuadraticScheduler
THRESHOLD_NOISE = 0.025

# BetaScheduler (arXiv 2407.12173)
BETA_SHIFT = 2.37
BETA_TABLE_LENGTH = 10000
BETA_ALPHA = 0.6
BETA_BETA = 0.6

DISTILLED_SIGMAS_STAGE_1 = (1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0)
DISTILLED_SIGMAS_STAGE_2 = (0.909375, 0.725, 0.421875, 0.0)


def distilled_sigmas(stage: int) -> torch.Tensor:
    """The distilled model's fixed list for stage 1 (8 steps) or stage 2 (3 steps)."""
    lists = {1: DISTILLED_SIGMAS_STAGE_1, 2: DISTILLED_SIGMAS_STAGE_2}
    if stage not in lists:
        raise ValueError(f"distilled stage must be 1 or 2, got {stage}")
    return torch.tensor(lists[stage], dtype=torch.float32)


def ltx2_shift(tokens: int, max_shift: float = MAX_SHIFT, base_shift: float = BASE_SHIFT) -> float:
    """Shift as a linear function of the token count through (1024, 0.95) and (4096, 2.05)."""
    slope = (max_shift - base_shift) / (MAX_SHIFT_ANCHOR - BASE_SHIFT_ANCHOR)
    return tokens * slope + (base_shift - slope * BASE_SHIFT_ANCHOR)


def video_token_count(latent_shape: tuple[int, ...] | torch.Size) -> int:
    """Tokens of a dense latent: the product of all dims after batch and channels."""
    return math.prod(latent_shape[2:])


def ltx2_sigmas(
    steps: int,
    tokens: int = DEFAULT_TOKEN_COUNT,
    max_shift: float = MAX_SHIFT,
    base_shift: float = BASE_SHIFT,
    stretch: bool = True,
    terminal: float = TERMINAL_SIGMA,
) -> torch.Tensor:
    """The LTX-2 schedule for `steps` steps at `tokens` latent tokens (see module docstring)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    exp_shift = math.exp(ltx2_shift(tokens, max_shift, base_shift))
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float32)
    nonzero = grid != 0
    sigmas = torch.zeros_like(grid)
    sigmas[nonzero] = exp_shift / (exp_shift + (1 / grid[nonzero] - 1))
    # With one step the only nonzero sigma is ~1 and stretching it is 0/0: the reference
    # returns NaN for most token counts and 0.1 where float32 rounding leaves 1 − σ ≠ 0
    # (4096 tokens among them). Neither is usable, so [1, 0] stays as it is. For two steps and
    # more the arithmetic below is the reference's, op for op, in float32.
    if stretch and steps > 1:
        one_minus = 1.0 - sigmas[nonzero]
        scale = one_minus[-1] / (1.0 - terminal)
        sigmas[nonzero] = 1.0 - one_minus / scale
    return sigmas


def linear_quadratic_sigmas(
    steps: int, threshold_noise: float = THRESHOLD_NOISE, linear_steps: int | None = None
) -> torch.Tensor:
    """Linear up to `threshold_noise` for `linear_steps` steps, then quadratic up to 1; flipped."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if steps == 1:
        return torch.tensor([1.0, 0.0], dtype=torch.float32)
    n_lin = steps // 2 if linear_steps is None else linear_steps
    n_quad = steps - n_lin
    levels = [i * threshold_noise / n_lin for i in range(n_lin)]
    if n_quad > 0:
        diff = n_lin - threshold_noise * steps
        a = diff / (n_lin * n_quad**2)
        b = threshold_noise / n_lin - 2 * diff / n_quad**2
        c = a * n_lin**2
        levels += [a * i**2 + b * i + c for i in range(n_lin, steps)]
    levels.append(1.0)
    return torch.tensor([1.0 - x for x in levels], dtype=torch.float32)


def _regularized_incomplete_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b) by the continued fraction (modified Lentz), using the symmetry for x large."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _regularized_incomplete_beta(1.0 - x, b, a)
    log_front = a * math.log(x) + b * math.log1p(-x) - math.log(a)
    log_front -= math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * result


def beta_ppf(q: float, a: float, b: float) -> float:
    """Inverse CDF of Beta(a, b) by bisection on the regularized incomplete beta function."""
    if q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if _regularized_incomplete_beta(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def beta_sigmas(steps: int, alpha: float = BETA_ALPHA, beta: float = BETA_BETA) -> torch.Tensor:
    """Beta-distributed timesteps looked up in a 10000-entry shifted sigma table.

    Duplicate indices are removed, so fewer than steps+1 values can come back.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    last = BETA_TABLE_LENGTH - 1
    spacing = 1.0 / steps  # quantiles 1 − i·(1/steps), bit for bit numpy's linspace
    indices: list[int] = []
    for i in range(steps):
        index = round(beta_ppf(1.0 - i * spacing, alpha, beta) * last)
        if index not in indices:
            indices.append(index)
    # Table entry k holds the shifted sigma of t = (k + 1) / 10000 (float32, as the reference).
    t = (torch.tensor(indices, dtype=torch.float32) + 1) / BETA_TABLE_LENGTH
    exp_shift = math.exp(BETA_SHIFT)
    sigmas = exp_shift / (exp_shift + (1 / t - 1))
    return torch.cat([sigmas, torch.zeros(1)])
