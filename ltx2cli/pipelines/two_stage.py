"""`two-stage` (the default): guided generation at half size, x2 latent upsampling, then three
distilled refinement steps at full size with the distilled LoRA fused in.

Video and audio are generated jointly; `--no-audio` runs the video-only transformer path.
With the current reference the stage-1 audio latent is the one decoded (stage 2 refines it
alongside the video, and the result is discarded); with compat 1.0.0 the stage-2 audio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from ltx2cli.diffusion.denoisers import SimpleDenoiser
from ltx2cli.diffusion.schedules import ltx2_sigmas
from ltx2cli.pipelines import stages
from ltx2cli.pipelines.files import ResolvedLora
from ltx2cli.pipelines.run import Context, Result
from ltx2cli.pipelines.stages import Grids

STAGES = ("prompt", "stage 1", "upsample", "stage 2", "decode")


@dataclass(frozen=True)
class Recipe:
    """What the two-stage family varies: the sampler of both stages, the stage-1 schedule
    (from the steps and the stage-1 video token count), and the distilled LoRA's strength in
    each stage (None: not fused in that stage; else a strength, or `from_flag` for the
    strength given with `--distilled-lora`)."""

    sampler: str = "euler"
    stage1_sigmas: Callable[[int, int], torch.Tensor] = lambda steps, _tokens: ltx2_sigmas(steps)
    distilled_stage1: float | None = None
    distilled_stage2: float | str = "from_flag"


def _distilled(ctx: Context, strength: float | str | None) -> tuple[ResolvedLora, ...]:
    lora = ctx.files.distilled_lora
    if strength is None or lora is None:
        return ()
    return (lora if strength == "from_flag" else replace(lora, strength=strength),)


def run(ctx: Context, recipe: Recipe = Recipe()) -> Result:
    s, ledger = ctx.settings, ctx.ledger
    channels = stages.latent_channels(ledger)
    half, full = Grids.of(s, channels, ctx.compat, 2), Grids.of(s, channels, ctx.compat)
    stage1_loras = (*ctx.files.loras, *_distilled(ctx, recipe.distilled_stage1))
    stage2_loras = (*ctx.files.loras, *_distilled(ctx, recipe.distilled_stage2))

    # 1. Prompt and negative prompt → contexts (Gemma freed before the connectors load).
    prompts = ctx.prompts()

    # 2. Stage 1 at half size: image latents (encoder freed), guided sampling from pure noise.
    with ctx.timings.stage("stage 1", ctx.report):
        items = ctx.images(2)
        ledger.free("video_encoder")
        states = stages.initial_states(half, items, ctx.generator, ledger)
        guided = stages.guided(s, prompts, ctx.compat)
        sigmas = recipe.stage1_sigmas(s.steps, half.video.shape.token_count)
        states = stages.denoise(
            ledger, states, sigmas, guided, ctx.report, loras=stage1_loras, sampler=recipe.sampler
        )
        stage1 = stages.final_latents(states, half)

    # 3-4. Upsample x2, images at full size, the distilled sigmas from 0.909375 (no guidance).
    def simple(model):
        return SimpleDenoiser(model, prompts.positive)

    final = ctx.refine(stage1, full, simple, stage2_loras, recipe.sampler)

    # 5. Decode the video (tiled when large) and the audio of the stage the compat names.
    audio_latent = stage1.audio if ctx.compat.stage1_audio_decode else final.audio
    video, audio = ctx.decode(final.video, audio_latent)
    return Result(video, audio, s.frame_rate, stages.named_latents(stage1, final), prompts.enhanced)
