"""Tile layouts for the video VAE and the one blend that encode and decode share.

A layout lists, per axis (time, height, width), which slice of the input each tile reads, where
its output lands, and the 1-D weight of each output element. Every tile is the product of one
entry per axis; outputs are multiplied by their separable masks, accumulated, and divided by the
accumulated weights unless the masks already sum to one.

Decode (latents → pixels) splits the latent grid: tiles start every `size − overlap` latents,
the last ends at the axis length, temporal tiles after the first start one latent earlier with a
ramp one longer (causality), and the pixel masks are trapezoids: spatial ramps and all right
ramps take values strictly inside (0, 1), the temporal fade-in starts at exactly 0 so the first
decoded frame of a later temporal tile is blended away.

Encode (pixels → latents) splits the pixels with the same rule (temporal tiles after the first
read one extra frame so every tile has 8k + 1 frames), overlaps raised to at least 64 px and
16 frames so that a tile's edge latents, which saw padding instead of neighbours, can be dropped.
The masks are rectangular, 0 or 1: after the first spatial tile the first `overlap_px/32 − 1`
latents get weight 0 and before the last spatial tile the last latent does; a later temporal
tile's first `1 + (overlap_frames − 1)//8` latents get weight 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ltx2cli.errors import UsageError

logger = logging.getLogger(__name__)

# Encode tiles must overlap enough to discard the edge latents of the padded/causal convs.
ENCODE_MIN_SPATIAL_OVERLAP = 64
ENCODE_MIN_TEMPORAL_OVERLAP = 16
MASK_SUM_ATOL = 1e-5


@dataclass(frozen=True)
class AxisTile:
    """One tile along one axis: the input it reads, the output it writes, the output's weights."""

    source: slice
    target: slice
    mask: torch.Tensor  # float32, one weight per element of `target`


@dataclass(frozen=True)
class TileLayout:
    """Tiles per axis (time, height, width) and the output's (frames, height, width)."""

    axes: tuple[tuple[AxisTile, ...], tuple[AxisTile, ...], tuple[AxisTile, ...]]
    shape: tuple[int, int, int]

    @property
    def complementary(self) -> bool:
        """True when the masks sum to one everywhere, so no division is needed."""
        for tiles, length in zip(self.axes, self.shape, strict=True):
            total = torch.zeros(length)
            for tile in tiles:
                total[tile.target] += tile.mask
            if not torch.allclose(total, torch.ones(length), atol=MASK_SUM_ATOL, rtol=0.0):
                return False
        return True


@dataclass(frozen=True)
class _Span:
    """[start, end) on one axis with blend ramps of `left` / `right` elements."""

    start: int
    end: int
    left: int = 0
    right: int = 0


def _split(length: int, size: int | None, overlap: int) -> list[_Span]:
    """Tiles of `size` starting every `size − overlap`; the last one ends at `length`.

    The count is `(length + size − 2·overlap − 1) // (size − overlap)`; inner ramps equal the
    overlap. One whole-axis span when there is no tiling or the axis fits one tile.
    """
    if size is None or length <= size:
        return [_Span(0, length)]
    step = size - overlap
    count = (length + size - 2 * overlap - 1) // step
    return [
        _Span(
            i * step,
            length if i == count - 1 else i * step + size,
            overlap if i > 0 else 0,
            overlap if i < count - 1 else 0,
        )
        for i in range(count)
    ]


def _axis_tiling(axis: str, tile: int | None, overlap: int, factor: int) -> tuple[int, int] | None:
    """Validate a tile size / overlap in pixels or frames (None = axis untiled)."""
    if not tile:
        return None
    unit = "frames" if axis == "temporal" else "px"
    if tile < 2 * factor or tile % factor:
        raise UsageError(
            f"{axis}_tile = {tile} {unit} is invalid",
            f"use a multiple of {factor} of at least {2 * factor} {unit}",
        )
    if overlap < 0 or overlap % factor or overlap >= tile:
        raise UsageError(
            f"{axis}_overlap = {overlap} {unit} is invalid",
            f"use a multiple of {factor} smaller than {axis}_tile ({tile} {unit})",
        )
    return tile, overlap


# ---------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------


def trapezoid_mask(span: _Span, left_from_zero: bool) -> torch.Tensor:
    """Linear fade-in over `left`, fade-out over `right`, strictly inside (0, 1), except a
    fade-in `left_from_zero`, which starts at exactly 0."""
    length = span.end - span.start
    left, right = min(span.left, length), min(span.right, length)
    mask = torch.ones(length)
    if left:
        fade = torch.linspace(0.0, 1.0, left + 1 if left_from_zero else left + 2)[:-1]
        mask[:left] *= fade if left_from_zero else fade[1:]
    if right:
        mask[-right:] *= torch.linspace(1.0, 0.0, right + 2)[1:-1]
    return mask.clamp_(0, 1)


def rectangular_mask(length: int, left: int, right: int) -> torch.Tensor:
    """Ones with the first `left` and the last `right` elements zeroed."""
    mask = torch.ones(length)
    mask[: min(left, length)] = 0
    if right:
        mask[-right:] = 0
    return mask


# ---------------------------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------------------------


def decode_tile_layout(
    latent_shape: tuple[int, int, int],
    scale: tuple[int, int, int],
    *,
    spatial_tile: int | None,
    spatial_overlap: int,
    temporal_tile: int | None,
    temporal_overlap: int,
    aspect_coupled: bool = True,
) -> TileLayout:
    """Decode tiles of a latent (F', H', W') into pixels (t(F'−1)+1, hH', wW').

    Sizes are in pixels / frames (None leaves that axis whole). With `aspect_coupled` the
    spatial tile applies to the long side and the short side gets
    `max(2, overlap + 1, round(tile · side / long_side))` latents.
    """
    t_scale, h_scale, w_scale = scale
    frames, height, width = latent_shape
    spatial = _axis_tiling("spatial", spatial_tile, spatial_overlap, h_scale)
    temporal = _axis_tiling("temporal", temporal_tile, temporal_overlap, t_scale)

    def latent_size(
        tiling: tuple[int, int] | None, factor: int, side: int | None = None
    ) -> tuple[int | None, int]:
        if tiling is None:
            return None, 0
        size, lap = tiling[0] // factor, tiling[1] // factor
        if aspect_coupled and side is not None:
            size = round(size * side / max(height, width))
        return max(2, lap + 1, size), lap

    t_spans = _split(frames, *latent_size(temporal, t_scale))
    # Causal time: tiles after the first start one latent earlier with a ramp one longer, so
    # the latent that only saw a tile's first frame is blended away.
    t_spans[1:] = [_Span(s.start - 1, s.end, s.left + 1, s.right) for s in t_spans[1:]]
    h_spans = _split(height, *latent_size(spatial, h_scale, height))
    w_spans = _split(width, *latent_size(spatial, w_scale, width))

    def spatial_tiles(spans: list[_Span], f: int) -> tuple[AxisTile, ...]:
        return tuple(
            AxisTile(
                slice(s.start, s.end),
                slice(s.start * f, s.end * f),
                trapezoid_mask(_Span(s.start * f, s.end * f, s.left * f, s.right * f), False),
            )
            for s in spans
        )

    def temporal_tile(s: _Span) -> AxisTile:
        # F latents decode to t(F − 1) + 1 frames; the causal left ramp maps the same way.
        pix = _Span(
            s.start * t_scale,
            1 + (s.end - 1) * t_scale,
            0 if s.left == 0 else 1 + (s.left - 1) * t_scale,
            s.right * t_scale,
        )
        return AxisTile(slice(s.start, s.end), slice(pix.start, pix.end), trapezoid_mask(pix, True))

    return TileLayout(
        axes=(
            tuple(temporal_tile(s) for s in t_spans),
            spatial_tiles(h_spans, h_scale),
            spatial_tiles(w_spans, w_scale),
        ),
        shape=(1 + (frames - 1) * t_scale, height * h_scale, width * w_scale),
    )


def encode_tile_layout(
    pixel_shape: tuple[int, int, int],
    scale: tuple[int, int, int],
    *,
    spatial_tile: int | None,
    spatial_overlap: int,
    temporal_tile: int | None,
    temporal_overlap: int,
) -> TileLayout:
    """Encode tiles of a video (F = tk + 1, H, W) into latents (k + 1, H/h, W/w).

    Sizes are in pixels / frames (None leaves that axis whole); overlaps below 64 px / 16 frames
    are raised to those minimums (with a warning), as the reference does.
    """
    t_scale, h_scale, w_scale = scale
    frames, height, width = pixel_shape
    spatial_overlap = _raised("spatial", spatial_tile, spatial_overlap, ENCODE_MIN_SPATIAL_OVERLAP)
    temporal_overlap = _raised(
        "temporal", temporal_tile, temporal_overlap, ENCODE_MIN_TEMPORAL_OVERLAP
    )
    spatial = _axis_tiling("spatial", spatial_tile, spatial_overlap, h_scale)
    temporal = _axis_tiling("temporal", temporal_tile, temporal_overlap, t_scale)

    def spatial_tiles(length: int, f: int) -> tuple[AxisTile, ...]:
        return tuple(
            AxisTile(
                slice(s.start, s.end),
                slice(s.start // f, s.end // f),
                rectangular_mask(
                    (s.end - s.start) // f, max(0, s.left // f - 1), 1 if s.right else 0
                ),
            )
            for s in _split(length, *(spatial or (None, 0)))
        )

    t_spans = _split(frames, *(temporal or (None, 0)))
    # Every tile but the last reads one more frame, so each has t·k + 1 frames.
    t_spans[:-1] = [_Span(s.start, s.end + 1, s.left, 0) for s in t_spans[:-1]]
    t_tiles = []
    for s in t_spans:
        start, stop = s.start // t_scale, (s.end - 1) // t_scale + 1
        left = 0 if s.left == 0 else 1 + (s.left - 1) // t_scale
        t_tiles.append(
            AxisTile(
                slice(s.start, s.end), slice(start, stop), rectangular_mask(stop - start, left, 0)
            )
        )
    return TileLayout(
        axes=(tuple(t_tiles), spatial_tiles(height, h_scale), spatial_tiles(width, w_scale)),
        shape=((frames - 1) // t_scale + 1, height // h_scale, width // w_scale),
    )


def _raised(axis: str, tile: int | None, overlap: int, minimum: int) -> int:
    if not tile or overlap >= minimum:
        return overlap
    unit = "frames" if axis == "temporal" else "px"
    if tile <= minimum:
        raise UsageError(
            f"{axis}_tile = {tile} {unit} is too small for tiled encoding",
            f"use more than {minimum} {unit}: encode tiles overlap by at least {minimum} {unit}",
        )
    logger.warning(
        "%s overlap %d %s is below the encode minimum; using %d", axis, overlap, unit, minimum
    )
    return minimum


# ---------------------------------------------------------------------------------------------
# Blending
# ---------------------------------------------------------------------------------------------


def _apply_masks(x: torch.Tensor, masks: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Scale (B, C, T, H, W) by separable float32 masks over its last three axes."""
    t, h, w = (m.to(x.device) for m in masks)
    return x * t.view(-1, 1, 1) * h.view(-1, 1) * w


def blend_tiles(
    layout: TileLayout,
    run: Callable[[tuple[slice, ...]], torch.Tensor],
    *,
    batch: int,
    channels: int,
    device: torch.device,
    dtype: torch.dtype,
) -> Iterator[torch.Tensor]:
    """Run every tile (`run(input region)` → output) and yield the blended output in time order.

    Tiles are visited by temporal group; a group's frames are yielded as soon as no later
    group reaches them. Weights accumulate in `dtype`, as in the reference (bf16 rounding
    included), and only when the masks do not already sum to one.
    """
    _, out_h, out_w = layout.shape
    weighted = not layout.complementary
    prev: torch.Tensor | None = None
    prev_weights: torch.Tensor | None = None
    prev_target: slice | None = None
    for t in layout.axes[0]:
        length = t.target.stop - t.target.start
        buffer = torch.zeros(batch, channels, length, out_h, out_w, device=device, dtype=dtype)
        weights = (
            torch.zeros(1, 1, length, out_h, out_w, device=device, dtype=dtype)
            if weighted
            else None
        )
        for h in layout.axes[1]:
            for w in layout.axes[2]:
                tile = run((slice(None), slice(None), t.source, h.source, w.source))
                masks = (t.mask, h.mask, w.mask)
                where = (slice(None), slice(None), slice(0, length), h.target, w.target)
                buffer[where] += _apply_masks(tile, masks)
                if weights is not None:
                    weights[where] += _apply_masks(torch.ones(1, 1, *tile.shape[2:]), masks)
        if prev is not None:
            # Blend the frames this group shares with the previous one (which already holds
            # every earlier group's share of them), then release the frames no later group
            # reaches.
            shared = prev_target.stop - t.target.start
            offset = t.target.start - prev_target.start
            if shared > 0:
                prev[:, :, offset:] += buffer[:, :, :shared]
                buffer[:, :, :shared] = prev[:, :, offset:]
                if weights is not None:
                    prev_weights[:, :, offset:] += weights[:, :, :shared]
                    weights[:, :, :shared] = prev_weights[:, :, offset:]
            yield _divide(prev, prev_weights)[:, :, :offset]
        prev, prev_weights, prev_target = buffer, weights, t.target
    if prev is not None:
        yield _divide(prev, prev_weights)


def _divide(x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    return x if weights is None else x / weights.clamp(min=1e-8)
