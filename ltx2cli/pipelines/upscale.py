"""`upscale`: a clip's latents through the x2 spatial latent upsampler, refined with the
distilled stage-2 recipe, decoded at twice the size; the source's own audio is kept.

The source (fitted to the model's grid) is encoded, upsampled between the VAE's statistics,
noised to the first refinement sigma and denoised over the distilled stage-2 sigmas
(0.909375, 0.725, 0.421875 → 0), each scaled by `strength` (1: the usual refinement; 0: the
upsampled latent decoded as it is). Video-only transformer path, one pass per step, the
prompt optional. The output audio is the source's decoded waveform at its own rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ltx2cli.diffusion.denoisers import SimpleDenoiser
from ltx2cli.diffusion.schedules import distilled_sigmas
from ltx2cli.diffusion.state import AV
from ltx2cli.errors import UsageError
from ltx2cli.media.audio import read_audio
from ltx2cli.media.fit import Fit, apply_fit
from ltx2cli.media.video import probe_video, read_video
from ltx2cli.pipelines import stages
from ltx2cli.pipelines.job import Job
from ltx2cli.pipelines.run import Context, Result
from ltx2cli.pipelines.stages import Grids

STAGES = ("prompt", "encode", "upsample", "refine", "decode")
SCALE = 2
DEFAULT_PROMPT = "high quality video, sharp details"


@dataclass(frozen=True)
class UpscaleJob(Job):
    """Upscale `source` (fitted with `fit`); `strength` scales the refinement's sigmas."""

    source: Path = Path()
    fit: str | None = None
    strength: float = 1.0
    keep_audio: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.strength) and 0.0 <= self.strength <= 1.0):
            raise UsageError(f"--strength {self.strength:g} is outside 0..1", "use e.g. 1 or 0.5")


def run(ctx: Context) -> Result:
    job: UpscaleJob = ctx.job
    s, ledger, report, timings = ctx.settings, ctx.ledger, ctx.report, ctx.timings
    grids = Grids.of(s, stages.latent_channels(ledger), ctx.compat)

    # 1. The prompt alone → contexts (no negative: the refinement is unguided).
    prompts = ctx.prompts(negative=False)

    # 2. The source, fitted to the model's grid at half the output size, encoded.
    with timings.stage("encode", report):
        video = read_video(job.source)
        source = (video.num_frames, *video.frames.shape[-2:])
        fit = Fit(*source, s.num_frames, s.height // SCALE, s.width // SCALE, job.fit)
        latent = stages.encode_video(ledger, apply_fit(video.frames, fit))

    # 3. x2 spatial latent upsampling between the encoder's statistics.
    with timings.stage("upsample", report):
        upsampled = stages.upsample_video(ledger, latent)
        ledger.free("video_encoder")

    # 4. Refine: noised to the first (scaled) sigma, then the distilled stage-2 steps.
    with timings.stage("refine", report):
        sigmas = distilled_sigmas(2) * job.strength
        if job.strength > 0:
            states = stages.initial_states(
                grids,
                [],
                ctx.generator,
                ledger,
                noise_scale=float(sigmas[0]),
                initial=AV(video=upsampled),
            )
            states = stages.denoise(
                ledger,
                states,
                sigmas,
                lambda model: SimpleDenoiser(model, prompts.positive),
                report,
                loras=ctx.files.loras,
            )
            final = stages.final_latents(states, grids).video
        else:
            final = upsampled

    # 5. Decode at twice the size; the source's own audio rides along.
    with timings.stage("decode", report):
        pixels = stages.decode_video(ledger, final, ctx.generator)
        audio = None
        if job.keep_audio and probe_video(job.source).has_audio:
            audio = read_audio(job.source, max_duration=s.num_frames / s.frame_rate)

    return Result(
        video=pixels,
        audio=audio,
        fps=s.frame_rate,
        latents={"source_video": latent.cpu(), "upsampled": upsampled.cpu(), "video": final},
    )
