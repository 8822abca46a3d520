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
timesteps to float32 for x0, as the reference's X0 wrapper does.

The guided denoiser can run the passes of a step as batched calls (as the current reference
does), each pass a block of the batch with its own perturbations; the results equal separate
passes to float32 rounding. `max_passes` caps a call's passes: 1 (the default) runs them one
after another at the original batch size, as 1.0.0 does; None puts them all in one call (what
the pipelines use). A call that runs out of memory is split in halves automatically and the
smaller size kept for the later steps.
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
    """One forward call: the streams' inputs, what to skip, and which guided pass it is.

    A batched call stacks several passes along the batch (`passes`, in order, each with the
    original batch size) and gives each sample its own perturbations (`sample_perturbations`);
    otherwise `perturbations` apply to every sample.
    """

    video: Modality | None
    audio: Modality | None
    perturbations: Perturbations = ()
    kind: Pass = Pass.COND
    passes: tuple[Pass, ...] = ()
    sample_perturbations: tuple[Perturbations, ...] | None = None


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
        batch = (call.video or call.audio).latent.shape[0]
        per_sample = call.sample_perturbations or (call.perturbations,) * batch
        batched = None
        if any(per_sample):
            batched = BatchedPerturbations(list(per_sample), transformer.num_blocks)
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


def _stack(modalities: list[Modality]) -> Modality:
    """Several passes' inputs of one stream as one batch (in order)."""
    first = modalities[0]

    def cat(field: str) -> torch.Tensor | None:
        values = [getattr(m, field) for m in modalities]
        return None if values[0] is None else torch.cat(values)

    return Modality(
        latent=cat("latent"),
        sigma=cat("sigma"),
        timesteps=cat("timesteps"),
        positions=cat("positions"),
        context=cat("context"),
        enabled=first.enabled,
        context_mask=cat("context_mask"),
        attention_mask=cat("attention_mask"),
    )


PassSpec = tuple[Pass, AV[torch.Tensor], Perturbations]


def _is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    oom = getattr(torch, "OutOfMemoryError", ())
    return (oom and isinstance(exc, oom)) or "out of memory" in text or "can't allocate" in text


def _call_batched(
    model: VelocityModel,
    states: AV[LatentState],
    passes: list[PassSpec],
    sigma: Sigma,
    enabled: AV[bool] | None,
) -> dict[Pass, AV[torch.Tensor]]:
    """Run `passes` as one batched call; x0 per pass and stream, from what each pass saw."""

    def inputs_of(kind: Pass, contexts: AV[torch.Tensor]) -> AV[Modality]:
        def build(name: str, state: LatentState) -> Modality:
            context = getattr(contexts, name)
            if context is None:
                raise ValueError(f"no {name} text context given for the {kind.value} pass")
            on = True if enabled is None else bool(getattr(enabled, name))
            return to_modality(state, context, sigma, on)

        return states.map(build)

    inputs = [inputs_of(kind, contexts) for kind, contexts, _ in passes]
    if len(passes) == 1:
        kind, _, perturbations = passes[0]
        call = ModelCall(inputs[0].video, inputs[0].audio, perturbations, kind)
    else:
        batch = next(state for _, state in states.items()).latent.shape[0]
        stacked = AV(
            **{name: _stack([getattr(i, name) for i in inputs]) for name, _ in states.items()}
        )
        call = ModelCall(
            stacked.video,
            stacked.audio,
            kind=passes[0][0],
            passes=tuple(kind for kind, _, _ in passes),
            sample_perturbations=tuple(p for _, _, p in passes for _ in range(batch)),
        )
    velocities = model(call)
    results: dict[Pass, AV[torch.Tensor]] = {}
    for index, (kind, _, _) in enumerate(passes):

        def x0(name: str, m: Modality, index: int = index) -> torch.Tensor | None:
            v = getattr(velocities, name)
            if v is None:
                return None
            b = m.latent.shape[0]
            return velocity_to_x0(m.latent, v[index * b : (index + 1) * b], m.timesteps)

        results[kind] = inputs[index].map(x0)
    return results


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
    return _call_batched(model, states, [(kind, contexts, perturbations)], sigma, enabled)[kind]


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
        max_passes: int | None = 1,
    ) -> None:
        self.model = model
        self.compat = compat
        self.contexts = contexts
        self.negative_contexts = negative_contexts or AV()
        self.video, self.audio = _schedule(video), _schedule(audio)
        self.last: AV[torch.Tensor] = AV()
        self.max_passes = max_passes

    def _run(
        self,
        states: AV[LatentState],
        passes: list[PassSpec],
        sigma: Sigma,
        enabled: AV[bool],
    ) -> dict[Pass, AV[torch.Tensor]]:
        """The passes in batched calls of at most `max_passes`; a call that runs out of memory
        is retried in halves, and the smaller size is kept for the later steps."""
        size = len(passes) if self.max_passes is None else max(1, self.max_passes)
        if not _stackable(passes):
            size = 1
        results: dict[Pass, AV[torch.Tensor]] = {}
        start = 0
        while start < len(passes):
            group = passes[start : start + size]
            try:
                results.update(_call_batched(self.model, states, group, sigma, enabled))
            except (RuntimeError, MemoryError) as exc:
                if size == 1 or not _is_out_of_memory(exc):
                    raise
                size = self.max_passes = size // 2
                _empty_device_cache(states)
                continue
            start += len(group)
        return results

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

        passes: list[PassSpec] = []
        for kind, perturbations in plan_passes(params.video, params.audio):
            contexts = self.contexts
            if kind is Pass.UNCOND:
                contexts = self._uncond_contexts(params, states)
            passes.append((kind, contexts, perturbations))
        results = self._run(states, passes, sigma, enabled)

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


def _stackable(passes: list[PassSpec]) -> bool:
    """Passes batch together when their contexts have the same shapes."""
    shapes = {
        tuple(None if c is None else tuple(c.shape) for c in (ctx.video, ctx.audio))
        for _, ctx, _ in passes
    }
    return len(shapes) == 1


def _empty_device_cache(states: AV[LatentState]) -> None:
    device = next(state for _, state in states.items()).latent.device
    if device.type == "cuda":
        torch.cuda.empty_cache()


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
