"""Mel front-end: stereo 16 kHz waveform → the log-mel features the audio VAE encoder reads.

Design choices (the reference `AudioProcessor`):
- Magnitude STFT (power 1), periodic Hann window of `n_fft` samples, hop 160, `center=True`
  with reflect padding; `1 + samples // hop` frames.
- Mel filterbank written here from the formula (no torchaudio): triangles between mel-spaced
  edge frequencies on the Slaney scale with Slaney area normalisation, `f_min` 0 and
  `f_max` = sample_rate / 2 (the reference ignores the config's `mel_fmin`/`mel_fmax`).
- `log(clamp(mel, 1e-5))`, laid out `(B, C, T, n_mels)`: time is the VAE's "height" axis.
- Nothing is stored: window and filterbank are computed on first use and cached per device
  and dtype, so no module or checkpoint key is involved.

The same filterbank function builds the BWE vocoder's `mel_stft.mel_basis` (vocoder.py).
Resampling to 16 kHz is the caller's job (media layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from ltx2cli.errors import CheckpointError, MediaError

LOG_FLOOR = 1e-5

# Slaney (Auditory Toolbox) mel scale: linear below 1 kHz, logarithmic above.
_SLANEY_F_SP = 200.0 / 3.0
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP
_SLANEY_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(freq: float, mel_scale: str = "slaney") -> float:
    """One frequency in Hz → mels on the `slaney` or `htk` scale."""
    if mel_scale == "htk":
        return 2595.0 * math.log10(1.0 + freq / 700.0)
    if mel_scale != "slaney":
        raise ValueError(f"mel_scale {mel_scale!r} is not 'slaney' or 'htk'")
    if freq < _SLANEY_MIN_LOG_HZ:
        return freq / _SLANEY_F_SP
    return _SLANEY_MIN_LOG_MEL + math.log(freq / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP


def mel_to_hz(mels: torch.Tensor, mel_scale: str = "slaney") -> torch.Tensor:
    """Mels → Hz, elementwise (inverse of `hz_to_mel`)."""
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    if mel_scale != "slaney":
        raise ValueError(f"mel_scale {mel_scale!r} is not 'slaney' or 'htk'")
    linear = _SLANEY_F_SP * mels
    log = _SLANEY_MIN_LOG_HZ * torch.exp(_SLANEY_LOGSTEP * (mels - _SLANEY_MIN_LOG_MEL))
    return torch.where(mels >= _SLANEY_MIN_LOG_MEL, log, linear)


def mel_filterbank(
    n_freqs: int,
    n_mels: int,
    sample_rate: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    *,
    mel_scale: str = "slaney",
    norm: str | None = "slaney",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Triangular mel filterbank `(n_mels, n_freqs)`, on the CPU, over a one-sided spectrum.

    Bin `k` sits at `k · (sample_rate/2) / (n_freqs − 1)` Hz. Filter `m` rises from edge `m`
    to edge `m+1` and falls to edge `m+2`, the `n_mels + 2` edges evenly spaced in mels from
    `f_min` to `f_max`. `norm="slaney"` scales each filter by `2 / (edge[m+2] − edge[m])`
    (constant area). Computed in the given dtype, like the reference's float32 build.
    """
    if n_freqs < 2 or n_mels < 1:
        raise ValueError(f"need n_freqs >= 2 and n_mels >= 1, got {n_freqs} and {n_mels}")
    if norm not in (None, "slaney"):
        raise ValueError(f"norm {norm!r} is not None or 'slaney'")
    f_max = sample_rate / 2.0 if f_max is None else f_max
    freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=dtype, device="cpu")
    mels = torch.linspace(
        hz_to_mel(f_min, mel_scale),
        hz_to_mel(f_max, mel_scale),
        n_mels + 2,
        dtype=dtype,
        device="cpu",
    )
    edges = mel_to_hz(mels, mel_scale)
    widths = edges[1:] - edges[:-1]  # (n_mels + 1)
    offsets = edges[None, :] - freqs[:, None]  # (n_freqs, n_mels + 2)
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    bank = torch.clamp(torch.minimum(rising, falling), min=0.0)  # (n_freqs, n_mels)
    if norm == "slaney":
        bank = bank * (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[None, :]
    return bank.T.contiguous()


def checkpoint_mel_bins(audio_vae: dict[str, Any]) -> int | None:
    """The mel bin count of an `audio_vae` config section, looked up like the reference:
    `model.params.ddconfig.mel_bins`, else `preprocessing.mel.n_mel_channels`, else
    `variables.mel_bins`; None when none is set."""
    ddconfig = audio_vae.get("model", {}).get("params", {}).get("ddconfig", {})
    return (
        ddconfig.get("mel_bins")
        or audio_vae.get("preprocessing", {}).get("mel", {}).get("n_mel_channels")
        or audio_vae.get("variables", {}).get("mel_bins")
    )


@dataclass(frozen=True)
class MelConfig:
    """STFT/mel settings of the audio VAE's front-end; defaults equal the released checkpoints."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160
    n_mels: int = 64

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise CheckpointError(
                    f"audio mel front-end: {name} must be a positive int, got {value!r}"
                )

    @property
    def f_max(self) -> float:
        return self.sample_rate / 2.0

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @classmethod
    def from_checkpoint_config(cls, config: dict[str, Any]) -> MelConfig:
        """Read `audio_vae.model.params.sampling_rate`, `audio_vae.preprocessing.stft` (its
        `filter_length` is both n_fft and the window; `win_length` is not read) and the mel
        bin count (`checkpoint_mel_bins`). Accepts the whole config or its `audio_vae` section.
        """
        section = config.get("audio_vae", config)
        params = section.get("model", {}).get("params", {})
        stft = section.get("preprocessing", {}).get("stft", {})
        return cls(
            sample_rate=params.get("sampling_rate", cls.sample_rate),
            n_fft=stft.get("filter_length", cls.n_fft),
            hop_length=stft.get("hop_length", cls.hop_length),
            n_mels=checkpoint_mel_bins(section) or cls.n_mels,
        )

    def frames(self, samples: int) -> int:
        """Mel frames for a waveform of `samples` samples (centred STFT)."""
        return 1 + samples // self.hop_length


@lru_cache(maxsize=16)
def _front_end_tables(
    config: MelConfig, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    window = torch.hann_window(config.n_fft, periodic=True, dtype=dtype, device=device)
    bank = mel_filterbank(config.n_freqs, config.n_mels, config.sample_rate, 0.0, config.f_max)
    return window, bank.to(device=device, dtype=dtype)


def log_mel_spectrogram(waveform: torch.Tensor, config: MelConfig | None = None) -> torch.Tensor:
    """`(B, C, samples)` waveform at `config.sample_rate` → log-mel `(B, C, T, n_mels)`.

    `T = 1 + samples // hop_length`. Computed in float32 (or float64 if given) and returned in
    the waveform's dtype.
    """
    config = config or MelConfig()
    if waveform.ndim != 3:
        raise ValueError(f"waveform must be (B, C, samples), got shape {tuple(waveform.shape)}")
    batch, channels, samples = waveform.shape
    pad = config.n_fft // 2
    if samples <= pad:
        seconds = (pad + 1) / config.sample_rate
        raise MediaError(
            f"audio too short for the mel front-end: {samples} samples",
            f"need at least {pad + 1} samples ({seconds * 1000:.0f} ms at {config.sample_rate} Hz)",
        )
    work = waveform.dtype if waveform.dtype == torch.float64 else torch.float32
    window, bank = _front_end_tables(config, waveform.device, work)
    # 1. magnitude STFT, centred with reflect padding → (B·C, n_freqs, T)
    spec = torch.stft(
        waveform.reshape(batch * channels, samples).to(work),
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.n_fft,
        window=window,
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    ).abs()
    # 2. mel projection → (B·C, T, n_mels), then 3. log with the reference's floor
    mel = torch.matmul(spec.transpose(-1, -2), bank.T)
    logmel = torch.log(torch.clamp(mel, min=LOG_FLOOR))
    return logmel.reshape(batch, channels, *logmel.shape[1:]).to(waveform.dtype)
