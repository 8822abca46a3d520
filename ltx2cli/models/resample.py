"""Band-limited resampling of waveforms in memory (Hann-windowed sinc, torchaudio's semantics).

With both rates divided by their gcd (`orig`, `new`), output sample `n` (of phase
`j = n mod new`, block `q = n div new`) is

    y[n] = Σ_k x[q·orig + k] · h_j(k),   h_j(k) = (base/orig) · sinc(t) · cos²(π·t / (2·w)),
    t = clamp(base · (k/orig − j/new), −w, w),  base = min(orig, new) · rolloff,

over `k ∈ [−width, width + orig)`, `width = ⌈w · orig / base⌉`, with zeros outside the signal,
`w` = lowpass_filter_width (6), rolloff 0.99; the output has `⌈new · L / orig⌉` samples. This is
how the reference's audio front-end brings any input rate to the audio VAE's 16 kHz.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99


def sinc_resample_kernel(
    orig: int,
    new: int,
    *,
    lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
    rolloff: float = ROLLOFF,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, int]:
    """Polyphase kernels `(new, 1, 2·width + orig)` for gcd-reduced rates, and `width`.

    Evaluated in `dtype` in the order the reference uses, so float32 kernels round alike.
    """
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    taps = torch.arange(-width, width + orig, dtype=dtype, device=device)[None, None] / orig
    phases = torch.arange(0, -new, -1, dtype=dtype, device=device)[:, None, None] / new
    t = (phases + taps) * base
    t = t.clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones((), dtype=dtype, device=device), t.sin() / t)
    return sinc * (window * (base / orig)), width


def resample(
    waveform: torch.Tensor,
    orig_freq: int,
    new_freq: int,
    *,
    lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
    rolloff: float = ROLLOFF,
) -> torch.Tensor:
    """Resample the last axis of a float `(..., samples)` tensor from `orig_freq` to `new_freq` Hz.

    Computed in the waveform's dtype and device; equal rates return the input unchanged.
    """
    if orig_freq <= 0 or new_freq <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_freq} and {new_freq}")
    if orig_freq == new_freq:
        return waveform
    gcd = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // gcd, int(new_freq) // gcd
    kernel, width = sinc_resample_kernel(
        orig,
        new,
        lowpass_filter_width=lowpass_filter_width,
        rolloff=rolloff,
        dtype=waveform.dtype,
        device=waveform.device,
    )
    shape = waveform.shape
    flat = waveform.reshape(-1, 1, shape[-1])
    padded = F.pad(flat, (width, width + orig))
    # (N, new, blocks): phase j of block q is output sample q·new + j
    out = F.conv1d(padded, kernel, stride=orig).transpose(1, 2).reshape(flat.shape[0], -1)
    length = math.ceil(new * shape[-1] / orig)
    return out[:, :length].reshape(*shape[:-1], -1)
