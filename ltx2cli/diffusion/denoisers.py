"""The model-call protocol and the denoisers the sampling loops call.

The pipeline adapts its transformer to one callable, `VelocityModel`: it takes a `ModelCall`
(one `ModalityInput` per present stream plus the `Perturbations` of that pass) and returns the
raw velocity prediction per stream, `[B, N, C]` like the input latent. Field by field this is
the transformer's `Modality` (model.md §2.3) and perturbation config (§2.9):

- `latent` `[B, N, C]` tokens (target + appended conditioning), `positions` `[B, axes, N, 2]`;
- `sigma` `[B]`: the step's noise level (0 for a frozen stream), for the prompt and cross-modal
  AdaLN; `timesteps` `[B, N, 1]`: per-token σ·denoise_mask, for the per-token AdaLN;
- `context`: the text embeddings for this pass (positive or negative prompt);
- `enabled`: False skips the stream's own attention/FF (its guider skips this step);
- `attention_mask` `[B, N, N]` in [0, 1] or None;
- `Perturbations`: which attention to skip in which blocks (`Skip.VIDEO_SELF_ATTN` = replace
  the self-attention output by its value projection; `Skip.A2V_CROSS_ATTN` = drop the
  audio→video cross-attention residual; `None` blocks = every block).

A denoiser maps `(states, sigma, step) → x0 per modality`. The conversion from velocity is per
token, x0 = x − v·timesteps with the very timesteps the model saw, so clean conditioning tokens
come back unchanged. Sigma is a float or a 0-d tensor whose dtype is kept: the loops pass the
float32 schedule value, and res_2s its float64 midpoint sigma, which (as in the reference) makes
that pass's `sigma` and `timesteps` float64; the model rounds them after scaling by 1000. Passes
run one after another with the original batch size (as reference 1.0.0 does), so memory stays
at one forward pass.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ltx2cli.diffusion.guidance import GuidanceSchedule, GuiderParams
from ltx2cli.diffusion.state import AV, LatentState, timesteps_from_mask, to_denoised


class Skip(enum.IntEnum):
    """Attention a perturbed pass skips (values match the reference's row order)."""

    VIDEO_SELF_ATTN = 0
    AUDIO_SELF_ATTN = 1
    A2V_CROSS_ATTN = 2
    V2A_CROSS_ATTN = 3


@dataclass(frozen=True)
class Perturbations:
    """(kind, blocks) pairs; blocks `None` means every block."""

    skips: tuple[tuple[Skip, tuple[int, ...] | None], ...] = ()

    def skipped(self, kind: Skip, block: int) -> bool:
        return any(k == kind and (blocks is None or block in blocks) for k, blocks in self.skips)

    def keep_mask(self, num_blocks: int) -> torch.Tensor:
        """`[4, num_blocks]` float mask, 1 = keep, indexed by `Skip` value and block."""
        return torch.tensor(
            [[0.0 if self.skipped(kind, b) else 1.0 for b in range(num_blocks)] for kind in Skip]
        )


NO_PERTURBATIONS = Perturbations()


@dataclass(frozen=True)
class ModalityInput:
    """One stream's transformer input for one pass (see the module docstring)."""

    latent: torch.Tensor
    sigma: torch.Tensor
    timesteps: torch.Tensor
    positions: torch.Tensor
    context: torch.Tensor
    enabled: bool = True
    attention_mask: torch.Tensor | None = None


class Pass(enum.Enum):
    """The forward passes of one guided step, in the order they run."""

    COND = "cond"
    UNCOND = "uncond"
    PERTURBED = "perturbed"
    ISOLATED = "isolated"


@dataclass(frozen=True)
class ModelCall:
    video: ModalityInput | None
    audio: ModalityInput | None
    perturbations: Perturbations = NO_PERTURBATIONS
    kind: Pass = Pass.COND


Sigma = float | torch.Tensor
VelocityModel = Callable[[ModelCall], AV[torch.Tensor]]
Denoiser = Callable[[AV[LatentState], Sigma, int], AV[torch.Tensor]]


def modality_input(
    state: LatentState, context: torch.Tensor, sigma: Sigma, enabled: bool = True
) -> ModalityInput:
    """Build a stream's input from its state: `sigma` `[B]` (in sigma's dtype, float32 for a
    Python float) and `timesteps` = mask·sigma, promoted like the reference's (B, 1, 1)
    product. A frozen stream reports sigma 0."""
    b = state.latent.shape[0]
    sigma_b = torch.as_tensor(sigma, device=state.latent.device)
    if not sigma_b.is_floating_point():
        sigma_b = sigma_b.float()
    sigma_b = sigma_b.reshape(()).expand(b)
    if state.frozen:
        sigma_b = torch.zeros_like(sigma_b)
    return ModalityInput(
        latent=state.latent,
        sigma=sigma_b,
        timesteps=timesteps_from_mask(state.denoise_mask, sigma_b),
        positions=state.positions,
        context=context,
        enabled=enabled,
        attention_mask=state.attention_mask,
    )


def _x0(inputs: AV[ModalityInput], velocities: AV[torch.Tensor]) -> AV[torch.Tensor]:
    """x0 = x − v·timesteps per token, from the inputs the model saw (the X0 wrapper)."""

    def convert(name: str, m: ModalityInput) -> torch.Tensor | None:
        v = getattr(velocities, name)
        return None if v is None else to_denoised(m.latent, v, m.timesteps)

    return inputs.map(convert)


def _call(
    model: VelocityModel,
    states: AV[LatentState],
    contexts: AV[torch.Tensor],
    sigma: Sigma,
    kind: Pass = Pass.COND,
    perturbations: Perturbations = NO_PERTURBATIONS,
    enabled: AV[bool] | None = None,
) -> AV[torch.Tensor]:
    def build(name: str, state: LatentState) -> ModalityInput:
        context = getattr(contexts, name)
        if context is None:
            raise ValueError(f"no {name} text context given for the {kind.value} pass")
        on = True if enabled is None else bool(getattr(enabled, name))
        return modality_input(state, context, sigma, on)

    inputs = states.map(build)
    velocities = model(ModelCall(inputs.video, inputs.audio, perturbations, kind))
    return _x0(inputs, velocities)


@dataclass
class SimpleDenoiser:
    """One conditional pass per step, no guidance (distilled model, stage-2 refinement)."""

    model: VelocityModel
    contexts: AV[torch.Tensor]

    def __call__(self, states: AV[LatentState], sigma: Sigma, step: int) -> AV[torch.Tensor]:
        return _call(self.model, states, self.contexts, sigma)


def plan_passes(video: GuiderParams, audio: GuiderParams) -> list[tuple[Pass, Perturbations]]:
    """The passes a guided step runs: a pass runs when either modality's scale is active.

    STG skips video self-attention on the video guider's `stg_blocks` (if video STG is on) and
    audio self-attention on the audio guider's; modality isolation skips both A↔V
    cross-attentions in every block.
    """
    passes = [(Pass.COND, NO_PERTURBATIONS)]
    if video.uses_uncond or audio.uses_uncond:
        passes.append((Pass.UNCOND, NO_PERTURBATIONS))
    stg: list[tuple[Skip, tuple[int, ...] | None]] = []
    if video.uses_perturbed:
        stg.append((Skip.VIDEO_SELF_ATTN, video.stg_blocks))
    if audio.uses_perturbed:
        stg.append((Skip.AUDIO_SELF_ATTN, audio.stg_blocks))
    if stg:
        passes.append((Pass.PERTURBED, Perturbations(tuple(stg))))
    if video.uses_isolated or audio.uses_isolated:
        cross = ((Skip.A2V_CROSS_ATTN, None), (Skip.V2A_CROSS_ATTN, None))
        passes.append((Pass.ISOLATED, Perturbations(cross)))
    return passes


GuidanceLike = GuiderParams | GuidanceSchedule


def _schedule(guidance: GuidanceLike) -> GuidanceSchedule:
    if isinstance(guidance, GuidanceSchedule):
        return guidance
    return GuidanceSchedule.constant(guidance)


class GuidedDenoiser:
    """The multimodal guided denoiser with separate guidance for video and audio.

    Per step it resolves each modality's params from sigma, runs `plan_passes`, and combines
    each modality's predictions with its own params. The unconditional pass uses each
    modality's negative context (the positive one for a modality without guidance or without a
    negative context; a modality with cfg ≠ 1 must have one). A modality whose params skip this
    step is sent disabled and returns its previous x0; when both skip, no model call is made.
    Stateful (the previous x0): use one instance per denoising run.
    """

    def __init__(
        self,
        model: VelocityModel,
        contexts: AV[torch.Tensor],
        negative_contexts: AV[torch.Tensor] | None = None,
        video: GuidanceLike = GuiderParams(),
        audio: GuidanceLike = GuiderParams(),
    ) -> None:
        self.model = model
        self.contexts = contexts
        self.negative_contexts = negative_contexts or AV()
        self.video, self.audio = _schedule(video), _schedule(audio)
        self.last: AV[torch.Tensor] = AV()

    def _uncond_contexts(
        self, params: AV[GuiderParams], states: AV[LatentState]
    ) -> AV[torch.Tensor]:
        def pick(name: str, _: LatentState) -> torch.Tensor:
            negative = getattr(self.negative_contexts, name)
            if getattr(params, name).uses_uncond and negative is None:
                raise ValueError(f"{name} guidance has cfg_scale != 1 but no negative context")
            return negative if negative is not None else getattr(self.contexts, name)

        return states.map(pick)

    def __call__(self, states: AV[LatentState], sigma: Sigma, step: int) -> AV[torch.Tensor]:
        # An absent modality's guidance must not add passes.
        value = float(sigma)
        params = AV(
            video=self.video.at(value) if states.video is not None else GuiderParams(),
            audio=self.audio.at(value) if states.audio is not None else GuiderParams(),
        )
        skipping = AV(video=params.video.skips(step), audio=params.audio.skips(step))
        if all(getattr(skipping, name) for name, _ in states.items()):
            return self.last
        enabled = AV(video=not skipping.video, audio=not skipping.audio)

        results: dict[Pass, AV[torch.Tensor]] = {}
        for kind, perturbations in plan_passes(params.video, params.audio):
            contexts = self.contexts
            if kind is Pass.UNCOND:
                contexts = self._uncond_contexts(params, states)
            results[kind] = _call(self.model, states, contexts, sigma, kind, perturbations, enabled)

        def guided(name: str, _: LatentState) -> torch.Tensor:
            if getattr(skipping, name):
                return getattr(self.last, name)
            terms = {kind: getattr(av, name) for kind, av in results.items()}
            return getattr(params, name).combine(
                terms[Pass.COND],
                terms.get(Pass.UNCOND, 0.0),
                terms.get(Pass.PERTURBED, 0.0),
                terms.get(Pass.ISOLATED, 0.0),
            )

        self.last = states.map(guided)
        return self.last


DeltaFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class DeltaGuidedDenoiser:
    """A positive pass plus, when `active`, a negative-prompt pass; each modality's x0 is
    cond + delta(cond, uncond) — CFG, CFG-star or APG (see `guidance`). Pass an `AV` of deltas
    for per-modality settings or for stateful deltas (`MomentumAPG`: one per modality)."""

    def __init__(
        self,
        model: VelocityModel,
        contexts: AV[torch.Tensor],
        negative_contexts: AV[torch.Tensor],
        delta: DeltaFn | AV[DeltaFn],
        active: bool = True,
    ) -> None:
        self.model, self.contexts, self.negative_contexts = model, contexts, negative_contexts
        self.deltas = delta if isinstance(delta, AV) else AV(video=delta, audio=delta)
        self.active = active

    def __call__(self, states: AV[LatentState], sigma: Sigma, step: int) -> AV[torch.Tensor]:
        cond = _call(self.model, states, self.contexts, sigma)
        if not self.active:
            return cond
        uncond = _call(self.model, states, self.negative_contexts, sigma, Pass.UNCOND)
        return cond.map(lambda name, c: c + getattr(self.deltas, name)(c, getattr(uncond, name)))
