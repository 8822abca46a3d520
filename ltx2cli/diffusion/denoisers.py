"""The model-call protocol and the denoisers the sampling loops call.

The denoisers speak the transformer's own vocabulary (`models.transformer`): a `ModelCall`
holds one `Modality` per present stream and the pass's perturbations as a tuple of
`Perturbation`; the model returns the raw velocity per stream, `[B, N, C]` like the
input latent. `transformer_velocity_model(transformer)` makes an `LTXTransformer` that model.

- `to_modality` builds a stream's input from its `LatentState`: `sigma` `[B]` (0 for a frozen
  stream) for the prompt and cross-modal AdaLN, `timesteps` `[B, N, 1]` = per-token
  σ·denoise_mask for the per-token AdaLN, the pass's text context, `enabled` (False when the
  stream's guider skips this step) and the state's attention mask.
- Perturbations: STG skips video / audio self-attention on the guider's `stg_blocks`; the
  modality-isolated pass skips both A↔V cross-attentions in every block.

A denoiser maps `(states, sigma, step) → x0 per modality`. The conversion from velocity is the
transformer's `velocity_to_x0`, per token, with the very timesteps the model saw, so clean
conditioning tokens come back unchanged. Sigma is a float or a 0-d tensor whose dtype is kept:
the loops pass the float32 schedule value, and res_2s its float64 midpoint sigma, which (as in
the reference) makes that pass's `sigma` and `timesteps` float64; `velocity_to_x0` rounds the
timesteps to float32 for x0, as the reference's X0 wrapper does. Passes run one after another
with the original batch size (as reference 1.0.0 does), so memory stays at one forward pass.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ltx2cli.compat import CURRENT, Compat
from ltx2cli.diffusion.guidance import GuidanceSchedule, GuiderParams
from ltx2cli.diffusion.state import AV, LatentState, timesteps_from_mask
from ltx2cli.models.transformer import (
    BatchedPerturbations,
    LTXTransformer,
    Modality,
    Perturbation,
    PerturbationType,
    velocity_to_x0,
)


class Pass(enum.Enum):
    """The forward passes of one guided step, in the order they run."""

    COND = "cond"
    UNCOND = "uncond"
    PERTURBED = "perturbed"
    ISOLATED = "isolated"


Perturbations = tuple[Perturbation, ...]


@dataclass(frozen=True)
class ModelCall:
    """One forward pass: the streams' inputs, what to skip, and which guided pass it is."""

    video: Modality | None
    audio: Modality | None
    perturbations: Perturbations = ()
    kind: Pass = Pass.COND


Sigma = float | torch.Tensor
VelocityModel = Callable[[ModelCall], AV[torch.Tensor]]
Denoiser = Callable[[AV[LatentState], Sigma, int], AV[torch.Tensor]]


def transformer_velocity_model(transformer: LTXTransformer) -> VelocityModel:
    """The denoisers' model for `transformer`: one forward per call, without autograd, with the
    pass's perturbations applied to every sample of the batch. A block outside the
    transformer's range (e.g. the released STG block 28 on a 2-block tiny model) raises
    ValueError."""

    @torch.no_grad()
    def velocity(call: ModelCall) -> AV[torch.Tensor]:
        batched = None
        if call.perturbations:
            batch = (call.video or call.audio).latent.shape[0]
            batched = BatchedPerturbations([call.perturbations] * batch, transformer.num_blocks)
        return AV(*transformer(call.video, call.audio, batched))

    return velocity


def to_modality(
    state: LatentState, context: torch.Tensor, sigma: Sigma, enabled: bool = True
) -> Modality:
    """A stream's input from its state: `sigma` `[B]` (in sigma's dtype, float32 for a Python
    float) and `timesteps` = mask·sigma, promoted like the reference's (B, 1, 1) product. A
    frozen stream reports sigma 0."""
    b = state.latent.shape[0]
    sigma_b = torch.as_tensor(sigma, device=state.latent.device)
    if not sigma_b.is_floating_point():
        sigma_b = sigma_b.float()
    sigma_b = sigma_b.reshape(()).expand(b)
    if state.frozen:
        sigma_b = torch.zeros_like(sigma_b)
    return Modality(
        latent=state.latent,
        sigma=sigma_b,
        timesteps=timesteps_from_mask(state.denoise_mask, sigma_b),
        positions=state.positions,
        context=context,
        enabled=enabled,
        attention_mask=state.attention_mask,
    )


def _call(
    model: VelocityModel,
    states: AV[LatentState],
    contexts: AV[torch.Tensor],
    sigma: Sigma,
    kind: Pass = Pass.COND,
    perturbations: Perturbations = (),
    enabled: AV[bool] | None = None,
) -> AV[torch.Tensor]:
    """Run one pass and return x0 per stream (from the inputs the model saw)."""

    def build(name: str, state: LatentState) -> Modality:
        context = getattr(contexts, name)
        if context is None:
            raise ValueError(f"no {name} text context given for the {kind.value} pass")
        on = True if enabled is None else bool(getattr(enabled, name))
        return to_modality(state, context, sigma, on)

    inputs = states.map(build)
    velocities = model(ModelCall(inputs.video, inputs.audio, perturbations, kind))

    def x0(name: str, m: Modality) -> torch.Tensor | None:
        v = getattr(velocities, name)
        return None if v is None else velocity_to_x0(m.latent, v, m.timesteps)

    return inputs.map(x0)


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
    passes: list[tuple[Pass, Perturbations]] = [(Pass.COND, ())]
    if video.uses_uncond or audio.uses_uncond:
        passes.append((Pass.UNCOND, ()))
    stg: list[Perturbation] = []
    if video.uses_perturbed:
        stg.append(Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, video.stg_blocks))
    if audio.uses_perturbed:
        stg.append(Perturbation(PerturbationType.SKIP_AUDIO_SELF_ATTN, audio.stg_blocks))
    if stg:
        passes.append((Pass.PERTURBED, tuple(stg)))
    if video.uses_isolated or audio.uses_isolated:
        cross = (
            Perturbation(PerturbationType.SKIP_A2V_CROSS_ATTN),
            Perturbation(PerturbationType.SKIP_V2A_CROSS_ATTN),
        )
        passes.append((Pass.ISOLATED, cross))
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
    Stateful (the previous x0): use one instance per denoising run. `compat` picks the dtype
    the passes are combined in.
    """

    def __init__(
        self,
        model: VelocityModel,
        contexts: AV[torch.Tensor],
        negative_contexts: AV[torch.Tensor] | None = None,
        video: GuidanceLike = GuiderParams(),
        audio: GuidanceLike = GuiderParams(),
        compat: Compat = CURRENT,
    ) -> None:
        self.model = model
        self.compat = compat
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
                self.compat,
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
