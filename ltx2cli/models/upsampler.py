"""Latent upsamplers: spatial ×2 / ×1.5 and temporal ×2, loaded from their own files.

Design choices:
- The file's flat `config` metadata becomes a frozen `UpsamplerConfig`; keys have no prefix.
- Structure: `initial_conv` → GroupNorm(32) → SiLU → `res_blocks` → `upsampler` →
  `post_upsample_res_blocks` → `final_conv`, all 3×3(×3) convs with zero padding.
- Spatial ×2 is either a per-frame Conv2d + pixel shuffle (`upsampler.0`) or the rational
  resampler (`upsampler.conv`, shuffle by `num`, fixed 5×5 binomial blur with stride `den`,
  whose kernel is a stored buffer); ×1.5 is rational (3, 2). Temporal ×2 is a Conv3d + temporal
  shuffle that drops the first frame: F latent frames → 2F − 1.
- The upsampler works on un-normalised latents; `upsample_latent` wraps it with the VAE's
  per-channel statistics the way the two-stage pipelines do.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ltx2cli.errors import CheckpointError
from ltx2cli.models.video_vae_blocks import depth_to_space, init_fan_in_uniform

logger = logging.getLogger(__name__)

GROUPS = 32
BLUR_TAPS = 5
# spatial_scale → (upsample by num, downsample by den)
RATIONAL_SCALES = {0.75: (3, 4), 1.5: (3, 2), 2.0: (2, 1), 4.0: (4, 1)}


@dataclass(frozen=True)
class UpsamplerConfig:
    """Flat `config` metadata of an upsampler file (defaults: the reference's)."""

    in_channels: int = 128
    mid_channels: int = 512
    num_blocks_per_stage: int = 4
    dims: int = 3
    spatial_upsample: bool = True
    temporal_upsample: bool = False
    spatial_scale: float = 2.0
    rational_resampler: bool = False

    def __post_init__(self) -> None:
        for key in ("in_channels", "mid_channels"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise CheckpointError(f"upsampler {key} = {getattr(self, key)!r} must be positive")
        if self.mid_channels % GROUPS:
            raise CheckpointError(
                f"upsampler mid_channels = {self.mid_channels} is not a multiple of {GROUPS}"
            )
        if self.num_blocks_per_stage < 0:
            raise CheckpointError(f"upsampler num_blocks_per_stage = {self.num_blocks_per_stage!r}")
        if self.dims not in (2, 3):
            raise CheckpointError(f"upsampler dims = {self.dims!r} is not 2 or 3")
        if not (self.spatial_upsample or self.temporal_upsample):
            raise CheckpointError(
                "upsampler config sets neither spatial_upsample nor temporal_upsample"
            )
        if self.dims == 2 and (self.temporal_upsample or self.rational):
            raise CheckpointError("upsampler dims = 2 supports only the plain spatial ×2 variant")
        if self.rational and float(self.spatial_scale) not in RATIONAL_SCALES:
            raise CheckpointError(
                f"upsampler spatial_scale = {self.spatial_scale!r} is not one of "
                f"{sorted(RATIONAL_SCALES)}"
            )
        if self.spatial_upsample and not self.rational and float(self.spatial_scale) != 2.0:
            # The reference builds the fixed ×2 shuffle here whatever spatial_scale says.
            logger.warning(
                "upsampler spatial_scale = %r is ignored without rational_resampler; "
                "the spatial factor is 2",
                self.spatial_scale,
            )

    @classmethod
    def from_checkpoint_config(cls, config: Mapping[str, Any]) -> UpsamplerConfig:
        """Read the flat dict; keys the reference does not read are ignored like it does."""
        fields = cls.__dataclass_fields__
        return cls(**{key: config[key] for key in fields if key in config})

    @property
    def rational(self) -> bool:
        """Whether the rational resampler is built: spatial-only upsamplers that ask for it
        (with temporal upsampling the reference uses the 3-D ×2 shuffle regardless)."""
        return self.rational_resampler and self.spatial_upsample and not self.temporal_upsample

    @property
    def factors(self) -> tuple[float, float]:
        """(temporal, spatial) growth: frames F → 2F − 1 when temporal; H, W × spatial."""
        if not self.spatial_upsample:
            spatial = 1.0
        else:
            spatial = float(self.spatial_scale) if self.rational else 2.0
        return (2.0 if self.temporal_upsample else 1.0), spatial


class PixelShuffle(nn.Module):
    """Parameter-free shuffle over (time, height, width) or, for 4-D input, (height, width)."""

    def __init__(self, factors: tuple[int, int, int]) -> None:
        super().__init__()
        self.factors = factors

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            return F.pixel_shuffle(x, self.factors[1])
        return depth_to_space(x, self.factors)


class BlurDownsample(nn.Module):
    """Depthwise 5×5 binomial blur ([1,4,6,4,1]⊗, normalised) with stride; stride 1 = identity."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.register_buffer("kernel", self.binomial_kernel())

    @staticmethod
    def binomial_kernel() -> torch.Tensor:
        taps = torch.tensor([math.comb(BLUR_TAPS - 1, k) for k in range(BLUR_TAPS)])
        kernel = taps[:, None] @ taps[None, :]
        return (kernel / kernel.sum()).float()[None, None]  # (1, 1, 5, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x
        c = x.shape[1]
        weight = self.kernel.to(x).expand(c, 1, BLUR_TAPS, BLUR_TAPS)
        return F.conv2d(x, weight, stride=self.stride, padding=BLUR_TAPS // 2, groups=c)


class RationalResampler(nn.Module):
    """Per frame: Conv2d(mid → num²·mid) → shuffle by num → blur-downsample by den."""

    def __init__(self, mid_channels: int, scale: float) -> None:
        super().__init__()
        self.num, self.den = RATIONAL_SCALES[float(scale)]
        self.conv = nn.Conv2d(mid_channels, self.num**2 * mid_channels, 3, padding=1)
        self.pixel_shuffle = PixelShuffle((1, self.num, self.num))
        self.blur_down = BlurDownsample(self.den)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur_down(self.pixel_shuffle(self.conv(x)))


class ResBlock(nn.Module):
    """conv → GN → SiLU → conv → GN → SiLU(x + residual)."""

    def __init__(self, channels: int, dims: int) -> None:
        super().__init__()
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        self.conv1 = conv(channels, channels, 3, padding=1)
        self.norm1 = nn.GroupNorm(GROUPS, channels)
        self.conv2 = conv(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(GROUPS, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        return F.silu(self.norm2(self.conv2(h)) + x)


def _frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    b, c, f, h, w = x.shape
    return x.transpose(1, 2).reshape(b * f, c, h, w)


def _batch_to_frames(x: torch.Tensor, b: int) -> torch.Tensor:
    bf, c, h, w = x.shape
    return x.reshape(b, bf // b, c, h, w).transpose(1, 2)


class LatentUpsampler(nn.Module):
    """Un-normalised latent (B, C, F, H, W) → upsampled latent (see `UpsamplerConfig.factors`)."""

    def __init__(self, config: UpsamplerConfig) -> None:
        super().__init__()
        self.config = config
        mid, dims = config.mid_channels, config.dims
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        self.initial_conv = conv(config.in_channels, mid, 3, padding=1)
        self.initial_norm = nn.GroupNorm(GROUPS, mid)
        self.res_blocks = nn.ModuleList(
            ResBlock(mid, dims) for _ in range(config.num_blocks_per_stage)
        )
        if config.spatial_upsample and config.temporal_upsample:
            self.upsampler = nn.Sequential(
                nn.Conv3d(mid, 8 * mid, 3, padding=1), PixelShuffle((2, 2, 2))
            )
        elif config.temporal_upsample:
            self.upsampler = nn.Sequential(
                nn.Conv3d(mid, 2 * mid, 3, padding=1), PixelShuffle((2, 1, 1))
            )
        elif config.rational:
            self.upsampler = RationalResampler(mid, config.spatial_scale)
        else:
            self.upsampler = nn.Sequential(
                nn.Conv2d(mid, 4 * mid, 3, padding=1), PixelShuffle((1, 2, 2))
            )
        self.post_upsample_res_blocks = nn.ModuleList(
            ResBlock(mid, dims) for _ in range(config.num_blocks_per_stage)
        )
        self.final_conv = conv(mid, config.in_channels, 3, padding=1)

    def output_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Latent (F, H, W) after this upsampler, e.g. ×1.5 on 16×24 → 24×36."""
        if self.config.temporal_upsample:
            frames = 2 * frames - 1
        if not self.config.spatial_upsample:
            return frames, height, width
        if not self.config.rational:
            return frames, 2 * height, 2 * width
        num, den = RATIONAL_SCALES[float(self.config.spatial_scale)]
        pad = BLUR_TAPS // 2

        def blur(n: int) -> int:
            return n * num if den == 1 else (n * num + 2 * pad - BLUR_TAPS) // den + 1

        return frames, blur(height), blur(width)

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Deterministic random weights (fan-in uniform); norms to identity; blur kernel reset."""
        init_fan_in_uniform(self, generator)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, BlurDownsample):
                    m.kernel.copy_(BlurDownsample.binomial_kernel())

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        b = latent.shape[0]
        dims2 = self.config.dims == 2
        # 1 stem (per frame for a 2-D model): (B, C, F, H, W) → (B, mid, F, H, W)
        x = _frames_to_batch(latent) if dims2 else latent
        x = F.silu(self.initial_norm(self.initial_conv(x)))
        for block in self.res_blocks:
            x = block(x)
        # 2 upsample
        if self.config.temporal_upsample:
            x = self.upsampler(x)[:, :, 1:]  # the first latent frame stands for one pixel frame
        elif dims2:
            x = self.upsampler(x)
        else:
            x = _batch_to_frames(self.upsampler(_frames_to_batch(x)), b)
        # 3 refine and project back to the latent width
        for block in self.post_upsample_res_blocks:
            x = block(x)
        x = self.final_conv(x)
        return _batch_to_frames(x, b) if dims2 else x


class LatentStatistics(Protocol):
    """Anything holding the VAE's per-channel statistics (encoder, decoder, statistics module)."""

    def normalize(self, latent: torch.Tensor) -> torch.Tensor: ...

    def denormalize(self, latent: torch.Tensor) -> torch.Tensor: ...


def upsample_latent(
    latent: torch.Tensor, upsampler: LatentUpsampler, statistics: LatentStatistics
) -> torch.Tensor:
    """Normalised latent → un-normalise → upsample → re-normalise (the pipelines' wrapper)."""
    dtype = next(upsampler.parameters()).dtype
    raw = statistics.denormalize(latent)
    return statistics.normalize(upsampler(raw.to(dtype))).to(latent.dtype)


def build_upsampler(config: Mapping[str, Any]) -> LatentUpsampler:
    """Latent upsampler from an upsampler file's flat `config` metadata."""
    return LatentUpsampler(UpsamplerConfig.from_checkpoint_config(config))
