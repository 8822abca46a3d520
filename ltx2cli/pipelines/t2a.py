"""`t2a`: text to audio, the audio stream alone (`ltx2 generate --audio-only`).

The transformer runs with the video stream absent: one guided stage over the audio latent
(the settings' audio guider with the negative prompt; the audio-from-video modality guidance
is off, as there is no video), then the audio VAE and the vocoder. The latent length comes
from the requested seconds (25 latent frames a second, two more), and the waveform is cut to exactly
those seconds. No video weights' outputs are used; nothing is decoded to pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ltx2cli.diffusion.denoisers import GuidedDenoiser
from ltx2cli.diffusion.guidance import GuiderParams
from ltx2cli.diffusion.noise import noise_states
from ltx2cli.diffusion.patchify import audio_latent_frames, audio_latent_shape
from ltx2cli.diffusion.schedules import ltx2_sigmas
from ltx2cli.diffusion.state import AV, AudioGrid, clear_conditioning
from ltx2cli.media.audio import Audio
from ltx2cli.pipelines import stages
from ltx2cli.pipelines.job import Job
from ltx2cli.pipelines.run import Context, Result

STAGES = ("prompt", "stage 1", "decode")
#: The output containers of an audio-only job, by suffix.
AUDIO_SUFFIXES = (".wav", ".m4a")


@dataclass(frozen=True)
class AudioJob(Job):
    """A text-to-audio job of `duration` seconds, written as .wav (PCM s16) or .m4a (AAC)."""

    duration: float = 0.0
    OUTPUT_SUFFIXES = AUDIO_SUFFIXES

    @property
    def seconds(self) -> float:
        return self.duration


def run(ctx: Context) -> Result:
    job: AudioJob = ctx.job
    s, ledger, rt = ctx.settings, ctx.ledger, ctx.ledger.runtime
    # Two latent frames beyond the duration's (rounded) count: n latent frames decode to
    # (n - 1)/25 s + 10 ms, and the rounding may lose half a frame; the result is cut to length.
    grid = AudioGrid(audio_latent_shape(audio_latent_frames(job.duration) + 2))

    # 1. Prompt and negative prompt → contexts (only the audio ones are used).
    prompts = ctx.prompts()
    positive = AV(audio=prompts.positive.audio)
    negative = AV(audio=prompts.negative.audio) if prompts.negative is not None else None

    def guided(model):
        audio = replace(stages.guider(s, "audio"), modality_scale=GuiderParams().modality_scale)
        return GuidedDenoiser(model, positive, negative, GuiderParams(), audio, ctx.compat, None)

    # 2. Guided Euler over the audio alone, from pure noise.
    with ctx.timings.stage("stage 1", ctx.report):
        state = grid.initial_state(dtype=rt.dtype, device=rt.device)
        states = noise_states(AV(audio=state), ctx.generator, 1.0, ctx.compat)
        sigmas = ltx2_sigmas(s.steps)
        states = stages.denoise(ledger, states, sigmas, guided, ctx.report, loras=ctx.files.loras)
        latent = grid.unpatchify(clear_conditioning(states.audio))

    # 3. The waveform, cut to the requested seconds.
    with ctx.timings.stage("decode", ctx.report):
        wave = stages.decode_audio(ledger, latent)
    samples = round(job.duration * wave.sample_rate)
    audio = Audio(wave.waveform[:, :samples], wave.sample_rate)
    return Result(None, audio, s.frame_rate, {"audio": latent.cpu()}, prompts.enhanced)
