"""Frame tensor conventions and the resize-and-center-crop used for conditioning inputs.

Two layouts cross the media API:
- model frames: float `[F, 3, H, W]` (or one `[3, H, W]`) in [-1, 1], what the VAE eats and emits;
- pixel frames: uint8 `[F, H, W, 3]` (or one `[H, W, 3]`), what codecs and Pillow exchange.

Resizing follows the reference conditioning path: scale so the target is covered
(`max(H/h, W/w)`), round the scaled size up, bilinear with `align_corners=False` in float32,
then crop the centre at offset `(new - target) // 2`. Bilinear without antialiasing is kept by
default because it is what the official pipelines feed the model; `antialias=True` is there for
large downscales where aliasing would otherwise show.
"""

from __future__ import annotations

import math

import torch

from ltx2cli.errors import UsageError


def to_pixels(frames: torch.Tensor) -> torch.Tensor:
    """Model frames (float, [-1, 1], channels first) -> uint8 pixels, channels last.

    uint8 input is returned unchanged (it is taken to be pixels already). Values are clamped and
    rounded to the nearest level, so `to_pixels(to_model(x)) == x` exactly.
    """
    if frames.dtype == torch.uint8:
        _check_layout(frames, channels_last=True)
        return frames
    if not frames.is_floating_point():
        raise UsageError(f"frames have dtype {frames.dtype}", "pass float in [-1, 1] or uint8")
    _check_layout(frames, channels_last=False)
    # Quantize on the frames' device (in float32: bf16 cannot hold 0..255 exactly), move bytes.
    pixels = ((frames.detach().float() + 1.0) * 127.5).clamp_(0, 255).round_().to(torch.uint8)
    return pixels.movedim(-3, -1).contiguous().cpu()


def to_model(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels, channels last -> float32 model frames in [-1, 1], channels first."""
    _check_layout(pixels, channels_last=True)
    return pixels.movedim(-1, -3).contiguous().float().div_(127.5).sub_(1.0)


def _check_layout(frames: torch.Tensor, *, channels_last: bool) -> None:
    axis = -1 if channels_last else -3
    if frames.ndim not in (3, 4) or frames.shape[axis] != 3:
        want = "[F, H, W, 3] uint8" if channels_last else "[F, 3, H, W] float"
        raise UsageError(f"frames have shape {tuple(frames.shape)}", f"expected {want} (RGB)")


def cover_size(src: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """The (h, w) that `src` is scaled to so it covers `target`, aspect ratio kept."""
    (h, w), (th, tw) = src, target
    scale = max(th / h, tw / w)
    # The 1e-9 keeps an exact fit (e.g. 480 * 512/480) from rounding up to one extra pixel.
    new_h = max(th, math.ceil(h * scale - 1e-9))
    new_w = max(tw, math.ceil(w * scale - 1e-9))
    return new_h, new_w


def resize_and_center_crop(
    frames: torch.Tensor, height: int, width: int, *, antialias: bool = False
) -> torch.Tensor:
    """Scale float frames `[..., 3, h, w]` to cover (height, width), then crop the centre."""
    if height <= 0 or width <= 0:
        raise UsageError(f"target size {height}x{width} is not positive", "pass positive sizes")
    single = frames.ndim == 3
    x = frames.unsqueeze(0) if single else frames
    src = (x.shape[-2], x.shape[-1])
    if src != (height, width):
        new_h, new_w = cover_size(src, (height, width))
        if (new_h, new_w) != src:
            x = torch.nn.functional.interpolate(
                x.float(),
                size=(new_h, new_w),
                mode="bilinear",
                align_corners=False,
                antialias=antialias,
            )
        top, left = (new_h - height) // 2, (new_w - width) // 2
        x = x[..., top : top + height, left : left + width]
    return x[0] if single else x
