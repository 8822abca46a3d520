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
    s, ledger = ctx.settings, ctx.ledger
    grids = Grids.of(s, stages.latent_channels(ledger), ctx.compat)

    # 1. Prompt and negative prompt → contexts (Gemma freed before the connectors load).
    prompts = ctx.prompts()

    # 2. Image latents at full size (encoder freed), then guided Euler from pure noise.
    with ctx.timings.stage("stage 1", ctx.report):
        items = ctx.images()
        ledger.free("video_encoder")
        states = stages.initial_states(grids, items, ctx.generator, ledger)
        guided = stages.guided(s, prompts, ctx.compat)
        sigmas = ltx2_sigmas(s.steps)
        states = stages.denoise(ledger, states, sigmas, guided, ctx.report, loras=ctx.files.loras)
        final = stages.final_latents(states, grids)

    # 3. Decode the video and the audio.
    video, audio = ctx.decode(final.video, final.audio)
    return Result(video, audio, s.frame_rate, stages.named_latents(None, final), prompts.enhanced)
