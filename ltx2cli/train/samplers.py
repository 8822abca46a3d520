"""Timestep (σ) samplers for flow-matching training, exactly as ltx-trainer's (trainer.md §5).

Both take a latent batch `[B, N, C]` (N tokens) and return one σ per sample, drawn from the
global torch RNG so a seeded run (and a resumed one with its RNG state restored) repeats.
"""

from __future__ import annotations

from typing import Any

import torch

from ltx2cli.diffusion.schedules import ltx2_shift
from ltx2cli.errors import ConfigError

# Normal percentiles that bound the stretch: 0.5th (−2.5758σ) and 99.9th (+3.0902σ).
LOW_PERCENTILE_Z = 2.5758
HIGH_PERCENTILE_Z = 3.0902


class UniformTimestepSampler:
    """σ ~ U(min_value, max_value)."""

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0) -> None:
        self.min_value, self.max_value = float(min_value), float(max_value)

    def sample(self, batch: torch.Tensor) -> torch.Tensor:
        u = torch.rand(batch.shape[0], device=batch.device)
        return u * (self.max_value - self.min_value) + self.min_value


class ShiftedLogitNormalTimestepSampler:
    """Logit-normal σ shifted by the sequence length, stretched to [0, 1], reflected near zero,
    with a uniform fallback draw `uniform_prob` of the time."""

    def __init__(self, std: float = 1.0, eps: float = 1e-3, uniform_prob: float = 0.1) -> None:
        self.std, self.eps, self.uniform_prob = float(std), float(eps), float(uniform_prob)

    def sample(self, batch: torch.Tensor) -> torch.Tensor:
        b, n = batch.shape[0], batch.shape[1]
        device = batch.device
        # 1. shift from the token count: the inference scheduler's line, unclamped
        mu = ltx2_shift(n)
        # 2. logit-normal draw
        s = torch.sigmoid(torch.randn(b, device=device) * self.std + mu)
        # 3. percentile stretch to [0, 1]
        lo = torch.sigmoid(torch.tensor(mu - LOW_PERCENTILE_Z * self.std))
        hi = torch.sigmoid(torch.tensor(mu + HIGH_PERCENTILE_Z * self.std))
        z = (s - lo.to(device)) / (hi - lo).to(device)
        # 4. reflect below eps, clamp
        z = torch.where(z < self.eps, 2 * self.eps - z, z).clamp(0.0, 1.0)
        # 5. uniform fallback
        uniform = (1 - self.eps) * torch.rand(b, device=device) + self.eps
        fallback = torch.rand(b, device=device) < self.uniform_prob
        return torch.where(fallback, uniform, z)


SAMPLERS = {
    "uniform": UniformTimestepSampler,
    "shifted_logit_normal": ShiftedLogitNormalTimestepSampler,
}


def make_sampler(mode: str, params: dict[str, Any]) -> Any:
    """The sampler for `flow_matching.timestep_sampling_mode` with its params as keywords."""
    cls = SAMPLERS[mode]
    try:
        return cls(**params)
    except TypeError:
        import inspect

        accepted = [p for p in inspect.signature(cls).parameters]
        raise ConfigError(
            f"flow_matching.timestep_sampling_params: {sorted(params)} do not fit the "
            f"{mode} sampler",
            f"it takes: {', '.join(accepted)}",
        ) from None
