"""Guidance: the multimodal guider's parameters and formula, its defaults, and simple guiders.

- `GuiderParams` (one set per modality) combines up to four x0 predictions:
  pred = cond + (cfg−1)(cond − uncond) + stg(cond − perturbed) + (modality−1)(cond − isolated),
  then optionally rescales pred toward cond's standard deviation (std over the whole tensor:
  batch, tokens including appended conditioning, and channels). Computed in float32 and cast
  back (current reference) or in the predictions' own dtype (1.0.0), per the `Compat`.
- A pass is only run when some modality's scale is away from its neutral value (cfg 1, stg 0,
  modality 1), so a term whose pass did not run is always multiplied by zero.
- `skip_step` N > 0 computes steps 0, N+1, 2(N+1), … and reuses the last x0 in between.
- `GuidanceSchedule` picks params by sigma (bins keyed by their upper bound).
- `LTX_2_DEFAULTS`, `LTX_2_3_DEFAULTS`, `LTX_2_3_HQ_DEFAULTS`: the default steps and guider
  params of families.py's records as `GuiderParams`; `defaults_for_version` picks one.
- `cfg_delta`, `cfg_star_delta`, `stg_delta`, `apg_delta`, `MomentumAPG`: single-guider
  deltas added to the conditional prediction (used with `denoisers.DeltaGuidedDenoiser`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import torch

from ltx2cli.compat import CURRENT, Compat
from ltx2cli.families import FAMILIES, GEN_2_0, GEN_2_3, Sampling, family_of_version

NEUTRAL_CFG = 1.0
NEUTRAL_STG = 0.0
NEUTRAL_MODALITY = 1.0
PROJECTION_EPS = 1e-8


@dataclass(frozen=True)
class GuiderParams:
    """One modality's guidance settings. Defaults are neutral: a single conditional pass.

    `stg_blocks`: transformer blocks whose self-attention the STG pass skips; `None` = all.
    """

    cfg_scale: float = NEUTRAL_CFG
    stg_scale: float = NEUTRAL_STG
    stg_blocks: tuple[int, ...] | None = ()
    rescale_scale: float = 0.0
    modality_scale: float = NEUTRAL_MODALITY
    skip_step: int = 0

    def __post_init__(self) -> None:
        if self.skip_step < 0:
            raise ValueError(f"skip_step must be >= 0, got {self.skip_step}")
        if self.stg_blocks is not None:
            object.__setattr__(self, "stg_blocks", tuple(self.stg_blocks))

    @property
    def uses_uncond(self) -> bool:
        return not math.isclose(self.cfg_scale, NEUTRAL_CFG)

    @property
    def uses_perturbed(self) -> bool:
        return not math.isclose(self.stg_scale, NEUTRAL_STG)

    @property
    def uses_isolated(self) -> bool:
        return not math.isclose(self.modality_scale, NEUTRAL_MODALITY)

    def skips(self, step: int) -> bool:
        """True on the steps that reuse the previous x0."""
        return self.skip_step > 0 and step % (self.skip_step + 1) != 0

    def combine(
        self,
        cond: torch.Tensor,
        uncond: torch.Tensor | float = 0.0,
        perturbed: torch.Tensor | float = 0.0,
        isolated: torch.Tensor | float = 0.0,
        compat: Compat = CURRENT,
    ) -> torch.Tensor:
        """The guided prediction (see module docstring) in cond's dtype; terms not computed may
        be 0.0. `compat.float32_guidance` picks the arithmetic dtype."""

        def widen(x: torch.Tensor | float) -> torch.Tensor | float:
            return x.float() if compat.float32_guidance and isinstance(x, torch.Tensor) else x

        c = widen(cond)
        pred = (
            c
            + (self.cfg_scale - 1) * (c - widen(uncond))
            + self.stg_scale * (c - widen(perturbed))
            + (self.modality_scale - 1) * (c - widen(isolated))
        )
        if self.rescale_scale != 0:
            factor = c.std() / pred.std()
            pred = pred * (self.rescale_scale * factor + (1 - self.rescale_scale))
        return pred.to(cond.dtype)


@dataclass(frozen=True)
class GuidanceSchedule:
    """Guider params by sigma: bin i covers (key_{i+1}, key_i]; keys are upper bounds."""

    bins: tuple[tuple[float, GuiderParams], ...]

    def __post_init__(self) -> None:
        if not self.bins:
            raise ValueError("a guidance schedule needs at least one bin")
        ordered = tuple(sorted(self.bins, key=lambda kv: kv[0], reverse=True))
        object.__setattr__(self, "bins", ordered)

    @classmethod
    def constant(cls, params: GuiderParams) -> GuidanceSchedule:
        return cls(((math.inf, params),))

    @classmethod
    def from_mapping(cls, by_upper_bound: Mapping[float, GuiderParams]) -> GuidanceSchedule:
        return cls(tuple(by_upper_bound.items()))

    def at(self, sigma: float) -> GuiderParams:
        """Params of the smallest upper bound ≥ sigma (the largest bound if sigma is above all)."""
        chosen = self.bins[0][1]
        for bound, params in self.bins:
            if bound >= sigma:
                chosen = params
        return chosen


@dataclass(frozen=True)
class GenerationDefaults:
    """Default step count and per-modality guidance of one model generation."""

    steps: int
    video: GuiderParams = field(default_factory=GuiderParams)
    audio: GuiderParams = field(default_factory=GuiderParams)

    @classmethod
    def of(cls, sampling: Sampling) -> GenerationDefaults:
        """Guider params for one of families.py's per-generation defaults (cached, so equal
        records give the same object)."""
        return _defaults(sampling)


@lru_cache
def _defaults(sampling: Sampling) -> GenerationDefaults:
    return GenerationDefaults(
        steps=sampling.steps,
        video=GuiderParams(**asdict(sampling.video)),
        audio=GuiderParams(**asdict(sampling.audio)),
    )


LTX_2_DEFAULTS = GenerationDefaults.of(FAMILIES[GEN_2_0].defaults("guided"))
LTX_2_3_DEFAULTS = GenerationDefaults.of(FAMILIES[GEN_2_3].defaults("guided"))
# HQ (res_2s) pipeline: STG off, so 3 passes per step.
LTX_2_3_HQ_DEFAULTS = GenerationDefaults.of(FAMILIES[GEN_2_3].defaults("hq"))


def defaults_for_version(model_version: str | None) -> GenerationDefaults:
    """The guided-pipeline defaults of the generation a checkpoint's `model_version` selects."""
    return GenerationDefaults.of(family_of_version(model_version).defaults("guided"))


# ---------------------------------------------------------------------------------------------
# Single-guider deltas (added to the conditional prediction)


def projection_coefficient(x: torch.Tensor, onto: torch.Tensor) -> torch.Tensor:
    """⟨x, onto⟩ / (‖onto‖² + 1e−8) per batch item, shaped to broadcast against x. Computed
    in the inputs' dtype, as the reference's simple guiders are (they never upcast)."""
    b = x.shape[0]
    xf, of = x.reshape(b, -1), onto.reshape(b, -1)
    coef = (xf * of).sum(dim=1) / ((of * of).sum(dim=1) + PROJECTION_EPS)
    return coef.view(b, *([1] * (x.dim() - 1)))


def cfg_delta(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: (scale − 1)(cond − uncond); scale 1 is off."""
    return (scale - 1) * (cond - uncond)


def cfg_star_delta(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """CFG with uncond first projected onto cond: (scale − 1)(cond − ⟨c,u⟩/‖u‖²·uncond)."""
    return (scale - 1) * (cond - projection_coefficient(cond, uncond) * uncond)


def stg_delta(cond: torch.Tensor, perturbed: torch.Tensor, scale: float) -> torch.Tensor:
    """Perturbation guidance: scale·(cond − perturbed); scale 0 is off."""
    return scale * (cond - perturbed)


def _apg_direction(
    guidance: torch.Tensor, cond: torch.Tensor, eta: float, norm_threshold: float
) -> torch.Tensor:
    if norm_threshold > 0:
        norm = guidance.norm(p=2, dim=(-1, -2, -3), keepdim=True)
        guidance = guidance * torch.clamp(norm_threshold / norm, max=1.0)
    parallel = projection_coefficient(guidance, cond) * cond
    return eta * parallel + (guidance - parallel)


def apg_delta(
    cond: torch.Tensor,
    uncond: torch.Tensor,
    scale: float,
    eta: float = 1.0,
    norm_threshold: float = 0.0,
) -> torch.Tensor:
    """Adaptive projected guidance: g = cond − uncond, optionally norm-clipped over the last
    three dims, split into parts parallel and orthogonal to cond;
    delta = (scale − 1)(eta·g∥ + g⊥)."""
    return (scale - 1) * _apg_direction(cond - uncond, cond, eta, norm_threshold)


class MomentumAPG:
    """The reference's stateful APG: g is accumulated as running = momentum·running + g, clipped
    at `norm_threshold`, projected as in `apg_delta`, and delta = scale·(eta·g∥ + g⊥).
    Keep one instance per run and modality."""

    def __init__(
        self, scale: float, eta: float, norm_threshold: float = 5.0, momentum: float = 0.0
    ) -> None:
        self.scale, self.eta = scale, eta
        self.norm_threshold, self.momentum = norm_threshold, momentum
        self.running: torch.Tensor | None = None

    def __call__(self, cond: torch.Tensor, uncond: torch.Tensor) -> torch.Tensor:
        guidance = cond - uncond
        if self.momentum != 0:
            prev = self.running
            self.running = guidance.clone() if prev is None else self.momentum * prev + guidance
            guidance = self.running
        return self.scale * _apg_direction(guidance, cond, self.eta, self.norm_threshold)
