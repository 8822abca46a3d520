"""Latent upsamplers on tiny configs: output sizes, the blur kernel, the normalising wrapper."""

from __future__ import annotations

import pytest
import torch

from ltx2cli.errors import CheckpointError
from ltx2cli.models.upsampler import BlurDownsample, PixelShuffle, build_upsampler, upsample_latent
from ltx2cli.models.video_vae_blocks import PerChannelStatistics

torch.set_num_threads(min(2, torch.get_num_threads()))

CHANNELS = 8
MID = 32  # GroupNorm(32) needs a multiple of 32
GRID = (3, 4, 6)  # latent (frames, height, width)
TINY = {"in_channels": CHANNELS, "mid_channels": MID, "num_blocks_per_stage": 1}


def tiny(seed: int = 0, **config: object):
    upsampler = build_upsampler({**TINY, **config})
    upsampler.init_weights(torch.Generator().manual_seed(seed))
    return upsampler.eval()


def latent(frames: int = GRID[0], height: int = GRID[1], width: int = GRID[2]) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, CHANNELS, frames, height, width, generator=g)


@pytest.mark.parametrize(
    ("config", "grid", "expected"),
    [
        ({}, GRID, (3, 8, 12)),  # plain spatial ×2
        ({"rational_resampler": True, "spatial_scale": 2.0}, GRID, (3, 8, 12)),
        # ×1.5: shuffle by 3 then blur with stride 2, pad 2, 5 taps: (3n − 1)//2 + 1.
        ({"rational_resampler": True, "spatial_scale": 1.5}, GRID, (3, 6, 9)),
        ({"rational_resampler": True, "spatial_scale": 1.5}, (3, 5, 7), (3, 8, 11)),
        ({"rational_resampler": True, "spatial_scale": 0.75}, (3, 4, 8), (3, 3, 6)),
        ({"spatial_upsample": False, "temporal_upsample": True}, GRID, (5, 4, 6)),  # 2F − 1
        ({"temporal_upsample": True}, GRID, (5, 8, 12)),
        ({"dims": 2}, GRID, (3, 8, 12)),
        # The reference reads spatial_scale only for a spatial-only rational resampler.
        ({"spatial_scale": 1.5}, GRID, (3, 8, 12)),
        (
            {"temporal_upsample": True, "rational_resampler": True, "spatial_scale": 1.5},
            GRID,
            (5, 8, 12),
        ),
    ],
)
@torch.no_grad()
def test_output_sizes(config, grid, expected):
    upsampler = tiny(**config)
    out = upsampler(latent(*grid))
    assert out.shape == (1, CHANNELS, *expected)
    assert upsampler.output_shape(*grid) == expected
    assert torch.isfinite(out).all()


@torch.no_grad()
def test_blur_kernel_is_the_normalised_binomial():
    kernel = tiny(rational_resampler=True, spatial_scale=1.5).upsampler.blur_down.kernel
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    assert torch.equal(kernel, (torch.outer(taps, taps) / 256.0)[None, None])


@torch.no_grad()
def test_rational_x2_is_the_plain_shuffle_with_an_identity_blur():
    rational = tiny(rational_resampler=True, spatial_scale=2.0)
    plain = tiny()
    state = {
        k.replace("upsampler.conv.", "upsampler.0."): v
        for k, v in rational.state_dict().items()
        if k != "upsampler.blur_down.kernel"
    }
    plain.load_state_dict(state)
    torch.testing.assert_close(rational(latent()), plain(latent()), rtol=0, atol=0)


@torch.no_grad()
def test_two_dimensional_upsampler_treats_frames_independently():
    upsampler = tiny(dims=2)
    x = latent()
    changed = x.clone()
    changed[:, :, 1:] += 1.0
    torch.testing.assert_close(upsampler(changed)[:, :, 0], upsampler(x)[:, :, 0], rtol=0, atol=0)


@torch.no_grad()
def test_upsample_latent_works_on_unnormalised_latents():
    upsampler = tiny()
    stats = PerChannelStatistics(CHANNELS)
    g = torch.Generator().manual_seed(2)
    mean = torch.randn(CHANNELS, generator=g)
    std = torch.rand(CHANNELS, generator=g) + 0.5
    stats.get_buffer("mean-of-means").copy_(mean)
    stats.get_buffer("std-of-means").copy_(std)
    view = (1, -1, 1, 1, 1)
    x = latent()
    expected = (upsampler(x * std.view(view) + mean.view(view)) - mean.view(view)) / std.view(view)
    torch.testing.assert_close(upsample_latent(x, upsampler, stats), expected)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"rational_resampler": True, "spatial_scale": 3.0}, "spatial_scale"),
        ({"spatial_upsample": False}, "neither"),
        ({"mid_channels": 48}, "mid_channels"),
        ({"dims": 1}, "dims"),
    ],
)
def test_unsupported_configs_name_the_key(config, named):
    with pytest.raises(CheckpointError, match=named):
        build_upsampler({**TINY, **config})


@pytest.mark.parametrize(
    ("config", "key", "shape"),
    [
        ({"spatial_scale": 1.5}, "upsampler.0.weight", (4 * MID, MID, 3, 3)),
        (
            {"temporal_upsample": True, "rational_resampler": True, "spatial_scale": 1.5},
            "upsampler.0.weight",
            (8 * MID, MID, 3, 3, 3),
        ),
        (
            {"rational_resampler": True, "spatial_scale": 1.5},
            "upsampler.conv.weight",
            (9 * MID, MID, 3, 3),
        ),
    ],
)
def test_resampler_variant_follows_the_reference_choice(config, key, shape):
    with torch.device("meta"):
        upsampler = build_upsampler({**TINY, **config})
    assert tuple(upsampler.state_dict()[key].shape) == shape


@pytest.mark.parametrize(
    ("factors", "channels"),
    [((1, 2, 2), 2), ((2, 1, 1), 3), ((2, 2, 2), 2)],
)
def test_pixel_shuffle_splits_channels_as_c_then_time_height_width(factors, channels):
    f0, f1, f2 = factors
    d, h, w = 2, 3, 2
    x = torch.randn(1, channels * f0 * f1 * f2, d, h, w, generator=torch.Generator().manual_seed(5))
    out = PixelShuffle(factors)(x)
    assert out.shape == (1, channels, d * f0, h * f1, w * f2)
    for c in range(channels):
        for i in range(f0):
            for j in range(f1):
                for k in range(f2):
                    src = ((c * f0 + i) * f1 + j) * f2 + k
                    assert torch.equal(out[0, c, i::f0, j::f1, k::f2], x[0, src])


def test_pixel_shuffle_of_frames_matches_the_spatial_shuffle():
    x = torch.randn(3, 4 * CHANNELS, 5, 4, generator=torch.Generator().manual_seed(6))
    frames = PixelShuffle((1, 2, 2))(x[:, :, None])[:, :, 0]
    torch.testing.assert_close(PixelShuffle((1, 2, 2))(x), frames, rtol=0, atol=0)


@torch.no_grad()
def test_blur_downsample_zero_pads_and_strides():
    blur = BlurDownsample(stride=2)
    x = torch.ones(1, 2, 8, 8)
    out = blur(x)
    assert out.shape == (1, 2, 4, 4)
    # Output (i, j) reads inputs 2i−2 … 2i+2; zero padding removes taps that fall off the edge.
    # Corner: taps [6, 4, 1]/16 per axis survive → (11/16)². Interior: all taps → 1.
    torch.testing.assert_close(out[0, :, 0, 0], torch.full((2,), (11 / 16) ** 2))
    torch.testing.assert_close(out[0, :, 1, 1], torch.ones(2))
    # Last row/column (input 6): taps at 4…8, input 8 is padding → [1, 4, 6, 4]/16.
    torch.testing.assert_close(out[0, :, 3, 1], torch.full((2,), 15 / 16))


@pytest.mark.parametrize(
    "config",
    [{}, {"rational_resampler": True, "spatial_scale": 1.5}, {"temporal_upsample": True}],
    ids=["spatial-x2", "spatial-x1.5", "temporal-x2"],
)
@torch.no_grad()
def test_same_seed_same_output_other_seed_other_output(config):
    x = latent()
    model = tiny(seed=3, **config)
    first = model(x)
    assert torch.equal(model(x), first)  # no state carried between calls
    assert torch.equal(tiny(seed=3, **config)(x), first)
    assert not torch.allclose(first, tiny(seed=4, **config)(x))
