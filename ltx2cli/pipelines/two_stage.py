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
from ltx2cli.diffusion.schedules import DISTILLED_SIGMAS_STAGE_2, distilled_sigmas, ltx2_sigmas
from ltx2cli.pipelines import stages
from ltx2cli.pipelines.files import ResolvedLora
from ltx2cli.pipelines.run import Context, Result
from ltx2cli.pipelines.stages import Grids

STAGES = ("prompt", "stage 1", "upsample", "stage 2", "decode")
STAGE_2_NOISE_SCALE = DISTILLED_SIGMAS_STAGE_2[0]


@dataclass(frozen=True)
class Recipe:
    """What the two-stage family varies: the sampler of both stages, the stage-1 schedule
    (from the steps and the stage-1 video token count), and the distilled LoRA's strength in
    each stage (None: not fused in that stage; else a strength, or `from_flag` for the
    strength given with `--distilled-lora`). `guiding_images`: every image, frame 0 too, is
    an appended keyframe guide (keyframe interpolation); `stage1_audio`: decode the stage-1
    audio where the compat record says so (False: always the final audio)."""

    sampler: str = "euler"
    stage1_sigmas: Callable[[int, int], torch.Tensor] = lambda steps, _tokens: ltx2_sigmas(steps)
    distilled_stage1: float | None = None
    distilled_stage2: float | str = "from_flag"
    guiding_images: bool = False
    stage1_audio: bool = True


def _distilled(ctx: Context, strength: float | str | None) -> tuple[ResolvedLora, ...]:
    lora = ctx.files.distilled_lora
    if strength is None or lora is None:
        return ()
    return (lora if strength == "from_flag" else replace(lora, strength=strength),)


def run(ctx: Context, recipe: Recipe = Recipe()) -> Result:
    s, ledger, report, timings = ctx.settings, ctx.ledger, ctx.report, ctx.timings
    channels = stages.latent_channels(ledger)
    half, full = Grids.of(s, channels, ctx.compat, 2), Grids.of(s, channels, ctx.compat)
    stage1_loras = (*ctx.files.loras, *_distilled(ctx, recipe.distilled_stage1))
    stage2_loras = (*ctx.files.loras, *_distilled(ctx, recipe.distilled_stage2))

    # 1. Prompt and negative prompt → contexts (Gemma freed before the connectors load).
    with timings.stage("prompt", report):
        prompts = stages.encode_prompts(
            ledger,
            ctx.job.prompt,
            s.negative_prompt,
            audio=s.audio,
            enhance=s.enhance_prompt,
            enhance_seed=s.seed,
            image=ctx.job.images[0] if ctx.job.images else None,
        )

    # 2. Stage 1 at half size: image latents (encoder freed), guided Euler from pure noise.
    with timings.stage("stage 1", report):
        items = stages.image_conditionings(
            ledger, ctx.job.images, s.height // 2, s.width // 2, s.image_crf,
            guiding=recipe.guiding_images,
        )  # fmt: skip
        ledger.free("video_encoder")
        states = stages.initial_states(half, items, ctx.generator, ledger)

        guided = stages.guided(s, prompts, ctx.compat)
        sigmas = recipe.stage1_sigmas(s.steps, half.video.shape.token_count)
        states = stages.denoise(
            ledger, states, sigmas, guided, report, loras=stage1_loras, sampler=recipe.sampler
        )
        stage1 = stages.final_latents(states, half)

    # 3. Upsample x2, stage-2 image latents at full size (encoder freed).
    with timings.stage("upsample", report):
        upsampled = stages.upsample_video(ledger, stage1.video)
        items = stages.image_conditionings(
            ledger, ctx.job.images, s.height, s.width, s.image_crf, guiding=recipe.guiding_images
        )
        ledger.free("video_encoder")

    # 4. Stage 2: the three distilled sigmas from 0.909375, no guidance.
    with timings.stage("stage 2", report):
        states = stages.initial_states(
            full,
            items,
            ctx.generator,
            ledger,
            noise_scale=STAGE_2_NOISE_SCALE,
            initial=replace(stage1, video=upsampled),
        )
        states = stages.denoise(
            ledger,
            states,
            distilled_sigmas(2),
            lambda model: SimpleDenoiser(model, prompts.positive),
            report,
            loras=stage2_loras,
            sampler=recipe.sampler,
        )
        final = stages.final_latents(states, full)

    # 5. Decode the video (tiled when large) and the audio.
    with timings.stage("decode", report):
        video = stages.decode_video(ledger, final.video, ctx.generator)
        stage1_audio = recipe.stage1_audio and ctx.compat.stage1_audio_decode
        audio_latent = stage1.audio if stage1_audio else final.audio
        audio = stages.decode_audio(ledger, audio_latent) if s.audio else None

    return Result(
        video=video,
        audio=audio,
        fps=s.frame_rate,
        latents=stages.named_latents(stage1, final),
        enhanced_prompt=prompts.enhanced,
    )
