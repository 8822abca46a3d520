"""`one-stage`: guided generation at the full size in one stage, no upsampler, no LoRA of its own.

The fastest guided pipeline for small clips; sizes are multiples of 32. The current reference
decodes with automatic tiling (1.0.0 never tiled here; the result is the same up to the
blending of large outputs).
"""

from __future__ import annotations

from ltx2cli.diffusion.schedules import ltx2_sigmas
from ltx2cli.pipelines import stages
from ltx2cli.pipelines.run import Context, Result
from ltx2cli.pipelines.stages import Grids

STAGES = ("prompt", "stage 1", "decode")


def run(ctx: Context) -> Result:
    s, ledger, report, timings = ctx.settings, ctx.ledger, ctx.report, ctx.timings
    grids = Grids.of(s, stages.latent_channels(ledger), ctx.compat)

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

    # 2. Image latents at full size (encoder freed), then guided Euler from pure noise.
    with timings.stage("stage 1", report):
        items = stages.image_conditionings(ledger, ctx.job.images, s.height, s.width, s.image_crf)
        ledger.free("video_encoder")
        states = stages.initial_states(grids, items, ctx.generator, ledger)

        guided = stages.guided(s, prompts, ctx.compat)
        sigmas = ltx2_sigmas(s.steps)
        states = stages.denoise(ledger, states, sigmas, guided, report, loras=ctx.files.loras)
        final = stages.final_latents(states, grids)

    # 3. Decode the video and the audio.
    with timings.stage("decode", report):
        video = stages.decode_video(ledger, final.video, ctx.generator)
        audio = stages.decode_audio(ledger, final.audio) if s.audio else None

    return Result(
        video=video,
        audio=audio,
        fps=s.frame_rate,
        latents=stages.named_latents(None, final),
        enhanced_prompt=prompts.enhanced,
    )
