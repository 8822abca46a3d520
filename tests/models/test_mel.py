"""Mel front-end: filterbank against an independent numpy build, STFT against numpy rfft."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ltx2cli.errors import MediaError
from ltx2cli.models.mel import (
    LOG_FLOOR,
    MelConfig,
    checkpoint_mel_bins,
    hz_to_mel,
    log_mel_spectrogram,
    mel_filterbank,
)

SAMPLE_RATE = 16000
N_FFT = 1024
HOP = 160
N_MELS = 64
N_FREQS = N_FFT // 2 + 1


def _np_hz_to_mel(f: np.ndarray, scale: str) -> np.ndarray:
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    # Slaney: 3 mels per 200 Hz up to 1 kHz (15 mels), then 27 mels per factor 6.4.
    return np.where(
        f < 1000.0,
        3.0 * f / 200.0,
        15.0 + 27.0 * np.log(np.maximum(f, 1000.0) / 1000.0) / np.log(6.4),
    )


def _np_mel_to_hz(m: np.ndarray, scale: str) -> np.ndarray:
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return np.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * 6.4 ** ((m - 15.0) / 27.0))


def _np_filterbank(n_freqs, n_mels, sr, fmin, fmax, scale, norm):
    """Triangles written out filter by filter (librosa's textbook definition), float64."""
    freqs = np.linspace(0.0, sr / 2.0, n_freqs)
    lo, hi = _np_hz_to_mel(np.array([fmin, fmax]), scale)
    edges = _np_mel_to_hz(np.linspace(lo, hi, n_mels + 2), scale)
    bank = np.zeros((n_mels, n_freqs))
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - left) / (centre - left)
        down = (right - freqs) / (right - centre)
        bank[m] = np.maximum(0.0, np.minimum(up, down))
        if norm == "slaney":
            bank[m] *= 2.0 / (right - left)
    return bank


@pytest.mark.parametrize(
    ("freq", "scale", "expected"),
    [
        (1000.0, "slaney", 15.0),  # the linear/log knee: 1000 / (200/3)
        (500.0, "slaney", 7.5),
        (6400.0, "slaney", 42.0),  # one factor of 6.4 above 1 kHz is 27 mels
        (700.0, "htk", 2595.0 * math.log10(2.0)),
    ],
)
def test_hz_to_mel_known_points(freq, scale, expected):
    assert hz_to_mel(freq, scale) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("n_freqs", "n_mels", "sr", "fmin", "fmax", "scale", "norm"),
    [
        (N_FREQS, N_MELS, SAMPLE_RATE, 0.0, 8000.0, "slaney", "slaney"),  # the VAE front-end
        (257, 64, 16000, 0.0, 8000.0, "slaney", "slaney"),  # the BWE mel_stft basis
        (201, 40, 22050, 50.0, 9000.0, "htk", None),
        (129, 24, 8000, 0.0, 4000.0, "slaney", None),
    ],
)
def test_filterbank_matches_numpy_formula(n_freqs, n_mels, sr, fmin, fmax, scale, norm):
    ours = mel_filterbank(n_freqs, n_mels, sr, fmin, fmax, mel_scale=scale, norm=norm)
    ref = _np_filterbank(n_freqs, n_mels, sr, fmin, fmax, scale, norm)
    assert ours.shape == (n_mels, n_freqs)
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.double().numpy(), ref, rtol=1e-4, atol=1e-5)


def test_filterbank_peaks_sit_at_mel_spaced_centres():
    bank = mel_filterbank(N_FREQS, N_MELS, SAMPLE_RATE, norm=None)
    bin_hz = SAMPLE_RATE / N_FFT
    edges = _np_mel_to_hz(np.linspace(0.0, _np_hz_to_mel(np.array(8000.0), "slaney"), 66), "s")
    for m in range(N_MELS):
        row = bank[m]
        # unnormalised triangles never exceed 1, and peak at the bin nearest the centre edge
        assert row.max() <= 1.0 + 1e-6
        peak = int(row.argmax())
        assert abs(peak * bin_hz - edges[m + 1]) <= bin_hz
    assert torch.all(bank >= 0)


def test_slaney_norm_gives_each_filter_unit_area_in_hz():
    # Continuous triangle of height 2/(right-left) and base (right-left) has area 1; the
    # sampled sum times the bin width approximates it once the filters span several bins.
    bank = mel_filterbank(4097, 16, SAMPLE_RATE)
    areas = bank.sum(dim=1) * (SAMPLE_RATE / 2 / 4096)
    np.testing.assert_allclose(areas.numpy(), 1.0, atol=0.02)


def _np_log_mel(wave: np.ndarray) -> np.ndarray:
    """Reflect pad n_fft/2, periodic Hann, |rfft|, slaney bank, log floor: (frames, mels)."""
    padded = np.pad(wave, N_FFT // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    frames = 1 + (len(padded) - N_FFT) // HOP
    spec = np.stack(
        [np.abs(np.fft.rfft(padded[i * HOP : i * HOP + N_FFT] * window)) for i in range(frames)]
    )
    bank = _np_filterbank(N_FREQS, N_MELS, SAMPLE_RATE, 0.0, 8000.0, "slaney", "slaney")
    return np.log(np.maximum(spec @ bank.T, LOG_FLOOR))


@pytest.mark.parametrize("samples", [1600, 2345])
def test_log_mel_matches_numpy_pipeline(samples):
    gen = torch.Generator().manual_seed(samples)
    wave = 0.3 * torch.randn(2, 2, samples, generator=gen)
    out = log_mel_spectrogram(wave)
    assert out.shape == (2, 2, 1 + samples // HOP, N_MELS)
    for b in range(2):
        for c in range(2):
            ref = _np_log_mel(wave[b, c].double().numpy())
            np.testing.assert_allclose(out[b, c].double().numpy(), ref, atol=2e-4)


def test_silence_hits_the_log_floor():
    out = log_mel_spectrogram(torch.zeros(1, 2, 4000))
    torch.testing.assert_close(out, torch.full_like(out, math.log(LOG_FLOOR)))


def test_sine_lands_in_the_mel_bin_around_its_frequency():
    freq = 2000.0
    t = torch.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    wave = torch.sin(2 * math.pi * freq * t).expand(1, 2, -1)
    out = log_mel_spectrogram(wave)
    peak = out[0, 0, 10:-10].mean(0).argmax().item()
    edges = _np_mel_to_hz(np.linspace(0.0, _np_hz_to_mel(np.array(8000.0), "slaney"), 66), "s")
    assert edges[peak] < freq < edges[peak + 2]
    torch.testing.assert_close(out[0, 0], out[0, 1])


def test_output_keeps_input_dtype_and_batch_layout():
    wave = torch.randn(3, 2, 1000, dtype=torch.float64)
    out = log_mel_spectrogram(wave)
    assert out.dtype == torch.float64
    single = log_mel_spectrogram(wave[1:2])
    torch.testing.assert_close(out[1:2], single)


def test_too_short_audio_is_a_media_error():
    with pytest.raises(MediaError, match="too short"):
        log_mel_spectrogram(torch.zeros(1, 2, N_FFT // 2))


def test_config_reads_checkpoint_sections(manifest):
    config = MelConfig.from_checkpoint_config(manifest("ltx-2.3-22b")["config"])
    assert config == MelConfig(sample_rate=16000, n_fft=1024, hop_length=160, n_mels=64)
    assert config.frames(16000) == 101


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"model": {"params": {"ddconfig": {"mel_bins": 32}}}, "variables": {"mel_bins": 8}}, 32),
        ({"preprocessing": {"mel": {"n_mel_channels": 16}}, "variables": {"mel_bins": 8}}, 16),
        ({"variables": {"mel_bins": 8}}, 8),
        ({}, None),
    ],
)
def test_mel_bins_lookup_order(section, expected):
    assert checkpoint_mel_bins(section) == expected
    assert MelConfig.from_checkpoint_config({"audio_vae": section}).n_mels == (expected or N_MELS)
