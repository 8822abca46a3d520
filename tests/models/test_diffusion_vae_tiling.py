"""Tiled decoding of the LTX-2.5 diffusion VAE: geometry by hand, blending, noise order."""

from __future__ import annotations

import pytest
import torch
from test_diffusion_vae import tiny_decoder

from ltx2cli.errors import UsageError
from ltx2cli.models.diffusion_vae import DiffusionDecoderConfig, DiffusionVideoDecoder
from ltx2cli.models.diffusion_vae_tiling import (
    AxisTiling,
    DiffusionTiling,
    Interval,
    masks_sum_to_one,
    split_by_size,
    trapezoid_mask,
)

# TINY latent 4×3×3 → stage-4 grid 13×12×12 → pixels 25×96×96.
LATENT_SHAPE = (1, 4, 4, 3, 3)
TILED = DiffusionTiling(
    frames=AxisTiling(16, 8), height=AxisTiling(64, 32), width=AxisTiling(64, 32)
)


def latent() -> torch.Tensor:
    return torch.randn(*LATENT_SHAPE, generator=torch.Generator().manual_seed(3))


def test_split_by_size_and_last_tile_growth() -> None:
    assert split_by_size(61, 32, 20) == [
        Interval(0, 32, 0, 20),
        Interval(12, 44, 20, 20),
        Interval(24, 56, 20, 20),
        Interval(36, 61, 20, 0),
    ]
    assert split_by_size(30, 32, 20) == [Interval(0, 30)]
    # 10 cells in tiles of 6 sharing 2: [0,6) [4,10); a floor of 7 grows the last one left.
    assert split_by_size(10, 6, 2) == [Interval(0, 6, 0, 2), Interval(4, 10, 2, 0)]
    assert split_by_size(10, 6, 2, min_size=7) == [Interval(0, 6, 0, 3), Interval(3, 10, 3, 0)]


def test_trapezoid_ramps_exclude_zero_and_one() -> None:
    mask = trapezoid_mask(6, 2, 3)
    expected = torch.tensor([1 / 3, 2 / 3, 1.0, 3 / 4, 2 / 4, 1 / 4])
    torch.testing.assert_close(mask, expected)


def test_released_decoder_geometry() -> None:
    with torch.device("meta"):
        decoder = DiffusionVideoDecoder(DiffusionDecoderConfig())
    tiling = DiffusionTiling(
        frames=AxisTiling(80, 40), height=AxisTiling(512, 160), width=AxisTiling(512, 160)
    )
    s4, tiles = decoder.tile_schedule((1, 128, 16, 24, 24), tiling)
    assert s4 == (61, 96, 96)
    frames = sorted(
        {(t.source[0].start, t.source[0].stop, t.target[0].start, t.target[0].stop) for t in tiles}
    )
    # Stage-4 frames → pixels: ×2, one frame fewer (the causal first frame), one earlier if not
    # at the origin.
    assert frames == [(0, 40, 0, 79), (20, 60, 39, 119), (40, 61, 79, 121)]
    rows = sorted(
        {(t.source[1].start, t.source[1].stop, t.target[1].start, t.target[1].stop) for t in tiles}
    )
    assert rows == [(0, 64, 0, 512), (44, 96, 352, 768)]
    assert masks_sum_to_one(tiles, (121, 768, 768))
    # Tiles shorter than two overlaps ramp twice over the same frames: not a partition of one
    # (the decoder then divides by the summed weights).
    _, narrow = decoder.tile_schedule(
        (1, 128, 16, 24, 24), DiffusionTiling(frames=AxisTiling(64, 40))
    )
    assert not masks_sum_to_one(narrow, (121, 768, 768))
    # Overlaps must cover the stage-4/5 halos: 8·(11//2)/2 = 20 cells → 40 frames, 160 px.
    with pytest.raises(UsageError, match="at least 40"):
        decoder.tile_schedule((1, 128, 16, 24, 24), DiffusionTiling(frames=AxisTiling(64, 32)))
    with pytest.raises(UsageError, match="at least 160"):
        decoder.tile_schedule((1, 128, 16, 24, 24), DiffusionTiling(height=AxisTiling(512, 128)))
    with pytest.raises(UsageError, match="multiples of 8"):
        decoder.tile_schedule((1, 128, 16, 24, 24), DiffusionTiling(width=AxisTiling(516, 160)))


def test_tiles_as_large_as_the_video_decode_like_no_tiling() -> None:
    decoder = tiny_decoder()
    whole = DiffusionTiling(
        frames=AxisTiling(32, 8), height=AxisTiling(128, 32), width=AxisTiling(128, 32)
    )
    with torch.no_grad():
        plain = decoder(latent(), generator=torch.Generator().manual_seed(5))
        tiled = decoder(latent(), generator=torch.Generator().manual_seed(5), tiling=whole)
    assert torch.equal(plain, tiled)


def _by_tile_frames(values: dict[int, float]):
    def denoise(x_t, context, timesteps):
        return torch.full_like(x_t, values[x_t.shape[2]])

    return denoise


def test_tiles_blend_to_one_and_ramp_across_temporal_overlaps(monkeypatch) -> None:
    decoder = tiny_decoder()
    # Temporal tiles have 15 (origin), 16 and 10 (trailing) stage-5 frames.
    monkeypatch.setattr(decoder, "_denoise", _by_tile_frames({15: 1.0, 16: 1.0, 10: 1.0}))
    with torch.no_grad():
        ones = decoder(latent(), tiling=TILED)
    assert ones.shape == (1, 3, 25, 96, 96)
    torch.testing.assert_close(ones, torch.ones_like(ones))

    monkeypatch.setattr(decoder, "_denoise", _by_tile_frames({15: 0.0, 16: 1.0, 10: 2.0}))
    with torch.no_grad():
        values = decoder(latent(), tiling=TILED)[0, 0, :, 50, 50]
    # Tiles cover frames [0,15) [7,23) [15,25); 8-frame ramps of k/9 and (9−k)/9.
    expected = torch.zeros(25)
    expected[7:15] = torch.arange(1, 9) / 9
    expected[15:23] = 1 + torch.arange(1, 9) / 9
    expected[23:] = 2
    torch.testing.assert_close(values, expected)


def test_weighted_blend_when_masks_do_not_partition_one(monkeypatch) -> None:
    decoder = tiny_decoder()
    # 12-frame tiles sharing 8 frames: 6 stage-4 cells sharing 4, ramps meet inside tiles.
    narrow = DiffusionTiling(frames=AxisTiling(12, 8))
    monkeypatch.setattr(decoder, "_denoise", lambda x_t, context, t: torch.full_like(x_t, 3.0))
    with torch.no_grad():
        out = decoder(latent(), tiling=narrow)
    torch.testing.assert_close(out, torch.full_like(out, 3.0))


def test_chunks_are_emitted_per_temporal_group() -> None:
    decoder = tiny_decoder()
    with torch.no_grad():
        chunks = list(decoder.iter_decode(latent(), torch.Generator().manual_seed(0), TILED))
    assert [c.shape[2] for c in chunks] == [7, 8, 10]


def test_each_tile_draws_its_own_noise_in_tile_order() -> None:
    decoder = tiny_decoder()
    used = torch.Generator().manual_seed(9)
    with torch.no_grad():
        decoder(latent(), generator=used, tiling=TILED)
    fresh = torch.Generator().manual_seed(9)
    for frames in (15, 16, 10):
        for _ in range(4):  # 2 × 2 spatial tiles of 64 × 64 pixels
            torch.randn(1, 3, frames, 64, 64, generator=fresh)
    assert torch.equal(torch.randn(4, generator=used), torch.randn(4, generator=fresh))


def _released_meta_decoder() -> DiffusionVideoDecoder:
    with torch.device("meta"):
        return DiffusionVideoDecoder(DiffusionDecoderConfig())


def test_with_ample_memory_one_tile_covers_the_video() -> None:
    tiling = _released_meta_decoder().recommended_tiling(121, 1088, 1920, 80 * 2**30)
    # Smallest sizes on the 8-frame / 32-pixel grid that cover 121 × 1088 × 1920.
    assert tiling == DiffusionTiling(
        frames=AxisTiling(128, 40), height=AxisTiling(1088, 160), width=AxisTiling(1920, 160)
    )


def test_recommended_tiles_fit_the_memory_budget() -> None:
    free, model = 8 * 2**30, 2**30
    tiling = _released_meta_decoder().recommended_tiling(121, 1088, 1920, free, model_bytes=model)
    t, h, w = tiling.frames.size, tiling.height.size, tiling.width.size
    assert t % 8 == 0 and h % 32 == 0 and w % 32 == 0
    assert t >= 80 and h >= 320 and w >= 320  # at least two overlaps (40 frames, 160 px)
    # Resident stage-4 input: (16 + 2 latent frames → 4·18 − 3 = 69) × 136 × 240 × 512 ch × 2 B.
    usable = free - model - 2**30 - 69 * 136 * 240 * 512 * 2
    accumulator = 2 * t * 1088 * 1920 * 3 * 2
    stage5 = t * (h // 4) * (w // 4) * 256 * 2 * 5
    assert accumulator + stage5 <= usable
    assert tiling != _released_meta_decoder().recommended_tiling(121, 1088, 1920, 80 * 2**30)


def test_too_little_memory_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="free memory"):
        _released_meta_decoder().recommended_tiling(121, 1088, 1920, 3 * 2**30)
