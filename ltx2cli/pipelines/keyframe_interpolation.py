"""`keyframe-interpolation`: a clip through images at chosen frames (§10.6).

The two-stage flow where every image, frame 0 included, is an appended keyframe guide
("guiding latent") in both stages; the guides steer the clip and are dropped before decoding.
First/last-frame interpolation is the two-keyframe case. As in the reference the VAE encoder
stays loaded through stage 1 into the upsampling, stage 2 adds the distilled LoRA, and the
final (stage-2) audio is decoded.
"""

from __future__ import annotations

from ltx2cli.diffusion.denoisers import SimpleDenoiser
from ltx2cli.diffusion.schedules import ltx2_sigmas
from ltx2cli.errors import UsageError
from ltx2cli.pipelines import stages
from ltx2cli.pipelines.run import Context, Result
from ltx2cli.pipelines.stages import Grids
from ltx2cli.pipelines.two_stage import _distilled

STAGES = ("prompt", "stage 1", "upsample", "stage 2", "decode")


def run(ctx: Context) -> Result:
    s, ledger = ctx.settings, ctx.ledger
    if not ctx.job.images:
        raise UsageError("interpolation needs keyframes", "pass --keyframe IMG@FRAME, e.g. a.png@0")
    channels = stages.latent_channels(ledger)
    half, full = Grids.of(s, channels, ctx.compat, 2), Grids.of(s, channels, ctx.compat)

    # 1. Prompt and negative prompt → contexts.
    prompts = ctx.prompts()

    # 2. Stage 1 at half size: the keyframes appended as guides, guided Euler from noise.
    with ctx.timings.stage("stage 1", ctx.report):
        items = ctx.images(2, guiding=True)
        states = stages.initial_states(half, items, ctx.generator, ledger)
        guided = stages.guided(s, prompts, ctx.compat)
        sigmas = ltx2_sigmas(s.steps)
        states = stages.denoise(ledger, states, sigmas, guided, ctx.report, loras=ctx.files.loras)
        stage1 = stages.final_latents(states, half)

    # 3-4. Upsample x2, the keyframes at full size as guides again, distilled refinement.
    def simple(model):
        return SimpleDenoiser(model, prompts.positive)

    loras = (*ctx.files.loras, *_distilled(ctx, "from_flag"))
    final = ctx.refine(stage1, full, simple, loras, guiding=True)

    # 5. Decode the video and the final audio.
    video, audio = ctx.decode(final.video, final.audio)
    return Result(video, audio, s.frame_rate, stages.named_latents(stage1, final), prompts.enhanced)
