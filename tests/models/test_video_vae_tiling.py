"""Tiled encode/decode against untiled runs, tile layout, validation and the memory estimate."""

from __future__ import annotations

import pytest
import torch
from test_video_vae import LATENT_CHANNELS, random_video, tiny_config, tiny_decoder, tiny_encoder

from ltx2cli.errors import UsageError
from ltx2cli.models.video_vae import VideoVAEConfig, estimate_decode_bytes

torch.set_num_threads(min(2, torch.get_num_threads()))

# Tiles in pixels / frames: the smallest legal decode tiles (2 latents, 1 latent of overlap)
# and encode tiles with the minimum encode overlaps (64 px, 16 frames).
DECODE_TILES = {
    "spatial_tile": 64,
    "spatial_overlap": 32,
    "temporal_tile": 16,
    "temporal_overlap": 8,
}
ENCODE_TILES = {
    "spatial_tile": 96,
    "spatial_overlap": 64,
    "temporal_tile": 24,
    "temporal_overlap": 16,
}
# Masks of neighbouring tiles sum to one up to float32 rounding of the linspace ramps, and
# blending adds at most a few such products, so a local network agrees to ~1e-6 relative.
BLEND_ATOL = 1e-5
SPOIL = 1000.0


def local(module: torch.nn.Module, causal: bool) -> torch.nn.Module:
    """Keep only the tap of every 3×3×3 conv that reads the output's own position.

    Such a network maps each latent cell to its own pixels and back, so tiling cannot change
    any value: tiled and untiled results must then agree to float rounding everywhere,
    seams included. (A causal conv's current frame is its last temporal tap.)
    """
    tap = 2 if causal else 1
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.Conv3d) and m.kernel_size == (3, 3, 3):
                keep = m.weight[:, :, tap, 1, 1].clone()
                m.weight.zero_()
                m.weight[:, :, tap, 1, 1] = keep
    return module


def latent_of(frames: int, height: int, width: int, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, LATENT_CHANNELS, frames, height, width, generator=g)


@torch.no_grad()
def test_tiled_decode_equals_untiled_when_one_tile_covers_everything():
    decoder = tiny_decoder()
    latent = latent_of(2, 2, 3)
    assert torch.equal(decoder.tiled_decode(latent), decoder(latent))


@torch.no_grad()
def test_tiled_encode_equals_untiled_when_one_tile_covers_everything():
    encoder = tiny_encoder()
    video = random_video()
    assert torch.equal(encoder.tiled_encode(video), encoder(video))


@pytest.mark.parametrize("generation", ["19b", "2.3"])
@torch.no_grad()
def test_tiled_decode_matches_untiled_across_seams(generation):
    decoder = local(tiny_decoder(generation), causal=False)
    latent = latent_of(3, 3, 4)  # 2 × 2 × 3 tiles
    tiled = decoder.tiled_decode(latent, aspect_coupled=False, **DECODE_TILES)
    torch.testing.assert_close(tiled, decoder(latent), rtol=0, atol=BLEND_ATOL)


@torch.no_grad()
def test_tiled_encode_matches_untiled_across_seams():
    encoder = local(tiny_encoder(), causal=True)
    video = random_video(frames=25, height=128, width=128)  # latent (4, 4, 4): 2 × 2 × 2 tiles
    tiled = encoder.tiled_encode(video, **ENCODE_TILES)
    torch.testing.assert_close(tiled, encoder(video), rtol=0, atol=BLEND_ATOL)


# Two tiles of 24 latents overlapping by 8 across a 40-latent strip: [0, 24) and [16, 40). Each
# single-tile region lies 8 latents from the other tile's edge, beyond the tiny networks'
# receptive radius, so the unmodified networks must agree with untiled runs there; only the
# blended band [16, 24) sees each tile's truncated context.
STRIP_LATENTS, STRIP_TILE, STRIP_OVERLAP = 40, 24, 8
PX = 32
STRIP_TILES = {
    "spatial_tile": STRIP_TILE * PX,
    "spatial_overlap": STRIP_OVERLAP * PX,
    "temporal_tile": None,
}
SAME_INPUT_ATOL = 1e-5  # convs over different widths may sum in another order
SEAM_DIFFERENCE = 1e-3


@pytest.mark.parametrize("generation", ["19b", "2.3"])
@torch.no_grad()
def test_unmodified_decoders_blend_their_two_tiles_linearly_in_the_band(generation):
    """Decode masks are separable trapezoids with ramps strictly inside (0, 1), ×32 in pixels.
    Untouched weights: every conv sees its neighbours, so outside the band tiled and untiled
    runs must still agree."""
    model, unit = tiny_decoder(generation), PX
    x = latent_of(1, 2, STRIP_LATENTS)
    tiled, full = model.tiled_decode(x, aspect_coupled=False, **STRIP_TILES), model(x)
    first, second = model(x[..., :STRIP_TILE]), model(x[..., -STRIP_TILE:])
    lo, hi = (STRIP_TILE - STRIP_OVERLAP) * unit, STRIP_TILE * unit  # the blended band
    fade_in = torch.linspace(0.0, 1.0, hi - lo + 2)[1:-1]
    band = first[..., lo:] * (1 - fade_in) + second[..., : hi - lo] * fade_in
    expected = torch.cat([full[..., :lo], band, full[..., hi:]], dim=-1)
    torch.testing.assert_close(tiled, expected, rtol=0, atol=SAME_INPUT_ATOL)
    # The networks really see across the seam, so agreeing with `full` outside it means something.
    assert (tiled[..., lo:hi] - full[..., lo:hi]).abs().max() > SEAM_DIFFERENCE


# Overlap above half the tile: three tiles cover some positions and the decode masks no longer
# sum to one, so the accumulated weights divide the result (encode: 3-latent tiles, 2 overlap,
# whose rectangular masks still leave exactly one tile per latent).
HEAVY_ENCODE_TILES = {"spatial_tile": 96, "spatial_overlap": 64, "temporal_tile": None}
HEAVY_DECODE_TILES = {"spatial_tile": 128, "spatial_overlap": 96, "temporal_tile": None}


@torch.no_grad()
def test_heavily_overlapping_tiles_are_divided_by_their_weights():
    encoder = local(tiny_encoder(), causal=True)
    video = random_video(frames=9, height=32, width=192)  # 6 latents wide: 4 tiles
    tiled = encoder.tiled_encode(video, **HEAVY_ENCODE_TILES)
    torch.testing.assert_close(tiled, encoder(video), rtol=0, atol=BLEND_ATOL)
    decoder = local(tiny_decoder(), causal=False)
    latent = latent_of(2, 2, 6)
    tiled = decoder.tiled_decode(latent, aspect_coupled=False, **HEAVY_DECODE_TILES)
    torch.testing.assert_close(tiled, decoder(latent), rtol=0, atol=BLEND_ATOL)


@torch.no_grad()
def test_tiled_results_keep_the_model_dtype_when_weights_divide():
    # The reference accumulates the blend weights in the model / latent dtype.
    encoder = tiny_encoder().to(torch.bfloat16)
    latent = encoder.tiled_encode(
        random_video(frames=9, height=32, width=192), **HEAVY_ENCODE_TILES
    )
    assert latent.dtype == torch.bfloat16
    decoder = tiny_decoder().to(torch.bfloat16)
    chunks = list(
        decoder.iter_tiled_decode(
            latent_of(2, 2, 6).bfloat16(), aspect_coupled=False, **HEAVY_DECODE_TILES
        )
    )
    assert {c.dtype for c in chunks} == {torch.bfloat16}


@torch.no_grad()
def test_tiled_decode_streams_chunks_as_their_frames_complete():
    decoder = local(tiny_decoder("2.3"), causal=False)  # zero padding allows a 1×1 latent
    latent = latent_of(9, 1, 1)
    chunks = list(
        decoder.iter_tiled_decode(latent, spatial_tile=None, temporal_tile=32, temporal_overlap=8)
    )
    # 9 latents in tiles of 4 with overlap 1 → latent spans [0,4) [2,7) [5,9) (causal shift),
    # i.e. frames [0,25) [16,49) [40,65): each chunk ends where the next tile starts.
    assert [c.shape[2] for c in chunks] == [16, 24, 25]
    torch.testing.assert_close(torch.cat(chunks, dim=2), decoder(latent), rtol=0, atol=BLEND_ATOL)


def _spoil_first_frame(_module, _args, output: torch.Tensor) -> torch.Tensor:
    spoiled = output.clone()
    spoiled[:, :, 0] += SPOIL
    return spoiled


@torch.no_grad()
def test_later_temporal_tiles_give_their_first_frame_zero_weight():
    decoder = tiny_decoder("2.3")
    latent = latent_of(5, 1, 1)
    tiles = {"spatial_tile": None, "temporal_tile": 16, "temporal_overlap": 8}
    clean = decoder.tiled_decode(latent, **tiles)
    decoder.register_forward_hook(_spoil_first_frame)
    spoiled = decoder.tiled_decode(latent, **tiles)
    # Only the first tile's first frame is the video's first frame; the others are blended away.
    assert torch.equal(spoiled[:, :, 1:], clean[:, :, 1:])
    assert not torch.allclose(spoiled[:, :, 0], clean[:, :, 0])


@torch.no_grad()
def test_later_temporal_tiles_give_their_first_latent_zero_weight():
    encoder = tiny_encoder()
    video = random_video(frames=41, height=32, width=32)  # 6 latent frames
    tiles = {"spatial_tile": None, "temporal_tile": 24, "temporal_overlap": 16}
    clean = encoder.tiled_encode(video, **tiles)
    encoder.register_forward_hook(_spoil_first_frame)
    spoiled = encoder.tiled_encode(video, **tiles)
    assert torch.equal(spoiled[:, :, 1:], clean[:, :, 1:])
    assert not torch.allclose(spoiled[:, :, 0], clean[:, :, 0])


@pytest.mark.parametrize(
    ("aspect_coupled", "tile_sizes"),
    [
        # Long side (8 latents) gets the 4-latent tile; the short side round(4·4/8) = 2.
        (True, [(2, 4), (2, 4), (2, 2)] * 3),
        (False, [(4, 4), (4, 4), (4, 2)]),
    ],
)
@torch.no_grad()
def test_decode_tiles_follow_the_long_side(aspect_coupled, tile_sizes):
    decoder = tiny_decoder()
    seen: list[tuple[int, int]] = []
    decoder.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape[3:])))
    decoder.tiled_decode(
        latent_of(1, 4, 8), spatial_tile=128, spatial_overlap=32, aspect_coupled=aspect_coupled
    )
    assert sorted(seen) == sorted(tile_sizes)


@pytest.mark.parametrize(
    "tiles",
    [
        {"spatial_tile": 48},
        {"spatial_tile": 80},
        {"spatial_tile": 128, "spatial_overlap": 16},
        {"spatial_tile": 64, "spatial_overlap": 64},
        {"temporal_tile": 12},
        {"temporal_tile": 32, "temporal_overlap": 12},
    ],
)
def test_invalid_tile_sizes_are_usage_errors(tiles):
    with pytest.raises(UsageError):
        tiny_decoder().tiled_decode(latent_of(2, 2, 3), **tiles)


@pytest.mark.parametrize(
    ("small", "minimum"),
    [
        (
            {"spatial_tile": 128, "spatial_overlap": 32},
            {"spatial_tile": 128, "spatial_overlap": 64},
        ),
        (
            {"spatial_tile": None, "temporal_tile": 24, "temporal_overlap": 8},
            {"spatial_tile": None, "temporal_tile": 24, "temporal_overlap": 16},
        ),
    ],
)
@torch.no_grad()
def test_encode_raises_small_overlaps_to_the_minimum(small, minimum):
    encoder = tiny_encoder()
    video = random_video(frames=33, height=32, width=192)
    raised = encoder.tiled_encode(video, **small)
    assert torch.equal(raised, encoder.tiled_encode(video, **minimum))
    assert not torch.allclose(raised, encoder(video))  # really tiled


def test_encode_tile_must_exceed_the_minimum_overlap():
    with pytest.raises(UsageError, match="too small for tiled encoding"):
        tiny_encoder().tiled_encode(random_video(), spatial_tile=64, spatial_overlap=32)


def test_decode_estimate_scales_with_area_batch_and_dtype():
    config = VideoVAEConfig()  # the released 19B VAE
    base = estimate_decode_bytes(config, 121, 512, 768)
    assert estimate_decode_bytes(config, 121, 1024, 768) == 2 * base
    assert estimate_decode_bytes(config, 121, 512, 768, batch=2) == 2 * base
    assert estimate_decode_bytes(config, 121, 512, 768, element_size=4) == 2 * base
    # At least the last stage's 128-channel activation at full frames and 1/4 resolution.
    assert base >= 128 * 121 * (512 // 4) * (768 // 4) * 2


@torch.no_grad()
def test_decode_estimate_bounds_the_largest_activation():
    decoder = tiny_decoder()
    largest = 0

    def record(_module, _args, output):
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output.numel() * output.element_size())

    for module in decoder.modules():
        module.register_forward_hook(record)
    decoder(latent_of(3, 2, 3))
    estimate = estimate_decode_bytes(
        VideoVAEConfig.from_checkpoint_config(tiny_config("19b")), 17, 64, 96, element_size=4
    )
    assert largest <= estimate <= 8 * largest
