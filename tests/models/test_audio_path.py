"""In-memory audio seams on the tiny checkpoint configs: any-rate waveform → latent → waveform."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ltx2cli.families import GEN_2_0, GEN_2_3
from ltx2cli.models.audio_path import latent_to_waveform, waveform_to_latent
from ltx2cli.models.audio_vae import build_audio_decoder, build_audio_encoder
from ltx2cli.models.mel import MelConfig, log_mel_spectrogram
from ltx2cli.models.tiny import tiny_config
from ltx2cli.models.vocoder import build_vocoder

torch.set_num_threads(min(2, torch.get_num_threads()))

SEED = 5


def _seeded(module):
    module.init_weights(torch.Generator().manual_seed(SEED))
    return module.eval()


def _hann_sinc_48k_to_16k(x: np.ndarray) -> np.ndarray:
    """48 kHz → 16 kHz (gcd rates 3 → 1) as the direct windowed-sinc sum: cutoff b = 0.99,
    `y[m] = Σ_k x[k] · (b/3) · sinc(t) · cos²(πt/12)`, `t = b·(k/3 − m)`, `|t| ≤ 6`."""
    b, k = 0.99, np.arange(x.shape[-1], dtype=np.float64)
    out = np.zeros((*x.shape[:-1], math.ceil(x.shape[-1] / 3)))
    for m in range(out.shape[-1]):
        t = b * (k / 3 - m)
        weights = np.where(np.abs(t) <= 6, (b / 3) * np.sinc(t) * np.cos(np.pi * t / 12) ** 2, 0)
        out[..., m] = x @ weights
    return out


@torch.no_grad()
def test_a_48k_waveform_is_resampled_to_16k_before_the_mel_front_end():
    config = tiny_config(GEN_2_3)
    encoder = _seeded(build_audio_encoder(config))
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 2, 4800))
    latent = waveform_to_latent(torch.from_numpy(wave).float(), 48000, encoder)
    at_16k = torch.from_numpy(_hann_sinc_48k_to_16k(wave)).float()  # 1600 samples
    expected = encoder(log_mel_spectrogram(at_16k, MelConfig.from_checkpoint_config(config)))
    torch.testing.assert_close(latent, expected, rtol=1e-4, atol=1e-4)
    assert latent.shape == (1, 8, 3, 16)  # 11 mel frames → ⌊⌊10/2⌋/2⌋ + 1 = 3 latents


@torch.no_grad()
def test_mono_is_duplicated_to_both_channels():
    encoder = _seeded(build_audio_encoder(tiny_config(GEN_2_3)))
    mono = 0.3 * torch.randn(3200, generator=torch.Generator().manual_seed(1))
    stereo = torch.stack([mono, mono])[None]
    assert torch.equal(
        waveform_to_latent(mono, 16000, encoder), waveform_to_latent(stereo, 16000, encoder)
    )
    with pytest.raises(ValueError, match="3 channels"):
        waveform_to_latent(torch.zeros(3, 3200), 16000, encoder)


@pytest.mark.parametrize(("generation", "rate"), [(GEN_2_0, 24000), (GEN_2_3, 48000)])
@torch.no_grad()
def test_latent_decodes_through_the_vocoder(generation, rate):
    config = tiny_config(generation)
    decoder, vocoder = _seeded(build_audio_decoder(config)), _seeded(build_vocoder(config))
    latent = torch.randn(1, 8, 4, 16, generator=torch.Generator().manual_seed(2))
    wave = latent_to_waveform(latent, decoder, vocoder)
    # 4 latents → 4·4 − 3 = 13 mel frames at 100 per second → 0.13 s at the vocoder's rate.
    assert vocoder.output_sampling_rate == rate
    assert wave.shape == (1, 2, round(0.13 * rate))
