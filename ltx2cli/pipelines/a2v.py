"""`a2v`: a video for an input soundtrack (§10.7). The audio is encoded once and stays frozen
(denoise mask 0, reported sigma 0) in both stages, conditioning the video through
cross-attention; the output carries the ORIGINAL decoded waveform, not a VAE round trip.

Stage 1 is guided at half size (the video guider with the negative prompt; audio neutral and
keeping its positive context in the unconditional pass), then the x2 upsampler and the
three distilled refinement steps with the distilled LoRA, audio frozen again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ltx2cli.diffusion.denoisers import GuidedDenoiser, SimpleDenoiser
from ltx2cli.diffusion.guidance import GuiderParams
from ltx2cli.diffusion.schedules import ltx2_sigmas
from ltx2cli.diffusion.state import AV, LatentState, freeze
from ltx2cli.media.audio import read_audio
from ltx2cli.pipelines import stages
from ltx2cli.pipelines.job import Job
from ltx2cli.pipelines.run import Context, Result
from ltx2cli.pipelines.stages import Grids
from ltx2cli.pipelines.two_stage import _distilled

STAGES = ("prompt", "encode audio", "stage 1", "upsample", "stage 2", "decode")
# The reference's a2v CLI leaves the enhancement seed at its library default.
ENHANCE_SEED = 42


@dataclass(frozen=True)
class A2VJob(Job):
    """A generation job driven by the soundtrack `audio` from `audio_start` seconds on."""

    audio: Path = Path()
    audio_start: float = 0.0


@dataclass(frozen=True)
class FrozenAudio:
    """The conditioning item that makes the whole audio stream clean conditioning."""

    def apply(self, state: LatentState, grid) -> LatentState:
        return freeze(state)


def run(ctx: Context) -> Result:
    job: A2VJob = ctx.job
    s, ledger, report, timings = ctx.settings, ctx.ledger, ctx.report, ctx.timings
    channels = stages.latent_channels(ledger)
    half, full = Grids.of(s, channels, ctx.compat, 2), Grids.of(s, channels, ctx.compat)

    # 1. Prompt and negative prompt → contexts (enhancement with the library seed).
    prompts = ctx.prompts(enhance_seed=ENHANCE_SEED)

    # 2. The soundtrack: decoded at its own rate (stereo), encoded to the clip's length.
    with timings.stage("encode audio", report):
        original = read_audio(
            job.audio, start_time=job.audio_start, max_duration=s.num_frames / s.frame_rate
        )
        audio_latent = stages.encode_audio(ledger, original, full.audio.shape.frames)

    def guided(model):
        # Video guided with its negative context; audio neutral, positive in every pass.
        negative = AV(video=prompts.negative.video)
        video = stages.guider(s, "video")
        return GuidedDenoiser(
            model, prompts.positive, negative, video, GuiderParams(), ctx.compat, None
        )

    # 3. Stage 1 at half size from pure video noise, the audio frozen.
    with timings.stage("stage 1", report):
        items = ctx.images(2)
        ledger.free("video_encoder")
        states = stages.initial_states(
            half,
            items,
            ctx.generator,
            ledger,
            initial=AV(audio=audio_latent),
            audio_items=[FrozenAudio()],
        )
        sigmas = ltx2_sigmas(s.steps)
        states = stages.denoise(ledger, states, sigmas, guided, report, loras=ctx.files.loras)
        stage1 = stages.final_latents(states, half)

    # 4-5. Upsample x2, images at full size, three distilled steps (distilled LoRA), the
    #      audio frozen again.
    def simple(model):
        return SimpleDenoiser(model, prompts.positive)

    loras = (*ctx.files.loras, *_distilled(ctx, "from_flag"))
    final = ctx.refine(stage1, full, simple, loras, audio_items=[FrozenAudio()])

    # 6. Decode the video; the soundtrack is the original waveform.
    with timings.stage("decode", report):
        video = stages.decode_video(ledger, final.video, ctx.generator)

    latents = stages.named_latents(stage1, final)
    latents["source_audio"] = audio_latent.cpu()
    return Result(
        video=video,
        audio=original,
        fps=s.frame_rate,
        latents=latents,
        enhanced_prompt=prompts.enhanced,
    )
