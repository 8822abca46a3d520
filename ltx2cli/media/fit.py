"""Fitting a real-world clip to the model's grid: 8k+1 frames and sides in multiples of 32.

`plan_fit` says what a clip needs (nothing, or a one-line error naming the nearest valid shape
and `--fit`); with a `--fit` mode it returns the target shape and a sentence saying what it did:

- `trim`: frames cut down to the nearest 8k+1 below, sides centre-cropped down to multiples;
- `pad`: frames padded up to the nearest 8k+1 above by repeating the last frame, sides cropped;
- `crop`: as `trim` (the name for when only the size is off);
- `resize`: frames trimmed, the picture scaled to the nearest multiples (aspect nearly kept).

Torch is imported only by `apply_fit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ltx2cli.errors import UsageError

if TYPE_CHECKING:
    import torch

FIT_MODES = ("trim", "pad", "crop", "resize")
FRAME_STEP = 8
SIZE_STEP = 32


def frames_below(n: int) -> int:
    """The largest 8k+1 ≤ n (at least 1)."""
    return max(1, (n - 1) // FRAME_STEP * FRAME_STEP + 1)


def frames_above(n: int) -> int:
    """The smallest 8k+1 ≥ n."""
    return -(-(n - 1) // FRAME_STEP) * FRAME_STEP + 1


def _down(side: int, multiple: int) -> int:
    return max(multiple, side // multiple * multiple)


def _nearest(side: int, multiple: int) -> int:
    return max(multiple, round(side / multiple) * multiple)


@dataclass(frozen=True)
class Fit:
    """Source and target shape of a clip and how to get from one to the other."""

    frames: int
    height: int
    width: int
    target_frames: int
    target_height: int
    target_width: int
    mode: str | None = None

    @property
    def changes(self) -> bool:
        return (self.frames, self.height, self.width) != (
            self.target_frames,
            self.target_height,
            self.target_width,
        )

    def describe(self) -> str:
        """What `--fit` did, for the user (empty when nothing changed)."""
        if not self.changes:
            return ""
        parts = []
        if self.frames != self.target_frames:
            verb = "padded" if self.target_frames > self.frames else "trimmed"
            parts.append(f"{verb} {self.frames} → {self.target_frames} frames")
        if (self.height, self.width) != (self.target_height, self.target_width):
            verb = "resized" if self.mode == "resize" else "cropped"
            parts.append(
                f"{verb} {self.width}x{self.height} → {self.target_width}x{self.target_height}"
            )
        return f"--fit {self.mode}: " + ", ".join(parts)


def plan_fit(
    what: str,
    frames: int,
    height: int,
    width: int,
    mode: str | None,
    *,
    size_multiple: int = SIZE_STEP,
) -> Fit:
    """The shape a clip of `frames` x `height` x `width` runs at; without `mode`, a clip that
    does not fit is a `UsageError` naming the nearest valid shape and `--fit`."""
    if mode is not None and mode not in FIT_MODES:
        raise UsageError(f"--fit {mode!r} is not a fit mode", f"use one of: {', '.join(FIT_MODES)}")
    fits = (frames - 1) % FRAME_STEP == 0 and height % size_multiple == 0
    fits = fits and width % size_multiple == 0
    if fits:
        return Fit(frames, height, width, frames, height, width, mode)
    if mode is None:
        below, above = frames_below(frames), frames_above(frames)
        h, w = _down(height, size_multiple), _down(width, size_multiple)
        shape = f"{frames} frames at {width}x{height}"
        near = f"{below} or {above} frames" if below != above else f"{below} frames"
        raise UsageError(
            f"{what}: {shape} does not fit the model (8k+1 frames, sides in multiples of "
            f"{size_multiple}); nearest: {near} at {w}x{h}",
            f"pass --fit {'|'.join(FIT_MODES)} to adjust it",
        )
    target_frames = frames_above(frames) if mode == "pad" else frames_below(frames)
    side = _nearest if mode == "resize" else _down
    target = Fit(
        frames,
        height,
        width,
        target_frames,
        side(height, size_multiple),
        side(width, size_multiple),
        mode,
    )
    return target


def apply_fit(frames: torch.Tensor, fit: Fit) -> torch.Tensor:
    """Frames `[F, 3, H, W]` (F = fit.frames) → the fit's target shape."""
    import torch
    import torch.nn.functional as F

    n, th, tw = fit.target_frames, fit.target_height, fit.target_width
    if frames.shape[0] >= n:
        frames = frames[:n]
    else:
        tail = frames[-1:].expand(n - frames.shape[0], -1, -1, -1)
        frames = torch.cat([frames, tail])
    h, w = frames.shape[-2:]
    if (h, w) == (th, tw):
        return frames
    if fit.mode == "resize":
        out = F.interpolate(frames.float(), size=(th, tw), mode="bilinear", align_corners=False)
        return out.clamp(-1, 1).to(frames.dtype)
    top, left = (h - th) // 2, (w - tw) // 2
    return frames[..., top : top + th, left : left + tw]
