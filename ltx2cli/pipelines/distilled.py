"""`distilled`: the distilled checkpoint, 8 steps at half size, x2 latent upsampling, then 3 steps
at full size; one conditional pass per step (no negative prompt, no guidance).

One transformer instance (user LoRAs fused) serves both stages and the VAE encoder stays
loaded beside it, as in the reference. The final (stage-2) audio is decoded.
"""

from __future__ import annotations

from dataclasses import replace

from ltx2cli.diffusion.denoisers import SimpleDenoiser
from ltx2cli.diffusion.schedules import DISTILLED_SIGMAS_STAGE_2, distilled_sigmas
from ltx2cli.pipelines import stages
from ltx2cli.pipelines.run import Context, Result
from ltx2cli.pipelines.stages import Grids

STAGES = ("prompt", "stage 1", "upsample", "stage 2", "decode")
STAGE_2_NOISE_SCALE = DISTILLED_SIGMAS_STAGE_2[0]
# The reference seeds distilled prompt enhancement with its library default, not the user seed.
ENHANCE_SEED = 42


def run(ctx: Context) -> Result:
    s, ledger, report, timings = ctx.settings, ctx.ledger, ctx.report, ctx.timings
    channels = stages.latent_channels(ledger)
    half, full = Grids.of(s, channels, ctx.compat, 2), Grids.of(s, channels, ctx.compat)

    # 1. The prompt alone → contexts (Gemma freed before the connectors load).
    with timings.stage("prompt", report):
        prompts = stages.encode_prompts(
            ledger,
            ctx.job.prompt,
            None,
            audio=s.audio,
            enhance=s.enhance_prompt,
            enhance_seed=ENHANCE_SEED,
            image=ctx.job.images[0] if ctx.job.images else None,
        )

    def simple(model):
        return SimpleDenoiser(model, prompts.positive)

    # 2. Stage 1 at half size: 8 distilled steps from pure noise (transformer kept).
    with timings.stage("stage 1", report):
        items = stages.image_conditionings(
            ledger, ctx.job.images, s.height // 2, s.width // 2, s.image_crf
        )
        states = stages.initial_states(half, items, ctx.generator, ledger)
        states = stages.denoise(
            ledger, states, distilled_sigmas(1), simple, report, loras=ctx.files.loras, keep=True
        )
        stage1 = stages.final_latents(states, half)

    # 3. Upsample x2 and encode the images at full size.
    with timings.stage("upsample", report):
        upsampled = stages.upsample_video(ledger, stage1.video)
        items = stages.image_conditionings(ledger, ctx.job.images, s.height, s.width, s.image_crf)
        ledger.free("video_encoder")

    # 4. Stage 2: 3 distilled steps from sigma 0.909375 with the same transformer.
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
            ledger, states, distilled_sigmas(2), simple, report, loras=ctx.files.loras
        )
        final = stages.final_latents(states, full)

    # 5. Decode the video and the final audio.
    with timings.stage("decode", report):
        video = stages.decode_video(ledger, final.video, ctx.generator)
        audio = stages.decode_audio(ledger, final.audio) if s.audio else None

    return Result(
        video=video,
        audio=audio,
        fps=s.frame_rate,
        latents=stages.named_latents(stage1, final),
        enhanced_prompt=prompts.enhanced,
    )
