"""Audio VAE: log-mel `(B, 2, T, 64)` ⇄ normalised latent `(B, 8, T', 16)`.

Design choices:
- Config from `audio_vae.model.params.ddconfig` (+ `preprocessing.stft`) in a frozen
  dataclass. Absent keys take the reference configurator's defaults (note: attention ON when
  `mid_block_add_attention` / `attn_resolutions` are missing; the released files say off).
- Every conv is "causal" along one axis (time = height in the released files): zero padding
  `k−1` before the first frame only, symmetric on the other axis. PixelNorm (eps 1e-6) and
  SiLU, no timestep input. GroupNorm (32 groups, eps 1e-6), single-head attention blocks and
  average-pool downsampling exist for the non-causal configs the reference also accepts.
- Encoder: `conv_in` → levels of ResNet blocks with a stride-2 `downsample` between levels →
  `mid.block_1/attn_1/block_2` → norm, SiLU, `conv_out` to `2·z` channels; the first `z`
  (the means) are kept and normalised with the per-channel statistics.
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
from ltx2cli.models.mel import MelConfig, checkpoint_mel_bins

# The reference sizes latents with a fixed factor of 4 (16000 / 160 / 4 = 25 latents per second)
# and the decoder's target length with it too, whatever `ch_mult` says.
LATENT_DOWNSAMPLE_FACTOR = 4
PIXEL_NORM_EPS = 1e-6
GROUP_NORM_GROUPS = 32
GROUP_NORM_EPS = 1e-6
CAUSALITY_AXES = ("height", "width", "width-compatibility", None)
NORM_TYPES = ("pixel", "group")
ATTN_TYPES = ("vanilla", "none")
# The reference configurator's value when `attn_resolutions` is absent (the released files
# write `[]`); a level whose resolution `resolution / 2^level` is listed gets attention.
REFERENCE_ATTN_RESOLUTIONS = (8, 16, 32)


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
    """`audio_vae.model.params.ddconfig` plus the STFT settings; defaults = released files.

    `from_checkpoint_config` fills ABSENT keys with the reference configurator's defaults, which
    differ from the released values for attention: `mid_block_add_attention` → true and
    `attn_resolutions` → {8, 16, 32}. `mel_bins` may be None (no `mel_bins`, `n_mel_channels` or
    `variables.mel_bins`): the decoder then crops its output to the latent's own bin count.
    """

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 8
    double_z: bool = True
    in_channels: int = 2
    out_ch: int = 2
    resolution: int = 256
    mel_bins: int | None = 64
    causality_axis: str | None = "height"
    norm_type: str = "pixel"
    attn_resolutions: tuple[int, ...] = ()
    mid_block_add_attention: bool = False
    attn_type: str = "vanilla"
    resamp_with_conv: bool = True
    dropout: float = 0.0
    sample_rate: int = 16000
    hop_length: int = 160
    n_fft: int = 1024

    def __post_init__(self) -> None:
        where = "audio_vae ddconfig"
        for name in ("ch", "num_res_blocks", "z_channels", "in_channels", "out_ch", "resolution"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise CheckpointError(f"{where}.{name} must be a positive int, got {value!r}")
        if self.mel_bins is not None and (not isinstance(self.mel_bins, int) or self.mel_bins <= 0):
            raise CheckpointError(f"{where}.mel_bins must be a positive int, got {self.mel_bins!r}")
        if not self.ch_mult or any(int(m) <= 0 for m in self.ch_mult):
            raise CheckpointError(f"{where}.ch_mult must be positive ints, got {self.ch_mult!r}")
        if self.causality_axis not in CAUSALITY_AXES:
            raise CheckpointError(
                f"{where}.causality_axis {self.causality_axis!r} is not supported",
                f"expected one of {CAUSALITY_AXES}",
            )
        if self.norm_type not in NORM_TYPES:
            raise CheckpointError(
                f"{where}.norm_type={self.norm_type!r} is not supported", f"expected {NORM_TYPES}"
            )
        if self.norm_type == "group" and self.causal:
            raise CheckpointError(
                f"{where}.norm_type='group' needs causality_axis null, got {self.causality_axis!r}",
                "GroupNorm would mix future frames into a causal model",
            )
        if self.attn_type not in ATTN_TYPES:
            raise CheckpointError(
                f"{where}.attn_type={self.attn_type!r} is not supported", f"expected {ATTN_TYPES}"
            )
        if self.latent_mel_bins is not None:
            features = self.z_channels * self.latent_mel_bins
            if features != self.ch:
                # The reference sizes the statistics by `ch` but applies them to z·F features.
                raise CheckpointError(
                    f"{where}.ch={self.ch} must equal z_channels·latent mel bins "
                    f"= {self.z_channels}·{self.latent_mel_bins} = {features}",
                    "the per-channel statistics have `ch` entries and normalise z·F features",
                )

    @property
    def latent_mel_bins(self) -> int | None:
        # Every downsample pads one bin on the far side of the mel axis: F → ⌊F/2⌋.
        if self.mel_bins is None:
            return None
        return self.mel_bins // 2 ** (len(self.ch_mult) - 1)

    @property
    def causal(self) -> bool:
        return self.causality_axis is not None

    @property
    def mel(self) -> MelConfig:
        """The mel front-end that feeds this VAE's encoder (64 bins when none are configured)."""
        return MelConfig(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            n_mels=self.mel_bins or MelConfig.n_mels,
        )

    def has_attention(self, level: int, decoder: bool = False) -> bool:
        """Whether level `level` carries attention blocks: its nominal resolution is listed in
        `attn_resolutions`. The encoder halves `resolution` per level; the decoder doubles up
        from the deepest level's `⌊resolution / 2^(n−1)⌋` (they differ when it is not a power
        of two, as in the reference)."""
        deepest = len(self.ch_mult) - 1
        if decoder:
            size = (self.resolution // 2**deepest) * 2 ** (deepest - level)
        else:
            size = self.resolution // 2**level
        return size in self.attn_resolutions

    @classmethod
    def from_checkpoint_config(cls, config: dict[str, Any]) -> AudioVAEConfig:
        """Build from the checkpoint config (whole, or its `audio_vae` section)."""
        section = config.get("audio_vae", config)
        params = section.get("model", {}).get("params", {})
        dd = dict(params.get("ddconfig", {}))
        preprocessing = section.get("preprocessing", {})
        stft = preprocessing.get("stft", {})
        names = {f.name for f in fields(cls)} - {"sample_rate", "hop_length", "n_fft", "mel_bins"}
        values: dict[str, Any] = {k: dd[k] for k in names if k in dd}
        values.setdefault("mid_block_add_attention", True)
        values["attn_resolutions"] = tuple(
            int(r) for r in dd.get("attn_resolutions", REFERENCE_ATTN_RESOLUTIONS) or ()
        )
        if "ch_mult" in values:
            values["ch_mult"] = tuple(int(m) for m in values["ch_mult"])
        return cls(
            **values,
            mel_bins=checkpoint_mel_bins(section),
            sample_rate=params.get("sampling_rate", cls.sample_rate),
            hop_length=stft.get("hop_length", cls.hop_length),
            n_fft=stft.get("filter_length", cls.n_fft),
        )


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


class PixelNorm(nn.Module):
    """`x / sqrt(mean over channels of x² + eps)`; no parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(torch.mean(x * x, dim=1, keepdim=True) + PIXEL_NORM_EPS)


def _norm(channels: int, norm_type: str) -> nn.Module:
    if norm_type == "group":
        return nn.GroupNorm(GROUP_NORM_GROUPS, channels, eps=GROUP_NORM_EPS, affine=True)
    return PixelNorm()


class ResnetBlock(nn.Module):
    """norm1 → SiLU → conv1 → norm2 → SiLU → dropout → conv2, plus a 1×1 shortcut."""

    def __init__(self, in_ch: int, out_ch: int, config: AudioVAEConfig) -> None:
        super().__init__()
        axis = config.causality_axis
        self.norm1 = _norm(in_ch, config.norm_type)
        self.conv1 = CausalConv2d(in_ch, out_ch, 3, axis)
        self.norm2 = _norm(out_ch, config.norm_type)
        self.dropout = nn.Dropout(config.dropout)
        self.conv2 = CausalConv2d(out_ch, out_ch, 3, axis)
        if in_ch != out_ch:
            self.nin_shortcut = CausalConv2d(in_ch, out_ch, 1, axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all (time, mel) positions with 1×1 q/k/v/proj_out convs.

    Not causal: only reachable through configs that ask for it (absent attention keys take the
    reference's defaults); the released files have none.
    """

    def __init__(self, channels: int, norm_type: str) -> None:
        super().__init__()
        self.norm = _norm(channels, norm_type)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        h = self.norm(x)
        # (B, C, H, W) → (B, 1, H·W, C): one head of width C, scale 1/√C
        q, k, v = (
            conv(h).reshape(batch, 1, channels, height * width).transpose(-1, -2)
            for conv in (self.q, self.k, self.v)
        )
        h = F.scaled_dot_product_attention(q, k, v)
        h = h.transpose(-1, -2).reshape(batch, channels, height, width)
        return x + self.proj_out(h)


class Downsample(nn.Module):
    """Zero-pad one frame/bin on the far side (two before the causal axis), conv k3 s2;
    2×2 average pooling instead when `resamp_with_conv` is false (non-causal only)."""

    def __init__(self, channels: int, axis: str | None, with_conv: bool = True) -> None:
        super().__init__()
        self.padding = _DOWNSAMPLE_PADDING[axis]
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "conv"):
            return F.avg_pool2d(x, kernel_size=2, stride=2)
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


def _stage(
    blocks: list[nn.Module], attn: list[nn.Module], resample: nn.Module | None, name: str
) -> nn.Module:
    stage = nn.Module()
    stage.block = nn.ModuleList(blocks)
    stage.attn = nn.ModuleList(attn)
    if resample is not None:
        stage.add_module(name, resample)
    return stage


def _run_stage(stage: nn.Module, h: torch.Tensor) -> torch.Tensor:
    for i, block in enumerate(stage.block):
        h = block(h)
        if len(stage.attn):
            h = stage.attn[i](h)
    return h


def _mid(channels: int, config: AudioVAEConfig, attention: bool) -> nn.Module:
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels, config)
    mid.attn_1 = AttnBlock(channels, config.norm_type) if attention else nn.Identity()
    mid.block_2 = ResnetBlock(channels, channels, config)
    return mid


def _run_mid(mid: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h)))


def _init_weights(module: nn.Module, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.Conv2d):
                fan_in = sub.in_channels * sub.kernel_size[0] * sub.kernel_size[1]
                sub.weight.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)
                sub.bias.normal_(0.0, 0.02, generator=generator)
            elif isinstance(sub, nn.GroupNorm):
                sub.weight.normal_(1.0, 0.1, generator=generator)
                sub.bias.normal_(0.0, 0.1, generator=generator)
        # statistics last, so the convs draw the same numbers as in earlier tiny checkpoints
        stats = module.per_channel_statistics
        stats.get_buffer("mean-of-means").normal_(0.0, 0.1, generator=generator)
        std = stats.get_buffer("std-of-means")
        std.copy_(0.5 + torch.rand(std.shape, generator=generator, dtype=std.dtype))


# ---------------------------------------------------------------------------------------------
# Encoder and decoder


class AudioEncoder(nn.Module):
    """Log-mel `(B, in_channels, T, mel_bins)` → normalised latent `(B, z, T', mel_bins/4)`."""

    def __init__(self, config: AudioVAEConfig) -> None:
        super().__init__()
        where = "audio_vae.model.params.ddconfig"
        if not config.double_z:
            # The reference keeps the first half of the output channels either way (`chunk(2)`),
            # so a single-z encoder would hand ⌈z/2⌉ channels to `ch`-sized statistics.
            raise CheckpointError(f"{where}.double_z=false is not supported by the encoder")
        if not config.resamp_with_conv and config.causal:
            raise CheckpointError(
                f"{where}.resamp_with_conv=false needs causality_axis null, "
                f"got {config.causality_axis!r}"
            )
        self.config = config
        axis, ch, mult = config.causality_axis, config.ch, config.ch_mult
        attention = config.attn_type == "vanilla"
        self.per_channel_statistics = PerChannelStatistics(config.ch)
        self.conv_in = CausalConv2d(config.in_channels, ch, 3, axis)
        self.down = nn.ModuleList()
        block_in = ch
        for level, m in enumerate(mult):
            block_out = ch * m
            blocks, attn = [], []
            for _ in range(config.num_res_blocks):
                blocks.append(ResnetBlock(block_in, block_out, config))
                block_in = block_out
                if config.has_attention(level):
                    attn.append(
                        AttnBlock(block_in, config.norm_type) if attention else nn.Identity()
                    )
            last = level == len(mult) - 1
            down = None if last else Downsample(block_in, axis, config.resamp_with_conv)
            self.down.append(_stage(blocks, attn, down, "downsample"))
        self.mid = _mid(block_in, config, config.mid_block_add_attention and attention)
        self.norm_out = _norm(block_in, config.norm_type)
        self.conv_out = CausalConv2d(block_in, 2 * config.z_channels, 3, axis)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        # 1. conv_in and the downsampling levels: (B, ch·m, T/2^l, F/2^l)
        h = self.conv_in(mel.to(self.conv_in.conv.weight.dtype))
        for stage in self.down:
            h = _run_stage(stage, h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        # 2. mid blocks and output head → (B, 2z, T', F')
        h = self.conv_out(F.silu(self.norm_out(_run_mid(self.mid, h))))
        # 3. keep the means (the log-variance half is unused), normalise → (B, z, T', F')
        means = h[:, : self.config.z_channels]
        return self.per_channel_statistics.normalize(means)

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Random weights for tiny test checkpoints (finite outputs; PixelNorm keeps scale)."""
        _init_weights(self, generator)


class AudioDecoder(nn.Module):
    """Normalised latent `(B, z, T', F')` → log-mel `(B, out_ch, 4·T' − 3, mel_bins)`."""

    def __init__(self, config: AudioVAEConfig) -> None:
        super().__init__()
        self.config = config
        axis, ch, mult = config.causality_axis, config.ch, config.ch_mult
        self.per_channel_statistics = PerChannelStatistics(config.ch)
        block_in = ch * mult[-1]
        self.conv_in = CausalConv2d(config.z_channels, block_in, 3, axis)
        # The reference decoder always uses vanilla attention and strided-conv resampling,
        # whatever `attn_type` / `resamp_with_conv` say.
        self.mid = _mid(block_in, config, config.mid_block_add_attention)
        stages: list[nn.Module] = []
        for level in reversed(range(len(mult))):
            block_out = ch * mult[level]
            blocks, attn = [], []
            for _ in range(config.num_res_blocks + 1):
                blocks.append(ResnetBlock(block_in, block_out, config))
                block_in = block_out
                if config.has_attention(level, decoder=True):
                    attn.append(AttnBlock(block_in, config.norm_type))
            up = Upsample(block_in, axis) if level else None
            stages.insert(0, _stage(blocks, attn, up, "upsample"))
        self.up = nn.ModuleList(stages)
        self.norm_out = _norm(block_in, config.norm_type)
        self.conv_out = CausalConv2d(block_in, config.out_ch, 3, axis)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        frames, bins = latent.shape[2], latent.shape[3]
        # 1. un-normalise, conv_in, mid blocks
        h = self.per_channel_statistics.denormalize(latent.to(self.conv_in.conv.weight.dtype))
        h = _run_mid(self.mid, self.conv_in(h))
        # 2. upsampling levels, deepest first: T' → 2T'−1 → 4T'−3
        for stage in reversed(self.up):
            h = _run_stage(stage, h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        # 3. output head (no tanh), then crop / zero-pad to the exact target size; without a
        # configured mel_bins the reference keeps the latent's own bin count
        h = self.conv_out(F.silu(self.norm_out(h)))
        target_bins = self.config.mel_bins if self.config.mel_bins is not None else bins
        return _fit(h, decoded_mel_frames(frames, self.config.causal), target_bins)

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Random weights for tiny test checkpoints (finite outputs; PixelNorm keeps scale)."""
        _init_weights(self, generator)


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
