"""`retake`: regenerate a time window of an existing clip; everything outside it is kept.

The source is encoded at its own size and its latents are the initial latents; a temporal
region mask sets the denoise mask to 1 on the tokens whose time interval overlaps the window
and 0 elsewhere, so the tokens outside stay the source's latents bit for bit (§10.8).
`what` picks the modalities regenerated: video, audio or both. A source without audio gets its
audio generated from scratch; `what="audio"` with no window regenerates the whole soundtrack
for the frozen video (video-to-audio, "foley").

Guided (the full model, LTX2 sigmas for `steps`, the multimodal guider with the negative
prompt) or distilled (the distilled checkpoint's 8 sigmas, one pass per step, no negative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ltx2cli.diffusion.conditioning import TemporalRegionMask
from ltx2cli.diffusion.denoisers import SimpleDenoiser
from ltx2cli.diffusion.schedules import distilled_sigmas, ltx2_sigmas
from ltx2cli.diffusion.state import AV
from ltx2cli.media.audio import read_audio
from ltx2cli.media.fit import Fit, apply_fit
from ltx2cli.media.video import probe_video, read_video
from ltx2cli.pipelines import stages
from ltx2cli.pipelines.job import Job
from ltx2cli.pipelines.run import Context, Result
from ltx2cli.pipelines.stages import Grids

STAGES = ("prompt", "encode", "retake", "decode")
WHAT = ("video", "audio", "both")
# The reference seeds distilled prompt enhancement with its library default.
DISTILLED_ENHANCE_SEED = 42


@dataclass(frozen=True)
class RetakeJob(Job):
    """A generation job over a source clip: the window [start, end) in seconds (None: the
    whole clip), which modalities to regenerate and how the clip was fitted."""

    source: Path = Path()
    start: float | None = None
    end: float | None = None
    what: str = "both"
    fit: str | None = None
    distilled: bool = False

    @property
    def pipeline(self) -> str:
        return "retake"

    @property
    def window(self) -> tuple[float, float]:
        start = 0.0 if self.start is None else self.start
        return start, math.inf if self.end is None else self.end


def run(ctx: Context) -> Result:
    job: RetakeJob = ctx.job
    s, ledger, report, timings = ctx.settings, ctx.ledger, ctx.report, ctx.timings
    grids = Grids.of(s, stages.latent_channels(ledger), ctx.compat)

    # 1. Prompt (and the negative prompt when guided) → contexts.
    seed = DISTILLED_ENHANCE_SEED if job.distilled else None
    prompts = ctx.prompts(negative=not job.distilled, enhance_seed=seed)

    # 2. The source, fitted to the model's grid, encoded at its own size; its audio (if any)
    #    encoded and cut or zero-padded to the clip's audio latent length.
    with timings.stage("encode", report):
        video = read_video(job.source)
        source = (video.num_frames, *video.frames.shape[-2:])
        fit = Fit(*source, s.num_frames, s.height, s.width, job.fit)
        video_latent = stages.encode_video(ledger, apply_fit(video.frames, fit))
        ledger.free("video_encoder")
        audio_latent = None
        if probe_video(job.source).has_audio:
            audio = read_audio(job.source, max_duration=s.num_frames / s.frame_rate)
            audio_latent = stages.encode_audio(ledger, audio, grids.audio.shape.frames)

    # 3. Masks: 1 inside the window for the regenerated modalities, 0 elsewhere; audio that
    #    the source lacks is generated whole. Noise from the source latents, then denoise.
    with timings.stage("retake", report):
        start, end = job.window
        nothing = TemporalRegionMask(0.0, 0.0)
        video_mask = TemporalRegionMask(start, end) if job.what != "audio" else nothing
        audio_items = []
        if audio_latent is not None:
            keep_audio = job.what == "video"
            audio_items.append(nothing if keep_audio else TemporalRegionMask(start, end))
        states = stages.initial_states(
            grids,
            [video_mask],
            ctx.generator,
            ledger,
            initial=AV(video=video_latent, audio=audio_latent),
            audio_items=audio_items,
        )
        if job.distilled:
            sigmas = distilled_sigmas(1)

            def make(model):
                return SimpleDenoiser(model, prompts.positive)
        else:
            sigmas, make = ltx2_sigmas(s.steps), stages.guided(s, prompts, ctx.compat)
        states = stages.denoise(ledger, states, sigmas, make, report, loras=ctx.files.loras)
        final = stages.final_latents(states, grids)

    # 4. Decode both (the audio latent is the retaken one).
    with timings.stage("decode", report):
        pixels = stages.decode_video(ledger, final.video, ctx.generator)
        waveform = stages.decode_audio(ledger, final.audio)

    latents = stages.named_latents(None, final)
    latents["source_video"] = video_latent.cpu()
    if audio_latent is not None:
        latents["source_audio"] = audio_latent.cpu()
    return Result(
        video=pixels,
        audio=waveform,
        fps=s.frame_rate,
        latents=latents,
        enhanced_prompt=prompts.enhanced,
    )
