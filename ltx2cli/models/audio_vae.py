"""Audio VAE: log-mel `(B, 2, T, 64)` ⇄ normalised latent `(B, 8, T', 16)` (model.md §5).

Design choices:
- Config from `audio_vae.model.params.ddconfig` (+ `preprocessing.stft`) in a frozen
  dataclass; anything the released checkpoints do not use (attention, GroupNorm, average
  pooling) is rejected with a `CheckpointError` naming the key.
- Every conv is "causal" along one axis (time = height in the released files): zero padding
  `k−1` before the first frame only, symmetric on the other axis. PixelNorm (eps 1e-6) and
  SiLU, no timestep input.
- Encoder: `conv_in` → levels of ResNet blocks with a stride-2 `downsample` between levels →
  `mid.block_1/2` → norm, SiLU, `conv_out` to `2·z` channels; the first `z` (the means) are
  kept and normalised with the per-channel statistics.
- Decoder mirrors it; levels are stored at `up.<level>` and run from the deepest down; each
  `upsample` is nearest ×2, a causal conv, and drops the first time row (T → 2T−1). The
  output is cropped / zero-padded to exactly `4·T' − 3` frames and `mel_bins` bins.
- Statistics (`per_channel_statistics.mean-of-means` / `std-of-means`, `ch` entries) act on
  the patchified latent `(B, T', C·F)` with feature index `c·F + f`; the encoder normalises,
  the decoder un-normalises first. Both modules carry the same two buffers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ltx2cli.errors import CheckpointError

# The reference sizes latents with a fixed factor of 4 (16000 / 160 / 4 = 25 latents per second)
# and the decoder's target length with it too, whatever `ch_mult` says.
LATENT_DOWNSAMPLE_FACTOR = 4
PIXEL_NORM_EPS = 1e-6
CAUSALITY_AXES = ("height", "width", "width-compatibility", None)


def audio_latent_frames(
    seconds: float,
    sample_rate: int = 16000,
    hop_length: int = 160,
    downsample: int = LATENT_DOWNSAMPLE_FACTOR,
) -> int:
    """Audio latent frames for a clip of `seconds` (25 per second), rounded like the reference.

    121 frames at 24 fps (5.04 s) → 126.
    """
    return round(seconds * float(sample_rate) / float(hop_length) / float(downsample))


def encoded_latent_frames(mel_frames: int, levels: int = 3) -> int:
    """Latent frames the encoder makes from `mel_frames`: `⌊(T − 1)/2⌋ + 1` per downsample."""
    for _ in range(levels - 1):
        mel_frames = (mel_frames - 1) // 2 + 1
    return mel_frames


def decoded_mel_frames(latent_frames: int, causal: bool = True) -> int:
    """Mel frames the decoder returns for `latent_frames`: `4·T' − 3` (causal) or `4·T'`."""
    frames = latent_frames * LATENT_DOWNSAMPLE_FACTOR
    return max(frames - (LATENT_DOWNSAMPLE_FACTOR - 1), 1) if causal else frames


@dataclass(frozen=True)
class AudioVAEConfig:
    """`audio_vae.model.params.ddconfig` plus the STFT settings; defaults = released files."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 8
    double_z: bool = True
    in_channels: int = 2
    out_ch: int = 2
    resolution: int = 256
    mel_bins: int = 64
    causality_axis: str | None = "height"
    dropout: float = 0.0
    sample_rate: int = 16000
    hop_length: int = 160
    n_fft: int = 1024

    def __post_init__(self) -> None:
        for name in ("ch", "num_res_blocks", "z_channels", "in_channels", "out_ch", "mel_bins"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise CheckpointError(
                    f"audio_vae ddconfig.{name} must be a positive int, got {value!r}"
                )
        if not self.ch_mult or any(int(m) <= 0 for m in self.ch_mult):
            raise CheckpointError(
                f"audio_vae ddconfig.ch_mult must be positive ints, got {self.ch_mult!r}"
            )
        if self.causality_axis not in CAUSALITY_AXES:
            raise CheckpointError(
                f"audio_vae ddconfig.causality_axis {self.causality_axis!r} is not supported",
                f"expected one of {CAUSALITY_AXES}",
            )
        features = self.z_channels * self.latent_mel_bins
        if features != self.ch:
            # The reference sizes the statistics by `ch` but applies them to z·F features.
            raise CheckpointError(
                f"audio_vae ddconfig.ch={self.ch} must equal z_channels·latent mel bins "
                f"= {self.z_channels}·{self.latent_mel_bins} = {features}",
                "the per-channel statistics have `ch` entries and normalise z·F latent features",
            )

    @property
    def latent_mel_bins(self) -> int:
        # Every downsample pads one bin on the far side of the mel axis: F → ⌊F/2⌋.
        return self.mel_bins // 2 ** (len(self.ch_mult) - 1)

    @property
    def causal(self) -> bool:
        return self.causality_axis is not None

    @classmethod
    def from_checkpoint_config(cls, config: dict[str, Any]) -> AudioVAEConfig:
        """Build from the checkpoint config (whole, or its `audio_vae` section)."""
        section = config.get("audio_vae", config)
        params = section.get("model", {}).get("params", {})
        dd = dict(params.get("ddconfig", {}))
        stft = section.get("preprocessing", {}).get("stft", {})
        _reject_unsupported(dd)
        names = {f.name for f in fields(cls)} - {"sample_rate", "hop_length", "n_fft", "mel_bins"}
        values: dict[str, Any] = {k: dd[k] for k in names if k in dd}
        if "ch_mult" in values:
            values["ch_mult"] = tuple(int(m) for m in values["ch_mult"])
        mel_bins = dd.get("mel_bins") or section.get("preprocessing", {}).get("mel", {}).get(
            "n_mel_channels"
        )
        return cls(
            **values,
            mel_bins=mel_bins or cls.mel_bins,
            sample_rate=params.get("sampling_rate", cls.sample_rate),
            hop_length=stft.get("hop_length", cls.hop_length),
            n_fft=stft.get("filter_length", cls.n_fft),
        )


def _reject_unsupported(dd: dict[str, Any]) -> None:
    where = "audio_vae.model.params.ddconfig"
    if dd.get("norm_type", "pixel") != "pixel":
        raise CheckpointError(
            f"{where}.norm_type={dd['norm_type']!r} is not supported (only 'pixel')"
        )
    if dd.get("mid_block_add_attention", False):
        raise CheckpointError(f"{where}.mid_block_add_attention=true is not supported")
    if not dd.get("resamp_with_conv", True):
        raise CheckpointError(f"{where}.resamp_with_conv=false is not supported")
    resolution = int(dd.get("resolution", 256))
    reached = {resolution // 2**level for level in range(len(dd.get("ch_mult", (1, 2, 4))))}
    if reached & set(dd.get("attn_resolutions") or ()):
        raise CheckpointError(f"{where}.attn_resolutions={dd['attn_resolutions']} is not supported")


# ---------------------------------------------------------------------------------------------
# Building blocks


def _conv_padding(axis: str | None, kernel: int) -> tuple[int, int, int, int]:
    """F.pad order (left, right, top, bottom) for a k×k conv: `k−1` before the causal axis."""
    total = kernel - 1
    half = (total // 2, total - total // 2)
    if axis == "height":
        return (*half, total, 0)
    if axis in ("width", "width-compatibility"):
        return (total, 0, *half)
    return (*half, *half)


_DOWNSAMPLE_PADDING = {
    "height": (0, 1, 2, 0),
    "width": (2, 0, 0, 1),
    "width-compatibility": (1, 0, 0, 1),
    None: (0, 1, 0, 1),
}


class CausalConv2d(nn.Module):
    """Zero-pad as `_conv_padding`, then an unpadded Conv2d (key `conv`)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, axis: str | None) -> None:
        super().__init__()
        self.padding = _conv_padding(axis, kernel)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


def pixel_norm(x: torch.Tensor, eps: float = PIXEL_NORM_EPS) -> torch.Tensor:
    """`x / sqrt(mean over channels of x² + eps)`."""
    return x / torch.sqrt(torch.mean(x * x, dim=1, keepdim=True) + eps)


class ResnetBlock(nn.Module):
    """PixelNorm → SiLU → conv1 → PixelNorm → SiLU → dropout → conv2, plus a 1×1 shortcut."""

    def __init__(self, in_ch: int, out_ch: int, axis: str | None, dropout: float) -> None:
        super().__init__()
        self.conv1 = CausalConv2d(in_ch, out_ch, 3, axis)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = CausalConv2d(out_ch, out_ch, 3, axis)
        if in_ch != out_ch:
            self.nin_shortcut = CausalConv2d(in_ch, out_ch, 1, axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(pixel_norm(x)))
        h = self.conv2(self.dropout(F.silu(pixel_norm(h))))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class Downsample(nn.Module):
    """Zero-pad one frame/bin on the far side (two before the causal axis), conv k3 s2."""

    def __init__(self, channels: int, axis: str | None) -> None:
        super().__init__()
        self.padding = _DOWNSAMPLE_PADDING[axis]
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


class Upsample(nn.Module):
    """Nearest ×2, causal conv, then drop the first causal row to undo the encoder's padding."""

    def __init__(self, channels: int, axis: str | None) -> None:
        super().__init__()
        self.axis = axis
        self.conv = CausalConv2d(channels, channels, 3, axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        if self.axis == "height":
            return x[:, :, 1:, :]
        if self.axis == "width":
            return x[:, :, :, 1:]
        return x


class PerChannelStatistics(nn.Module):
    """Latent statistics over the flattened `C·F` feature axis (identity until loaded)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("std-of-means", torch.ones(features))
        self.register_buffer("mean-of-means", torch.zeros(features))

    def normalize(self, latent: torch.Tensor) -> torch.Tensor:
        """`(B, C, T, F)` → `(x − mean) / std` applied per `c·F + f` feature."""
        mean, std = self._stats(latent)
        return (latent - mean) / std

    def denormalize(self, latent: torch.Tensor) -> torch.Tensor:
        """Inverse of `normalize`: `x · std + mean`."""
        mean, std = self._stats(latent)
        return latent * std + mean

    def _stats(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Patchify (B, C, T, F) → (B, T, C·F) is a permutation, so reshaping the stats to
        # (C, 1, F) applies them to the same elements without moving the latent.
        _, channels, _, bins = latent.shape
        shape = (channels, 1, bins)
        mean = self.get_buffer("mean-of-means").to(latent).reshape(shape)
        std = self.get_buffer("std-of-means").to(latent).reshape(shape)
        return mean, std


def _stage(blocks: list[nn.Module], resample: nn.Module | None, name: str) -> nn.Module:
    stage = nn.Module()
    stage.block = nn.ModuleList(blocks)
    if resample is not None:
        stage.add_module(name, resample)
    return stage


def _init_conv_weights(module: nn.Module, generator: torch.Generator | None) -> None:
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d):
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            with torch.no_grad():
                conv.weight.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)
                conv.bias.normal_(0.0, 0.02, generator=generator)


def _init_statistics(stats: PerChannelStatistics, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        stats.get_buffer("mean-of-means").normal_(0.0, 0.1, generator=generator)
        std = stats.get_buffer("std-of-means")
        std.copy_(0.5 + torch.rand(std.shape, generator=generator, dtype=std.dtype))


# ---------------------------------------------------------------------------------------------
# Encoder and decoder


class AudioEncoder(nn.Module):
    """Log-mel `(B, in_channels, T, mel_bins)` → normalised latent `(B, z, T', mel_bins/4)`."""

    def __init__(self, config: AudioVAEConfig) -> None:
        super().__init__()
        self.config = config
        axis, ch, mult = config.causality_axis, config.ch, config.ch_mult
        self.per_channel_statistics = PerChannelStatistics(config.ch)
        self.conv_in = CausalConv2d(config.in_channels, ch, 3, axis)
        self.down = nn.ModuleList()
        block_in = ch
        for level, m in enumerate(mult):
            block_out = ch * m
            blocks = []
            for _ in range(config.num_res_blocks):
                blocks.append(ResnetBlock(block_in, block_out, axis, config.dropout))
                block_in = block_out
            last = level == len(mult) - 1
            self.down.append(
                _stage(blocks, None if last else Downsample(block_in, axis), "downsample")
            )
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, axis, config.dropout)
        self.mid.block_2 = ResnetBlock(block_in, block_in, axis, config.dropout)
        out = 2 * config.z_channels if config.double_z else config.z_channels
        self.conv_out = CausalConv2d(block_in, out, 3, axis)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        # 1. conv_in and the downsampling levels: (B, ch·m, T/2^l, F/2^l)
        h = self.conv_in(mel.to(self.conv_in.conv.weight.dtype))
        for stage in self.down:
            for block in stage.block:
                h = block(h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        # 2. mid blocks and output head → (B, 2z, T', F')
        h = self.mid.block_2(self.mid.block_1(h))
        h = self.conv_out(F.silu(pixel_norm(h)))
        # 3. keep the means, normalise with the dataset statistics → (B, z, T', F')
        means = h[:, : self.config.z_channels] if self.config.double_z else h
        return self.per_channel_statistics.normalize(means)

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Random weights for tiny test checkpoints (finite outputs; PixelNorm keeps scale)."""
        _init_conv_weights(self, generator)
        _init_statistics(self.per_channel_statistics, generator)


class AudioDecoder(nn.Module):
    """Normalised latent `(B, z, T', F')` → log-mel `(B, out_ch, 4·T' − 3, mel_bins)`."""

    def __init__(self, config: AudioVAEConfig) -> None:
        super().__init__()
        self.config = config
        axis, ch, mult = config.causality_axis, config.ch, config.ch_mult
        self.per_channel_statistics = PerChannelStatistics(config.ch)
        block_in = ch * mult[-1]
        self.conv_in = CausalConv2d(config.z_channels, block_in, 3, axis)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, axis, config.dropout)
        self.mid.block_2 = ResnetBlock(block_in, block_in, axis, config.dropout)
        stages: list[nn.Module] = []
        for level in reversed(range(len(mult))):
            block_out = ch * mult[level]
            blocks = []
            for _ in range(config.num_res_blocks + 1):
                blocks.append(ResnetBlock(block_in, block_out, axis, config.dropout))
                block_in = block_out
            stages.insert(
                0, _stage(blocks, Upsample(block_in, axis) if level else None, "upsample")
            )
        self.up = nn.ModuleList(stages)
        self.conv_out = CausalConv2d(block_in, config.out_ch, 3, axis)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        frames = latent.shape[2]
        # 1. un-normalise, conv_in, mid blocks
        h = self.per_channel_statistics.denormalize(latent.to(self.conv_in.conv.weight.dtype))
        h = self.mid.block_2(self.mid.block_1(self.conv_in(h)))
        # 2. upsampling levels, deepest first: T' → 2T'−1 → 4T'−3
        for stage in reversed(self.up):
            for block in stage.block:
                h = block(h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        # 3. output head (no tanh), then crop / zero-pad to the exact target size
        h = self.conv_out(F.silu(pixel_norm(h)))
        return _fit(h, decoded_mel_frames(frames, self.config.causal), self.config.mel_bins)

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Random weights for tiny test checkpoints (finite outputs; PixelNorm keeps scale)."""
        _init_conv_weights(self, generator)
        _init_statistics(self.per_channel_statistics, generator)


def _fit(mel: torch.Tensor, frames: int, bins: int) -> torch.Tensor:
    mel = mel[:, :, :frames, :bins]
    return F.pad(mel, (0, bins - mel.shape[3], 0, frames - mel.shape[2]))


def build_audio_encoder(config: dict[str, Any], **options: Any) -> AudioEncoder:
    """Audio VAE encoder from the checkpoint config. Keys: raw `audio_vae.encoder.X` → `X`,
    `audio_vae.per_channel_statistics.X` → `per_channel_statistics.X`. No runtime options."""
    return AudioEncoder(AudioVAEConfig.from_checkpoint_config(config))


def build_audio_decoder(config: dict[str, Any], **options: Any) -> AudioDecoder:
    """Audio VAE decoder from the checkpoint config (keys as the encoder, `decoder.`)."""
    return AudioDecoder(AudioVAEConfig.from_checkpoint_config(config))
