"""Encode and decode tile layouts against the reference rules, and tiled encode numerics.

Encode rule (reference): split each pixel axis of length L with tile s and overlap o (raised to
at least 64 px / 16 frames) into `n = (L + s − 2o − 1) // (s − o)` tiles starting at
`i·(s − o)`, the last one ending at L; temporal tiles other than the last read one more frame.
Latent masks are 0/1: after the first spatial tile the first `o/32 − 1` latents are 0, before
the last one the last latent is 0; a later temporal tile zeroes its first `1 + (o − 1)//8`.
"""

from __future__ import annotations

import pytest
import torch
from test_video_vae import random_video, tiny_encoder

from ltx2cli.models.tiling import decode_tile_layout, encode_tile_layout

torch.set_num_threads(min(2, torch.get_num_threads()))

SCALE = (8, 32, 32)


def expected_encode_axis(length, tile, overlap, factor, temporal):
    """(source, target, mask) per tile, written out from the rule in the module docstring."""
    if length <= tile:
        out = (length - 1) // factor + 1 if temporal else length // factor
        return [((0, length), (0, out), [1.0] * out)]
    step = tile - overlap
    n = (length + tile - 2 * overlap - 1) // step
    tiles = []
    for i in range(n):
        start = i * step
        end = length if i == n - 1 else start + tile + (1 if temporal else 0)
        if temporal:
            lo, hi = start // factor, (end - 1) // factor + 1
            zero_left = 0 if i == 0 else 1 + (overlap - 1) // factor
            zero_right = 0
        else:
            lo, hi = start // factor, end // factor
            zero_left = 0 if i == 0 else overlap // factor - 1
            zero_right = 0 if i == n - 1 else 1
        mask = [
            0.0 if j < zero_left or j >= (hi - lo) - zero_right else 1.0 for j in range(hi - lo)
        ]
        tiles.append(((start, end), (lo, hi), mask))
    return tiles


def as_tuples(axis):
    return [
        ((t.source.start, t.source.stop), (t.target.start, t.target.stop), t.mask.tolist())
        for t in axis
    ]


@pytest.mark.parametrize(
    ("shape", "tiles"),
    [
        ((25, 64, 64), {"spatial_tile": None, "temporal_tile": 24, "temporal_overlap": 16}),
        ((121, 512, 768), {"spatial_tile": 512, "spatial_overlap": 64, "temporal_tile": 64}),
        ((41, 1280, 96), {"spatial_tile": 768, "spatial_overlap": 256, "temporal_tile": 24}),
        ((97, 192, 160), {"spatial_tile": 96, "spatial_overlap": 64, "temporal_tile": 32}),
    ],
)
def test_encode_layout_follows_the_reference_rule(shape, tiles):
    tiles = {"spatial_overlap": 0, "temporal_overlap": 0, **tiles}
    layout = encode_tile_layout(shape, SCALE, **tiles)
    frames, height, width = shape
    t_overlap = max(tiles["temporal_overlap"], 16)
    s_overlap = max(tiles["spatial_overlap"], 64)
    t_tile = tiles["temporal_tile"] or frames
    s_tile = tiles["spatial_tile"] or max(height, width)
    assert as_tuples(layout.axes[0]) == expected_encode_axis(frames, t_tile, t_overlap, 8, True)
    assert as_tuples(layout.axes[1]) == expected_encode_axis(height, s_tile, s_overlap, 32, False)
    assert as_tuples(layout.axes[2]) == expected_encode_axis(width, s_tile, s_overlap, 32, False)
    assert layout.shape == ((frames - 1) // 8 + 1, height // 32, width // 32)


def test_second_temporal_encode_tile_of_a_25_frame_clip_starts_after_latent_0():
    layout = encode_tile_layout(
        (25, 32, 32), SCALE, spatial_tile=None, spatial_overlap=0, temporal_tile=24,
        temporal_overlap=16,
    )  # fmt: skip
    second = layout.axes[0][1]
    # Frames [8, 25) → latents [1, 4); its first 1 + 15//8 = 2 latents are dropped.
    assert (second.source.start, second.source.stop) == (8, 25)
    assert (second.target.start, second.target.stop) == (1, 4)
    assert second.mask.tolist() == [0.0, 0.0, 1.0]


@torch.no_grad()
def test_tiled_encode_of_a_25_frame_clip_averages_only_the_last_latent():
    encoder = tiny_encoder()
    video = random_video(frames=25, height=32, width=32)
    tiled = encoder.tiled_encode(video, spatial_tile=None, temporal_tile=24, temporal_overlap=16)
    full = encoder(video)  # the first tile reads frames [0, 25): the whole clip
    second = encoder(video[:, :, 8:])  # latents [1, 4)
    torch.testing.assert_close(tiled[:, :, :3], full[:, :, :3], rtol=0, atol=0)
    torch.testing.assert_close(
        tiled[:, :, 3], (full[:, :, 3] + second[:, :, 2]) / 2, rtol=1e-6, atol=1e-6
    )


@torch.no_grad()
def test_tiled_encode_cuts_two_spatial_tiles_at_their_shared_latent():
    """Tiles [0, 768) and [512, 1280) px = latents [0, 24) and [16, 40): the first drops its last
    latent (23), the second its first 256/32 − 1 = 7 (16..22), so each latent comes from one
    tile: 0..22 from the first, 23..39 from the second."""
    encoder = tiny_encoder()
    video = random_video(frames=1, height=64, width=1280)
    tiled = encoder.tiled_encode(video, spatial_tile=768, spatial_overlap=256, temporal_tile=None)
    first, second = encoder(video[..., :768]), encoder(video[..., 512:])
    expected = torch.cat([first[..., :23], second[..., 7:]], dim=-1)
    torch.testing.assert_close(tiled, expected, rtol=0, atol=1e-6)
    assert (tiled - encoder(video)).abs().max() > 1e-3  # the tiles really differ from untiled


def test_decode_layout_maps_latent_tiles_to_pixels():
    # 9 latent frames, tiles of 32 frames (4 latents) overlapping by 8 (1 latent): latent spans
    # [0, 4) [3, 7) [6, 9) shifted causally to [0, 4) [2, 7) [5, 9), frames [8b, 1 + 8(e − 1)).
    layout = decode_tile_layout(
        (9, 2, 2), SCALE, spatial_tile=None, spatial_overlap=0, temporal_tile=32,
        temporal_overlap=8,
    )  # fmt: skip
    spans = [
        ((t.source.start, t.source.stop), (t.target.start, t.target.stop)) for t in layout.axes[0]
    ]
    assert spans == [((0, 4), (0, 25)), ((2, 7), (16, 49)), ((5, 9), (40, 65))]
    # A later tile's left ramp is 1 + (2 − 1)·8 = 9 frames starting at exactly 0; the right
    # ramp of 8 frames lies strictly inside (0, 1).
    second = layout.axes[0][1].mask
    torch.testing.assert_close(second[:9], torch.arange(9) / 9)
    torch.testing.assert_close(second[-8:], torch.arange(8, 0, -1) / 9)
    assert layout.shape == (65, 64, 64)
