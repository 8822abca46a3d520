"""Tile geometry of the LTX-2.5 diffusion VAE decoder (ltx-2.5.md §3.3 "Tiling").

Stages 1-3 run once on the whole latent; stages 4-5 run per tile. Tiles are laid out on the
stage-4 input grid (1/2 pixel frames, 1/8 pixel rows and columns for the released file), each
axis cut with overlapping fixed-size intervals; an interval is carried to pixels through the
last upsample (time: the doubled frame of the causal first frame is dropped, so a non-origin
interval starts one pixel frame early) and the patch size, and blended there with a symmetric
trapezoid ramp over its overlap. The overlaps must cover the receptive field of stages 4-5
(`recommended_overlaps`); tile sizes and overlaps are given in pixels / frames.

Pure geometry: no module weights are touched here.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import torch

from ltx2cli.errors import UsageError

Triple = tuple[int, int, int]
AXES = ("frames", "height", "width")


@dataclass(frozen=True)
class Interval:
    """`[start, end)` on one axis with the lengths of its blend ramps."""

    start: int
    end: int
    left_ramp: int = 0
    right_ramp: int = 0


@dataclass(frozen=True)
class AxisTiling:
    """Tile size and overlap along one axis in pixels / frames; size 0 leaves it whole."""

    size: int = 0
    overlap: int = 0

    @property
    def tiled(self) -> bool:
        return self.size > 0


@dataclass(frozen=True)
class DiffusionTiling:
    """Decode tiling of the diffusion decoder (pixels for height/width, frames for time)."""

    frames: AxisTiling = AxisTiling()
    height: AxisTiling = AxisTiling()
    width: AxisTiling = AxisTiling()

    def axes(self) -> tuple[AxisTiling, AxisTiling, AxisTiling]:
        return (self.frames, self.height, self.width)


@dataclass(frozen=True)
class Tile:
    """One stage-4/5 tile: `source` slices of the stage-4 grid (T, H, W), `target` slices of
    the decoded pixels (F, H, W) and the per-axis blend masks over `target`."""

    source: tuple[slice, slice, slice]
    target: tuple[slice, slice, slice]
    masks: tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def split_by_size(
    length: int, size: int, overlap: int, min_size: int | None = None
) -> list[Interval]:
    """Cut `[0, length)` into tiles of `size` sharing `overlap` cells; the last tile may be
    shorter, grown leftwards to `min_size` (the previous tile's right ramp widens with it)."""
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError(f"tile size {size} / overlap {overlap}: need 0 <= overlap < size")
    if length <= size or (min_size is not None and length < min_size):
        return [Interval(0, length)]
    step = size - overlap
    count = (length + size - 2 * overlap - 1) // step
    intervals = [Interval(0, size, 0, overlap)]
    intervals += [
        Interval(i * step, i * step + size, overlap, overlap) for i in range(1, count - 1)
    ]
    intervals.append(Interval((count - 1) * step, length, overlap, 0))
    last = intervals[-1]
    if min_size is not None and last.end - last.start < min_size:
        start = last.end - min_size
        grown = intervals[-2].end - start
        if grown > intervals[-2].end - intervals[-2].start:
            raise ValueError(f"cannot grow the last tile of {length} cells to {min_size}")
        intervals[-2:] = [
            replace(intervals[-2], right_ramp=grown),
            replace(last, start=start, left_ramp=grown),
        ]
    return intervals


def trapezoid_mask(length: int, left: int, right: int) -> torch.Tensor:
    """Ones with linear ramps that exclude 0 and 1: left `k/(left+1)`, right mirrored (float32)."""
    mask = torch.ones(length)
    left, right = max(0, min(left, length)), max(0, min(right, length))
    if left:
        mask[:left] *= torch.linspace(0.0, 1.0, left + 2)[1:-1]
    if right:
        mask[-right:] *= torch.linspace(1.0, 0.0, right + 2)[1:-1]
    return mask.clamp_(0, 1)


def _through_upsample(interval: Interval, stride: int, causal: bool) -> Interval:
    """Carry an interval through one ×stride hop; a causal ×2 hop drops the doubled first
    frame (end − 1, and start − 1 for an interval not at the origin)."""
    start, end = interval.start * stride, interval.end * stride
    if causal and stride == 2:
        end -= 1
        if interval.start != 0:
            start -= 1
    return Interval(start, end, interval.left_ramp * stride, interval.right_ramp * stride)


def recommended_overlaps(halos: tuple[Triple, Triple], pixel_scale: Triple) -> tuple[int, int]:
    """Smallest `(frame overlap, pixel overlap)` that covers the stage-4/5 halos; frames
    rounded up to 8, pixels to 32 (one value for both spatial axes)."""
    dominant = [max(h[a] for h in halos) for a in range(3)]
    frames = -(-dominant[0] * pixel_scale[0] // 8) * 8
    pixels = -(-max(dominant[1], dominant[2]) * pixel_scale[1] // 32) * 32
    return frames, pixels


def tile_schedule(
    stage4_shape: Triple,
    tiling: DiffusionTiling | None,
    *,
    upsample_stride: Triple,
    patch_size: int,
    min_tile: Triple,
    halos: tuple[Triple, Triple],
) -> list[Tile]:
    """Tiles over the stage-4 grid `stage4_shape` (T, H, W), time varying slowest."""
    full = (slice(None), slice(None), slice(None))
    ones = torch.ones(1)
    if tiling is None:
        return [Tile(full, full, (ones, ones, ones))]
    pixel_scale = (
        upsample_stride[0],
        upsample_stride[1] * patch_size,
        upsample_stride[2] * patch_size,
    )
    need_frames, need_pixels = recommended_overlaps(halos, pixel_scale)
    specs = []
    for axis, (name, cfg) in enumerate(zip(AXES, tiling.axes(), strict=True)):
        if not cfg.tiled:
            specs.append([(slice(None), slice(None), ones)])
            continue
        factor = pixel_scale[axis]
        need = need_frames if axis == 0 else need_pixels
        if cfg.overlap < need:
            raise UsageError(
                f"diffusion VAE {name} tile overlap {cfg.overlap} is below the required {need}",
                f"use a {name} overlap of at least {need}",
            )
        if cfg.size < 2 * factor or cfg.size % factor or cfg.overlap % factor:
            raise UsageError(
                f"diffusion VAE {name} tile {cfg.size} / overlap {cfg.overlap} must be "
                f"multiples of {factor} (tile at least {2 * factor})",
                f"round the {name} tile and overlap to multiples of {factor}",
            )
        overlap = cfg.overlap // factor
        size = max(2, overlap + 1, cfg.size // factor)
        axis_specs = []
        for iv in split_by_size(stage4_shape[axis], size, overlap, min_tile[axis]):
            out = _through_upsample(iv, upsample_stride[axis], causal=axis == 0)
            if axis:
                out = _through_upsample(out, patch_size, causal=False)
            mask = trapezoid_mask(out.end - out.start, out.left_ramp, out.right_ramp)
            axis_specs.append((slice(iv.start, iv.end), slice(out.start, out.end), mask))
        specs.append(axis_specs)
    return [
        Tile((t[0], h[0], w[0]), (t[1], h[1], w[1]), (t[2], h[2], w[2]))
        for t, h, w in itertools.product(*specs)
    ]


def masks_sum_to_one(tiles: list[Tile], full: Triple, atol: float = 1e-5) -> bool:
    """Whether each axis's masks, over its distinct target slices, add up to exactly one."""
    for axis, length in enumerate(full):
        total = torch.zeros(length)
        seen = set()
        for tile in tiles:
            sl = tile.target[axis]
            if (sl.start, sl.stop) in seen:
                continue
            seen.add((sl.start, sl.stop))
            total[sl] += tile.masks[axis]
        if not torch.allclose(total, torch.ones(length), atol=atol, rtol=0.0):
            return False
    return True


def tile_halos(
    stage4_kernel: Triple,
    stage4_depth: int,
    stage5_kernel: Triple,
    stage5_depth: int,
    stride: Triple,
) -> tuple[Triple, Triple]:
    """One-sided receptive halos of stages 4 and 5 in stage-4 cells."""
    halo4 = tuple(stage4_depth * (stage4_kernel[a] // 2) for a in range(3))
    halo5 = tuple(-(-(stage5_depth * (stage5_kernel[a] // 2)) // stride[a]) for a in range(3))
    return halo4, halo5  # type: ignore[return-value]


def min_tile_size(stage4_kernel: Triple, stage5_kernel: Triple, stride: Triple) -> Triple:
    """Smallest stage-4 tile (T, H, W) whose stage-4 and stage-5 volumes fit their kernels."""
    return tuple(max(stage4_kernel[a], -(-stage5_kernel[a] // stride[a])) for a in range(3))  # type: ignore[return-value]


def stage4_shape(strides: list[Triple], frames: int, height: int, width: int) -> Triple:
    """Stage-4 input (T, H, W) of a latent after the first three upsamples (origin drop)."""
    t, h, w = frames, height, width
    for st, sh, sw in strides[:3]:
        t, h, w = t * st - (1 if st == 2 else 0), h * sh, w * sw
    return (t, h, w)


def stage5_shape(
    content: Triple, stride: Triple, patch_size: int, kernel_t: int, origin: bool, trailing: bool
) -> Triple:
    """Pixel (F, H, W) of the stage-5 volume of a stage-4 tile with `content` cells."""
    frames = content[0] * stride[0] - (1 if origin and stride[0] == 2 else 0)
    if trailing:
        frames = max(frames, kernel_t)
    return (frames, content[1] * stride[1] * patch_size, content[2] * stride[2] * patch_size)


def weight_floor(dtype: torch.dtype) -> float:
    """Smallest divisor used when blend weights do not sum to one."""
    return max(1e-8, torch.finfo(dtype).tiny)


# Memory model of the reference's automatic choice for its eager chunked path (the one this
# decoder follows): stage-5 working set = tokens · channels · element size · 5, 1 GiB kept
# free, at least 1 GiB assumed for the weights; the pixel accumulator covers two tile depths.
STAGE5_MEMORY_COEFFICIENT = 5
SAFETY_BYTES = 1 << 30
MIN_MODEL_BYTES = 1 << 30
VIDEO_SCALE = (8, 32, 32)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _candidates(length: int, overlap: int, smallest: int, step: int) -> list[tuple[int, int]]:
    """`(tile size, tile count)` for every size on `step`'s grid from `smallest` up."""
    out = []
    for size in range(smallest, max(_round_up(length, step), smallest) + step, step):
        if size > overlap:
            out.append((size, len(split_by_size(length, size, overlap))))
    return out


def recommended_tiling(
    *,
    frames: int,
    height: int,
    width: int,
    free_bytes: int,
    halos: tuple[Triple, Triple],
    pixel_scale: Triple,
    min_tile: Triple,
    patch_size: int,
    stage4_channels: int,
    stage5_channels: int,
    upsample_strides: list[Triple],
    trailing_pad_frames: int,
    model_bytes: int = 0,
    element_size: int = 2,
    out_channels: int = 3,
) -> DiffusionTiling:
    """The tile sizes the reference picks for a video of `frames`×`height`×`width` pixels when
    `free_bytes` of device memory are free: among the sizes that fit, the least recomputed
    overlap volume, then the largest tile, then the fewest tiles. Both axes are always tiled."""
    overlap_t, overlap_hw = recommended_overlaps(halos, pixel_scale)
    ft, fh, fw = pixel_scale
    steps = [math.lcm(f, v) for f, v in zip(pixel_scale, VIDEO_SCALE, strict=True)]
    smallest_t = _round_up(
        max(2 * ft, 2 * overlap_t, _round_up(min_tile[0] * ft, ft), 16), steps[0]
    )
    smallest_h = _round_up(
        max(2 * fh, 2 * overlap_hw, _round_up(min_tile[1] * fh, fh), 64), steps[1]
    )
    smallest_w = _round_up(
        max(2 * fw, 2 * overlap_hw, _round_up(min_tile[2] * fw, fw), 64), steps[2]
    )
    latent = ((frames - 1) // VIDEO_SCALE[0] + 1, height // VIDEO_SCALE[1], width // VIDEO_SCALE[2])
    s4 = stage4_shape(upsample_strides, latent[0] + trailing_pad_frames, latent[1], latent[2])
    features = math.prod(s4) * stage4_channels * element_size
    usable = max(0, free_bytes - max(model_bytes, MIN_MODEL_BYTES) - SAFETY_BYTES - features)
    per_token = max(1.0, float(stage5_channels * element_size * STAGE5_MEMORY_COEFFICIENT))
    scored = []
    for tile_t, n_t in _candidates(frames, overlap_t, smallest_t, steps[0]):
        accumulator = 2 * tile_t * height * width * out_channels * element_size
        if accumulator >= usable:
            continue
        max_tokens = int((usable - accumulator) // per_token)
        for tile_h, n_h in _candidates(height, overlap_hw, smallest_h, steps[1]):
            for tile_w, n_w in _candidates(width, overlap_hw, smallest_w, steps[2]):
                tokens = tile_t * max(1, tile_h // patch_size) * max(1, tile_w // patch_size)
                if tokens > max_tokens:
                    continue
                processed = n_t * n_h * n_w * tile_t * tile_h * tile_w
                waste = processed / max(1, frames * height * width)
                volume = tile_t * tile_h * tile_w
                scored.append((waste, -volume, n_t * n_h * n_w, tile_t, tile_h, tile_w))
    if not scored:
        raise UsageError(
            f"no diffusion VAE decode tile of {frames}×{height}×{width} fits in "
            f"{free_bytes / 2**30:.1f} GiB of free memory",
            "lower the resolution or the frame count, or free device memory",
        )
    _, _, _, tile_t, tile_h, tile_w = min(scored)
    return DiffusionTiling(
        frames=AxisTiling(tile_t, overlap_t),
        height=AxisTiling(tile_h, overlap_hw),
        width=AxisTiling(tile_w, overlap_hw),
    )
