"""Latent shapes, size helpers, patchifiers and RoPE position grids.

- Video latents are `[B, 128, F', H', W']` with VAE compression 8 (time) × 32 × 32; pixel frame
  counts are 8k+1 and F' = (F−1)/8 + 1. Audio latents are `[B, 8, T, 16]` at 25 latents per
  second (16 kHz, hop 160, 4× latent downsampling).
- Patchifying uses patch size 1 (the only size any released pipeline uses): video tokens are
  frame-major, then row, then column; an audio token is one latent frame, channel-major.
- Positions are per-token `[start, end)` bounds, `[B, axes, N, 2]`: video axes are
  (time in seconds, y in pixels, x in pixels) with the causal first-frame fix; audio has one
  axis in seconds. They are float32 (current reference; 1.0.0 rounded video positions to bf16).
- The transformer's RoPE uses the midpoint of each bound, so these grids fix what it sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ltx2cli.errors import UsageError
from ltx2cli.geometry import check_frame_count, check_size, snap_frames
from ltx2cli.models import audio_vae

VIDEO_LATENT_CHANNELS = 128
AUDIO_LATENT_CHANNELS = 8
AUDIO_LATENT_MEL_BINS = 16

AUDIO_SAMPLE_RATE = 16000
AUDIO_HOP_LENGTH = 160
AUDIO_LATENT_DOWNSAMPLE = 4


@dataclass(frozen=True)
class ScaleFactors:
    """Pixels per latent along each video axis (the video VAE's compression)."""

    time: int = 8
    height: int = 32
    width: int = 32


VIDEO_SCALE_FACTORS = ScaleFactors()


@dataclass(frozen=True)
class VideoLatentShape:
    """Dense video latent shape `[batch, channels, frames, height, width]` in latent units."""

    batch: int
    channels: int
    frames: int
    height: int
    width: int

    @classmethod
    def of(cls, latent: torch.Tensor) -> VideoLatentShape:
        if latent.dim() != 5:
            raise ValueError(f"expected a [B, C, F, H, W] video latent, got {tuple(latent.shape)}")
        return cls(*latent.shape)

    @property
    def size(self) -> tuple[int, int, int, int, int]:
        return (self.batch, self.channels, self.frames, self.height, self.width)

    @property
    def tokens_per_frame(self) -> int:
        return self.height * self.width

    @property
    def token_count(self) -> int:
        return self.frames * self.height * self.width

    def pixel_size(self, scale: ScaleFactors = VIDEO_SCALE_FACTORS) -> tuple[int, int, int]:
        """(frames, height, width) of the pixel video this latent decodes to."""
        return (
            (self.frames - 1) * scale.time + 1,
            self.height * scale.height,
            self.width * scale.width,
        )


@dataclass(frozen=True)
class AudioLatentShape:
    """Dense audio latent shape `[batch, channels, frames, mel_bins]`."""

    batch: int
    channels: int
    frames: int
    mel_bins: int

    @classmethod
    def of(cls, latent: torch.Tensor) -> AudioLatentShape:
        if latent.dim() != 4:
            raise ValueError(f"expected a [B, C, T, F] audio latent, got {tuple(latent.shape)}")
        return cls(*latent.shape)

    @property
    def size(self) -> tuple[int, int, int, int]:
        return (self.batch, self.channels, self.frames, self.mel_bins)

    @property
    def token_count(self) -> int:
        return self.frames


# ---------------------------------------------------------------------------------------------
# Size helpers


def check_video_size(num_frames: int, height: int, width: int, multiple: int = 32) -> None:
    """Raise a `UsageError` unless frames are 8k+1 and height/width are multiples of `multiple`.

    Two-stage pipelines pass `multiple=64` (stage 1 runs at half size).
    """
    check_frame_count("num_frames", num_frames)
    check_size("height", height, multiple)
    check_size("width", width, multiple)


def frames_for_duration(duration_s: float, fps: float) -> int:
    """A valid frame count for a duration: round(duration · fps) snapped down to 8k+1."""
    if fps <= 0:
        raise UsageError(f"fps {fps} must be positive", "use e.g. 24 or 25")
    if duration_s <= 0:
        raise UsageError(f"duration {duration_s} s must be positive", "use e.g. 5")
    return snap_frames(round(duration_s * fps))


def video_latent_shape(
    num_frames: int,
    height: int,
    width: int,
    batch: int = 1,
    channels: int = VIDEO_LATENT_CHANNELS,
    multiple: int = 32,
) -> VideoLatentShape:
    """Latent shape for a pixel video of `num_frames` × `height` × `width` (validated)."""
    check_video_size(num_frames, height, width, multiple)
    scale = VIDEO_SCALE_FACTORS
    return VideoLatentShape(
        batch=batch,
        channels=channels,
        frames=(num_frames - 1) // scale.time + 1,
        height=height // scale.height,
        width=width // scale.width,
    )


def audio_latent_frames(duration_s: float) -> int:
    """Audio latent length for a duration (25 per second, rounded as the audio VAE does)."""
    if duration_s < 0:
        raise UsageError(f"audio duration {duration_s} s is negative", "use a positive duration")
    return audio_vae.audio_latent_frames(
        duration_s, AUDIO_SAMPLE_RATE, AUDIO_HOP_LENGTH, AUDIO_LATENT_DOWNSAMPLE
    )


def audio_latent_frames_for_video(num_frames: int, fps: float) -> int:
    """Audio latent length matching a video: 121 frames at 24 fps (5.0417 s) give 126."""
    if fps <= 0:
        raise UsageError(f"fps {fps} must be positive", "use e.g. 24 or 25")
    return audio_latent_frames(num_frames / fps)


def audio_latent_shape(frames: int, batch: int = 1) -> AudioLatentShape:
    return AudioLatentShape(batch, AUDIO_LATENT_CHANNELS, frames, AUDIO_LATENT_MEL_BINS)


# ---------------------------------------------------------------------------------------------
# Patchifiers


def patchify_video(latent: torch.Tensor) -> torch.Tensor:
    """`[B, C, F, H, W]` → `[B, F·H·W, C]`; token index ((f·H) + h)·W + w."""
    b, c = latent.shape[:2]
    return latent.reshape(b, c, -1).transpose(1, 2)


def unpatchify_video(tokens: torch.Tensor, shape: VideoLatentShape) -> torch.Tensor:
    """Inverse of `patchify_video` for the first `shape.token_count` tokens' layout."""
    b, n, c = tokens.shape
    if n != shape.token_count:
        raise ValueError(f"{n} tokens do not fill a {shape.size} latent")
    return tokens.transpose(1, 2).reshape(b, c, shape.frames, shape.height, shape.width)


def patchify_audio(latent: torch.Tensor) -> torch.Tensor:
    """`[B, C, T, F]` → `[B, T, C·F]`, feature index c·F + f."""
    b, c, t, f = latent.shape
    return latent.permute(0, 2, 1, 3).reshape(b, t, c * f)


def unpatchify_audio(tokens: torch.Tensor, shape: AudioLatentShape) -> torch.Tensor:
    b, t, _ = tokens.shape
    if t != shape.frames:
        raise ValueError(f"{t} tokens do not fill a {shape.size} latent")
    return tokens.reshape(b, t, shape.channels, shape.mel_bins).permute(0, 2, 1, 3)


def patchify_mask(mask: torch.Tensor) -> torch.Tensor:
    """A per-position video mask `[B, F, H, W]` → per-token `[B, F·H·W, 1]`."""
    return mask.reshape(mask.shape[0], -1, 1)


# ---------------------------------------------------------------------------------------------
# Positions


def video_pixel_bounds(
    shape: VideoLatentShape,
    causal_fix: bool = True,
    scale: ScaleFactors = VIDEO_SCALE_FACTORS,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Per-token pixel-space bounds `[B, 3, N, 2]` (time in pixel frames, y and x in pixels).

    Latent cell (f, h, w) covers [f, f+1) × [h, h+1) × [w, w+1), scaled by (8, 32, 32). The
    causal fix shifts time by 1−8 and clamps at 0: latent frame 0 is pixel frame [0, 1) and
    frame f ≥ 1 is [8f−7, 8f+1), because the causal VAE encodes the first frame alone.
    """
    sizes = (shape.frames, shape.height, shape.width)
    factors = (scale.time, scale.height, scale.width)
    cells = torch.meshgrid(
        *(torch.arange(n, device=device, dtype=torch.float32) for n in sizes), indexing="ij"
    )
    bounds = [
        torch.stack([cell.reshape(-1) * k, (cell.reshape(-1) + 1) * k], dim=-1)
        for cell, k in zip(cells, factors, strict=True)
    ]
    grid = torch.stack(bounds, dim=0)  # (3, N, 2)
    if causal_fix:
        grid[0] = (grid[0] + 1 - scale.time).clamp(min=0)
    return grid.unsqueeze(0).expand(shape.batch, -1, -1, -1).clone()


def video_positions(
    shape: VideoLatentShape,
    fps: float,
    causal_fix: bool = True,
    scale: ScaleFactors = VIDEO_SCALE_FACTORS,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """RoPE positions `[B, 3, N, 2]` float32: `video_pixel_bounds` with time divided by fps.

    121 frames at 512×768 and 24 fps: latent frame 1 covers [1/24, 9/24) s, row h covers
    [32h, 32h+32) px.
    """
    if fps <= 0:
        raise UsageError(f"frame rate {fps} must be positive", "use e.g. 24 or 25")
    positions = video_pixel_bounds(shape, causal_fix, scale, device)
    positions[:, 0] = positions[:, 0] / fps
    return positions


def audio_positions(
    shape: AudioLatentShape,
    shift: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """RoPE positions `[B, 1, T, 2]` float32 in seconds.

    Latent t covers mel frames [max(0, 4t−3), 4t+1) (causal offset), i.e.
    [max(0, 4t−3)·0.01, (4t+1)·0.01) s; `shift` offsets t (windows into a longer sequence).
    """

    def seconds(first: int) -> torch.Tensor:
        latent = torch.arange(first, first + shape.frames, device=device, dtype=torch.float32)
        mel = (latent * AUDIO_LATENT_DOWNSAMPLE + 1 - AUDIO_LATENT_DOWNSAMPLE).clamp(min=0)
        return mel * AUDIO_HOP_LENGTH / AUDIO_SAMPLE_RATE

    bounds = torch.stack([seconds(shift), seconds(shift + 1)], dim=-1)  # (T, 2)
    return bounds.expand(shape.batch, 1, -1, -1).clone()
