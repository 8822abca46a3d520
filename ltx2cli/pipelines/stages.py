"""The stage blocks every pipeline composes, each asking the ledger for what it needs.

- `encode_prompts`: Gemma (optional enhancement, then every prompt on its own, batch 1 as the
  reference) → freed → feature extractor and connectors → freed; one `AV` context per prompt.
- `image_conditionings`: load, CRF round trip, resize-and-crop, VAE encode at the stage's size;
  frame 0 replaces the first latent frame, later frames append a keyframe guide.
- `initial_states` + `denoise`: the diffusion stage: target grids, conditioning, noise from the
  pipeline's generator (video first, then audio), then the transformer (with its LoRAs) through
  a sampling loop and a denoiser.
- `upsample_video`: the latent upsampler between the VAE's statistics.
- `decode_video` (tiled automatically when large) and `decode_audio` (VAE → vocoder).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ltx2cli.compat import Compat
from ltx2cli.diffusion.conditioning import (
    ConditioningItem,
    KeyframeGuide,
    ReplaceLatent,
    apply_conditioning,
)
from ltx2cli.diffusion.denoisers import (
    Denoiser,
    GuidedDenoiser,
    VelocityModel,
    transformer_velocity_model,
)
from ltx2cli.diffusion.guidance import GuiderParams
from ltx2cli.diffusion.noise import noise_states
from ltx2cli.diffusion.patchify import VideoLatentShape, audio_latent_shape
from ltx2cli.diffusion.state import AV, AudioGrid, LatentState, VideoGrid, clear_conditioning
from ltx2cli.diffusion.steppers import Res2sNoise, euler_loop, res2s_loop
from ltx2cli.media.audio import Audio
from ltx2cli.pipelines.events import Event, Reporter
from ltx2cli.pipelines.files import ResolvedLora
from ltx2cli.pipelines.job import ImageInput
from ltx2cli.pipelines.ledger import TEXT_ENCODER, UPSAMPLER, ModelLedger

#: Above these output sizes the video decode runs in tiles (the VAE's default tile sizes).
TILE_ABOVE_PIXELS = 768
TILE_ABOVE_FRAMES = 80


@dataclass
class Timings:
    """Seconds per stage, in the order the stages ran."""

    seconds: dict[str, float]

    @contextmanager
    def stage(self, name: str, report: Reporter) -> Iterator[None]:
        report(Event("stage", name))
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


# -- prompts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompts:
    positive: AV[torch.Tensor]
    negative: AV[torch.Tensor] | None
    enhanced: str | None


@torch.inference_mode()
def encode_prompts(
    ledger: ModelLedger,
    prompt: str,
    negative: str | None,
    *,
    audio: bool,
    enhance: bool = False,
    enhance_seed: int = 0,
    image: ImageInput | None = None,
) -> Prompts:
    """Contexts for the prompt (and the negative prompt when given), text encoder freed first."""
    from ltx2cli.media.image import load_image
    from ltx2cli.models.noise import make_generator
    from ltx2cli.models.text_connectors import encode_text_context

    encoder = ledger.get(TEXT_ENCODER)
    enhanced = None
    if enhance:
        # Its own generator, as the reference seeds enhancement apart from the noise.
        picture = load_image(image.path) if image is not None else None
        generator = make_generator(enhance_seed)
        enhanced = encoder.enhance(prompt, image=picture, generator=generator)
        prompt = enhanced
    texts = [prompt] if negative is None else [prompt, negative]
    encodings = [encoder.encode([text]) for text in texts]
    ledger.free(TEXT_ENCODER)

    extractor = ledger.get("text_projection")
    video_connector = ledger.get("video_connector")
    audio_connector = ledger.get("audio_connector")
    contexts = []
    for encoding in encodings:
        video, audio_ctx, _ = encode_text_context(
            encoding.hidden_states.to(ledger.runtime.device),
            encoding.mask.to(ledger.runtime.device),
            extractor,
            video_connector,
            audio_connector,
        )
        contexts.append(AV(video=video, audio=audio_ctx if audio else None))
    ledger.free("text_projection", "video_connector", "audio_connector")
    return Prompts(contexts[0], contexts[1] if negative is not None else None, enhanced)


# -- image conditioning --------------------------------------------------------------------------


@torch.inference_mode()
def image_conditionings(
    ledger: ModelLedger,
    images: Sequence[ImageInput],
    height: int,
    width: int,
    default_crf: int,
    *,
    guiding: bool = False,
) -> list[ConditioningItem]:
    """One item per image, VAE-encoded at `height` x `width` (the caller frees the encoder):
    frame 0 replaces the first latent frame unless `guiding` (every image appended as a
    keyframe guide, as keyframe interpolation does)."""
    from ltx2cli.media.image import prepare_conditioning_image

    if not images:
        return []
    encoder = ledger.get("video_encoder")
    rt = ledger.runtime
    items: list[ConditioningItem] = []
    for image in images:
        crf = default_crf if image.crf is None else image.crf
        frame = prepare_conditioning_image(image.path, height, width, crf=crf)
        pixels = frame.to(device=rt.device, dtype=rt.dtype)[None, :, None]  # (1, 3, 1, H, W)
        latent = encoder(pixels)  # (1, C, 1, H/32, W/32)
        if image.frame == 0 and not guiding:
            items.append(ReplaceLatent(latent, 0, image.strength))
        else:
            items.append(KeyframeGuide(latent, image.frame, image.strength))
    return items


# -- source media ------------------------------------------------------------------------------


@torch.inference_mode()
def encode_video(ledger: ModelLedger, frames: torch.Tensor) -> torch.Tensor:
    """Frames `[F, 3, H, W]` in [-1, 1] → normalised latent `[1, C, F', H/32, W/32]` (the
    caller frees the encoder)."""
    encoder = ledger.get("video_encoder")
    rt = ledger.runtime
    pixels = frames.to(device=rt.device, dtype=rt.dtype).transpose(0, 1)[None]
    return encoder(pixels)


@torch.inference_mode()
def encode_audio(ledger: ModelLedger, audio: Audio, latent_frames: int) -> torch.Tensor:
    """A waveform at any rate (resampled as the reference's front-end does) → normalised
    audio latent `[1, C, T, F]` cut or zero-padded to `latent_frames` (the reference's retake
    rule); the encoder is freed after."""
    from ltx2cli.models.audio_path import waveform_to_latent

    encoder = ledger.get("audio_encoder")
    wave = audio.waveform.to(ledger.runtime.device)
    latent = waveform_to_latent(wave, audio.sample_rate, encoder)
    ledger.free("audio_encoder")
    have = latent.shape[2]
    if have >= latent_frames:
        return latent[:, :, :latent_frames]
    pad = latent.new_zeros(*latent.shape[:2], latent_frames - have, latent.shape[3])
    return torch.cat([latent, pad], dim=2)


# -- diffusion -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grids:
    video: VideoGrid
    audio: AudioGrid | None

    @classmethod
    def of(cls, settings, channels: int, compat: Compat, divisor: int = 1) -> Grids:
        """The grids of the settings' clip at 1/`divisor` of its size (2: a stage 1); `compat`
        decides positions and what conditioning items write."""
        from ltx2cli.diffusion.patchify import audio_latent_frames_for_video, video_latent_shape

        s = settings
        shape = video_latent_shape(
            s.num_frames, s.height // divisor, s.width // divisor, channels=channels
        )
        audio = None
        if s.audio:
            audio = AudioGrid(
                audio_latent_shape(audio_latent_frames_for_video(s.num_frames, s.frame_rate))
            )
        return cls(VideoGrid(shape, s.frame_rate, compat=compat), audio)


def initial_states(
    grids: Grids,
    items: Sequence[ConditioningItem],
    generator: torch.Generator,
    ledger: ModelLedger,
    *,
    noise_scale: float = 1.0,
    initial: AV[torch.Tensor] | None = None,
    audio_items: Sequence[ConditioningItem] = (),
) -> AV[LatentState]:
    """Target states (zeros or `initial` latents), conditioned (`items` on the video,
    `audio_items` on the audio), then noised video first."""
    rt = ledger.runtime
    initial = initial or AV()
    video = grids.video.initial_state(initial.video, dtype=rt.dtype, device=rt.device)
    video = apply_conditioning(video, items, grids.video)
    audio = None
    if grids.audio is not None:
        audio = grids.audio.initial_state(initial.audio, dtype=rt.dtype, device=rt.device)
        audio = apply_conditioning(audio, audio_items, grids.audio)
    states = AV(video=video, audio=audio)
    return noise_states(states, generator, noise_scale, grids.video.compat)


DenoiserFactory = Callable[[VelocityModel], Denoiser]


def denoise(
    ledger: ModelLedger,
    states: AV[LatentState],
    sigmas: torch.Tensor,
    make_denoiser: DenoiserFactory,
    report: Reporter,
    *,
    loras: Sequence[ResolvedLora] = (),
    sampler: str = "euler",
    keep: bool = False,
) -> AV[LatentState]:
    """Run the transformer (LoRAs fused) over `sigmas`; free it afterwards unless `keep`."""
    transformer = ledger.get("transformer", loras)
    denoiser = make_denoiser(transformer_velocity_model(transformer))

    def on_step(done: int, total: int) -> None:
        report(Event("step", done=done, total=total))

    with torch.inference_mode():
        if sampler == "res2s":
            # A fresh pair from the reference's fixed seeds per stage (it ignores the user's).
            noise, dtype = Res2sNoise.seeded(), ledger.runtime.dtype
            out = res2s_loop(states, sigmas, denoiser, noise, model_dtype=dtype, on_step=on_step)
        else:
            out = euler_loop(states, sigmas, denoiser, on_step=on_step)
    if not keep:
        ledger.free("transformer")
    return out


def guider(settings, modality: str) -> GuiderParams:
    """One modality's guider params from the settings (`video` or `audio`)."""
    return GuiderParams(**settings.guidance(modality))


def guided(settings, prompts: Prompts, compat: Compat) -> DenoiserFactory:
    """The multimodal guided denoiser of the settings' guidance over `prompts`."""

    def make(model: VelocityModel) -> Denoiser:
        video, audio = guider(settings, "video"), guider(settings, "audio")
        # All passes of a step in one batched call, split automatically when memory runs out.
        negative = prompts.negative
        return GuidedDenoiser(model, prompts.positive, negative, video, audio, compat, None)

    return make


def final_latents(states: AV[LatentState], grids: Grids) -> AV[torch.Tensor]:
    """Dense target latents with the appended conditioning tokens dropped."""
    video = grids.video.unpatchify(clear_conditioning(states.video))
    audio = None
    if states.audio is not None and grids.audio is not None:
        audio = grids.audio.unpatchify(clear_conditioning(states.audio))
    return AV(video=video, audio=audio)


def named_latents(stage1: AV[torch.Tensor] | None, final: AV[torch.Tensor]) -> dict:
    """The latents a result keeps: after stage 1 (two-stage pipelines) and the final ones."""
    out = {"video": final.video}
    if final.audio is not None:
        out["audio"] = final.audio
    if stage1 is not None:
        out["stage1_video"] = stage1.video
        if stage1.audio is not None:
            out["stage1_audio"] = stage1.audio
    return out


@torch.inference_mode()
def upsample_video(ledger: ModelLedger, latent: torch.Tensor) -> torch.Tensor:
    """x2 spatial upsampling between the VAE encoder's statistics (the encoder stays loaded)."""
    from ltx2cli.models.upsampler import upsample_latent

    encoder = ledger.get("video_encoder")
    upsampler = ledger.get(UPSAMPLER)
    out = upsample_latent(latent, upsampler, encoder)
    ledger.free(UPSAMPLER)
    return out


# -- decoding ------------------------------------------------------------------------------------


@torch.inference_mode()
def decode_video(
    ledger: ModelLedger, latent: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Pixels `[F, 3, H, W]` float in [-1, 1]; tiled when the clip is large."""
    decoder = ledger.get("video_decoder")
    shape = VideoLatentShape.of(latent)
    frames, height, width = shape.pixel_size()
    if max(height, width) > TILE_ABOVE_PIXELS or frames > TILE_ABOVE_FRAMES:
        video = torch.cat(list(decoder.iter_tiled_decode(latent, generator=generator)), dim=2)
    else:
        video = decoder(latent, generator=generator)
    ledger.free("video_decoder")
    return video[0].transpose(0, 1).float().clamp(-1, 1).cpu()  # (F, 3, H, W)


@torch.inference_mode()
def decode_audio(ledger: ModelLedger, latent: torch.Tensor) -> Audio:
    """Waveform `[2, samples]` at the vocoder's rate."""
    from ltx2cli.models.vocoder import VocoderConfig

    decoder = ledger.get("audio_decoder")
    mel = decoder(latent)
    ledger.free("audio_decoder")
    vocoder = ledger.get("vocoder")
    wave = vocoder(mel.to(next(vocoder.parameters()).dtype))
    ledger.free("vocoder")
    rate = VocoderConfig.from_checkpoint_config(checkpoint_config(ledger)).output_sampling_rate
    return Audio(wave[0].float().cpu(), rate)


def checkpoint_config(ledger: ModelLedger) -> dict:
    from ltx2cli.models.checkpoint import read_checkpoint

    return read_checkpoint(ledger.files.checkpoint).require_config()


def latent_channels(ledger: ModelLedger) -> int:
    return int(checkpoint_config(ledger)["vae"].get("latent_channels", 128))
