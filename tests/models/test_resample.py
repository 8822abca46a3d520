"""The in-memory resampler against a direct float64 evaluation of the windowed-sinc sum.

Reference semantics (torchaudio `resample` defaults): rates divided by their gcd (o, n),
cutoff `b = min(o, n) · 0.99`, Hann window over 6 zero crossings. Output sample `m` sits at
`m / n` (in units of `gcd` seconds) and input sample `k` at `k / o`; with
`t = b · (k / o − m / n)` it is `Σ_k x[k] · (b / o) · sinc(t) · cos²(π t / 12)` over `|t| ≤ 6`,
and the output keeps `⌈n · L / o⌉` samples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ltx2cli.models.resample import resample

ZERO_CROSSINGS = 6
ROLLOFF = 0.99


def direct(x: np.ndarray, orig_freq: int, new_freq: int) -> np.ndarray:
    g = math.gcd(orig_freq, new_freq)
    o, n = orig_freq // g, new_freq // g
    b = min(o, n) * ROLLOFF
    k = np.arange(len(x), dtype=np.float64)
    out = np.empty(math.ceil(n * len(x) / o))
    for m in range(len(out)):
        t = b * (k / o - m / n)
        inside = np.abs(t) <= ZERO_CROSSINGS
        sinc = np.sinc(t[inside])  # sin(πt)/(πt)
        window = np.cos(np.pi * t[inside] / (2 * ZERO_CROSSINGS)) ** 2
        out[m] = np.sum(x[inside] * (b / o) * sinc * window)
    return out


def signal(length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, length)


@pytest.mark.parametrize(
    ("orig", "new", "length"),
    [(48000, 16000, 300), (44100, 16000, 441), (16000, 24000, 101), (22050, 16000, 200)],
)
def test_float64_resampling_equals_the_direct_sum(orig, new, length):
    x = signal(length)
    got = resample(torch.from_numpy(x), orig, new)
    np.testing.assert_allclose(got.numpy(), direct(x, orig, new), rtol=0, atol=1e-12)


def test_float32_resampling_is_close_to_the_direct_sum_and_keeps_batch_axes():
    x = np.stack([signal(480, seed) for seed in range(4)]).reshape(2, 2, 480)
    got = resample(torch.from_numpy(x).float(), 48000, 16000)
    assert got.dtype == torch.float32 and got.shape == (2, 2, 160)
    expected = np.stack([direct(row, 48000, 16000) for row in x.reshape(4, 480)])
    np.testing.assert_allclose(got.reshape(4, 160).numpy(), expected, rtol=0, atol=2e-5)


def test_equal_rates_return_the_input():
    x = torch.randn(2, 50)
    assert resample(x, 16000, 16000) is x


def test_a_tone_below_the_cutoff_survives_downsampling():
    rate, freq, seconds = 48000, 440.0, 0.5
    t = np.arange(int(rate * seconds)) / rate
    out = resample(torch.from_numpy(np.sin(2 * np.pi * freq * t)), rate, 16000).numpy()
    expected = np.sin(2 * np.pi * freq * np.arange(len(out)) / 16000)
    # Away from the edges (where the zero padding shows), the tone passes unchanged.
    np.testing.assert_allclose(out[200:-200], expected[200:-200], atol=1e-3)
