"""The pixel grid the VAE imposes on a video, checked once for every layer. Torch-free.

The video VAE compresses time by 8 (keeping the first frame on its own) and space by 32, so a
frame count must be 8k+1 and a side a multiple of 32; pipelines whose first stage runs at half
size need multiples of 64. Errors name the parameter (`num_frames`, `height`, ...); the CLI
names the flag.
"""

from __future__ import annotations

from ltx2cli.errors import ParameterError

FRAME_STEP = 8  # pixel frames per latent frame after the first
SPATIAL_STEP = 32  # pixels per latent cell side


def check_frame_count(key: str, num_frames: int) -> None:
    """Raise a ParameterError naming `key` unless `num_frames` is 8k+1."""
    if num_frames >= 1 and (num_frames - 1) % FRAME_STEP == 0:
        return
    lower = snap_frames(num_frames)
    raise ParameterError(
        key, f"{key}: {num_frames} is not 8k+1", f"use {lower} or {lower + FRAME_STEP}"
    )


def check_size(key: str, value: int, multiple: int = SPATIAL_STEP, why: str = "") -> None:
    """Raise a ParameterError naming `key` unless `value` is a positive multiple of `multiple`;
    `why` (e.g. "for the two-stage pipeline") is appended to the message."""
    if value >= multiple and value % multiple == 0:
        return
    lower = max(multiple, value // multiple * multiple)
    raise ParameterError(
        key,
        f"{key}: {value} is not a positive multiple of {multiple}" + (f" {why}" if why else ""),
        f"use {lower} or {lower + multiple}",
    )


def snap_frames(num_frames: int) -> int:
    """The largest valid frame count (8k+1) not above `num_frames` (at least 1)."""
    return max(0, num_frames - 1) // FRAME_STEP * FRAME_STEP + 1
