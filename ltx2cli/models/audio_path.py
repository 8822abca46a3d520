"""In-memory audio seams: waveform ↔ normalised audio latent.

Encode: any rate, mono or stereo → resample to the audio VAE's rate (Hann-windowed sinc, as the
reference front-end does) → log-mel → audio VAE encoder. Mono is duplicated to both channels
(the encoder reads two). Decode: audio VAE decoder → log-mel → vocoder → waveform at the
vocoder's `output_sampling_rate`.
"""

from __future__ import annotations

import torch

from ltx2cli.models.audio_vae import AudioDecoder, AudioEncoder
from ltx2cli.models.mel import log_mel_spectrogram
from ltx2cli.models.resample import resample
from ltx2cli.models.vocoder import Vocoder, VocoderWithBWE


def waveform_to_latent(
    waveform: torch.Tensor, sample_rate: int, encoder: AudioEncoder
) -> torch.Tensor:
    """`(samples,)`, `(C, samples)` or `(B, C, samples)` at `sample_rate` Hz, C of 1 or the
    encoder's channel count → normalised latent `(B, z, T', F')` in the encoder's dtype."""
    if waveform.ndim not in (1, 2, 3):
        raise ValueError(
            f"waveform must be (samples,), (channels, samples) or (batch, channels, samples), "
            f"got shape {tuple(waveform.shape)}"
        )
    batched = waveform.reshape((1,) * (3 - waveform.ndim) + tuple(waveform.shape))
    channels = encoder.config.in_channels
    if batched.shape[1] == 1:
        batched = batched.expand(-1, channels, -1)
    elif batched.shape[1] != channels:
        raise ValueError(
            f"waveform has {batched.shape[1]} channels; the audio encoder reads 1 or {channels}"
        )
    mel_config = encoder.config.mel
    work = batched.to(torch.float64 if batched.dtype == torch.float64 else torch.float32)
    audio = resample(work, sample_rate, mel_config.sample_rate)
    return encoder(log_mel_spectrogram(audio, mel_config))


def latent_to_waveform(
    latent: torch.Tensor, decoder: AudioDecoder, vocoder: Vocoder | VocoderWithBWE
) -> torch.Tensor:
    """Normalised latent `(B, z, T', F')` → waveform `(B, 2, samples)` at
    `vocoder.output_sampling_rate` Hz."""
    return vocoder(decoder(latent))
