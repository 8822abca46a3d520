"""`distilled`: the distilled checkpoint, 8 steps at half size, x2 latent upsampling, then 3 steps
at full size; one conditional pass per step (no negative prompt, no guidance).

One transformer instance (user LoRAs fused) serves both stages and the VAE encoder stays
loaded beside it, as in the reference. The final (stage-2) audio is decoded.
"""

from __future__ import annotations

from ltx2cli.diffusion.denoisers import SimpleDenoiser
from ltx2cli.diffusion.schedules import distilled_sigmas
from ltx2cli.pipelines import stages
from ltx2cli.pipelines.run import Context, Result
from ltx2cli.pipelines.stages import Grids

STAGES = ("prompt", "stage 1", "upsample", "stage 2", "decode")
# The reference seeds distilled prompt enhancement with its library default, not the user seed.
ENHANCE_SEED = 42


def run(ctx: Context) -> Result:
    s, ledger = ctx.settings, ctx.ledger
    channels = stages.latent_channels(ledger)
    half, full = Grids.of(s, channels, ctx.compat, 2), Grids.of(s, channels, ctx.compat)

    # 1. The prompt alone → contexts (Gemma freed before the connectors load).
    prompts = ctx.prompts(negative=False, enhance_seed=ENHANCE_SEED)

    def simple(model):
        return SimpleDenoiser(model, prompts.positive)

    # 2. Stage 1 at half size: 8 distilled steps from pure noise (transformer and encoder kept).
    with ctx.timings.stage("stage 1", ctx.report):
        states = stages.initial_states(half, ctx.images(2), ctx.generator, ledger)
        sigmas = distilled_sigmas(1)
        loras = ctx.files.loras
        states = stages.denoise(ledger, states, sigmas, simple, ctx.report, loras=loras, keep=True)
        stage1 = stages.final_latents(states, half)

    # 3-4. Upsample x2, images at full size, 3 distilled steps with the same transformer.
    final = ctx.refine(stage1, full, simple, ctx.files.loras)

    # 5. Decode the video and the final audio.
    video, audio = ctx.decode(final.video, final.audio)
    return Result(video, audio, s.frame_rate, stages.named_latents(stage1, final), prompts.enhanced)
