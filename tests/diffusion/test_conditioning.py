"""Conditioning items: untouched tokens stay, masks and positions as the reference defines
them in both releases, appended tokens are removed cleanly; the IC-LoRA mask downsampler."""

from __future__ import annotations

import math

import pytest
import torch

from ltx2cli.compat import CURRENT, V1_0_0
from ltx2cli.diffusion.conditioning import (
    AttentionStrength,
    KeyframeGuide,
    MaskedLatent,
    ReferenceVideo,
    ReplaceLatent,
    TemporalRegionMask,
    apply_conditioning,
    pixel_mask_to_latent,
)
from ltx2cli.diffusion.noise import gaussian, make_generator, noise_state
from ltx2cli.diffusion.patchify import VideoLatentShape, audio_latent_shape, patchify_video
from ltx2cli.diffusion.state import AV, AudioGrid, VideoGrid, clear_conditioning
from ltx2cli.diffusion.steppers import euler_loop
from ltx2cli.errors import UsageError

FPS = 24.0
CHANNELS = 4
SHAPE = VideoLatentShape(1, CHANNELS, 3, 2, 3)  # 25 pixel frames, 64×96 px
PER_FRAME = SHAPE.tokens_per_frame
GRID = VideoGrid(SHAPE, FPS)
GRID_1_0_0 = VideoGrid(SHAPE, FPS, compat=V1_0_0)
SEED = 3
TIME_TOL = 1e-6
PARTIAL_STRENGTH = 0.7
BF16_0_3 = 154 / 512  # 0.3 rounded to bfloat16 (8 significant bits)
BF16_ONE_24TH = 171 / 4096  # 1/24 rounded to bfloat16
STAGE_2_NOISE_SCALE = 0.909375
FLOAT32_TOL = 1e-6


def image_latent(height: int = 2, width: int = 3, frames: int = 1) -> torch.Tensor:
    torch.manual_seed(7)
    return torch.randn(1, CHANNELS, frames, height, width)


def target_state():
    torch.manual_seed(0)
    return GRID.initial_state(torch.randn(SHAPE.size))


@pytest.mark.parametrize(("frame_index", "strength"), [(0, 1.0), (2, 0.8)])
def test_replace_latent_conditions_one_frame_in_place(frame_index, strength):
    state = target_state()
    image = image_latent()
    out = ReplaceLatent(image, frame_index, strength).apply(state, GRID)
    frame = slice(frame_index * PER_FRAME, (frame_index + 1) * PER_FRAME)
    others = torch.ones(SHAPE.token_count, dtype=torch.bool)
    others[frame] = False
    assert out.token_count == SHAPE.token_count
    assert torch.equal(out.clean_latent[:, frame], patchify_video(image))
    assert torch.allclose(out.denoise_mask[:, frame], torch.full((1, PER_FRAME, 1), 1 - strength))
    assert torch.equal(out.clean_latent[:, others], state.clean_latent[:, others])
    assert bool((out.denoise_mask[:, others] == 1).all())
    assert torch.equal(out.latent, state.latent)
    assert torch.equal(out.positions, state.positions)


def test_noised_replaced_frame_is_clean_at_full_strength_and_mixed_below():
    state = ReplaceLatent(image_latent(), 0, 1.0).apply(GRID.initial_state(), GRID)
    noisy = noise_state(state, make_generator(SEED))
    assert torch.equal(noisy.latent[:, :PER_FRAME], patchify_video(image_latent()))
    partial = ReplaceLatent(image_latent(), 0, 0.75).apply(GRID.initial_state(), GRID)
    noisy = noise_state(partial, make_generator(SEED))
    noise = gaussian(partial.latent.shape, make_generator(SEED))
    expected = 0.75 * patchify_video(image_latent()) + 0.25 * noise[:, :PER_FRAME]
    assert torch.allclose(noisy.latent[:, :PER_FRAME], expected, atol=1e-6)
    assert torch.equal(noisy.latent[:, PER_FRAME:], noise[:, PER_FRAME:])


def test_replace_latent_rejects_bad_input():
    with pytest.raises(ValueError):
        ReplaceLatent(image_latent(height=4), 0).apply(target_state(), GRID)
    with pytest.raises(UsageError, match="latent frame 3"):
        ReplaceLatent(image_latent(), 3).apply(target_state(), GRID)
    with pytest.raises(UsageError, match=r"strength 1\.5"):
        ReplaceLatent(image_latent(), 0, 1.5).apply(target_state(), GRID)


# A single image keyframe at pixel frame k > 0 spans [k, k + 1) currently and the whole latent
# frame [k, k + 8) in 1.0.0; at frame 0 the causal fix gives [0, 1) in both.
@pytest.mark.parametrize(
    ("grid", "frame_index", "time_bounds"),
    [(GRID, 16, (16, 17)), (GRID, 0, (0, 1)), (GRID_1_0_0, 16, (16, 24)), (GRID_1_0_0, 0, (0, 1))],
    ids=["current-16", "current-0", "1.0.0-16", "1.0.0-0"],
)
def test_keyframe_guide_appends_tokens_with_their_own_positions(grid, frame_index, time_bounds):
    state = target_state()
    keyframe = image_latent()
    out = KeyframeGuide(keyframe, frame_index, strength=0.9).apply(state, grid)
    new = slice(SHAPE.token_count, None)
    assert out.token_count == SHAPE.token_count + PER_FRAME
    assert out.target_tokens == SHAPE.token_count
    assert torch.equal(out.latent[:, : SHAPE.token_count], state.latent)
    assert torch.equal(out.clean_latent[:, : SHAPE.token_count], state.clean_latent)
    # zeros as placeholders currently; 1.0.0 writes the keyframe into `latent` too
    placeholder = patchify_video(keyframe) if grid.compat.conditioning_writes_latent else 0.0
    assert torch.equal(out.latent[:, new], torch.zeros_like(out.latent[:, new]) + placeholder)
    assert torch.equal(out.clean_latent[:, new], patchify_video(keyframe))
    assert torch.allclose(out.denoise_mask[:, new], torch.full((1, PER_FRAME, 1), 0.1))
    time, y, x = out.positions[0, :, new]
    start, end = time_bounds
    assert time[0].tolist() == pytest.approx([start / FPS, end / FPS], abs=TIME_TOL)
    assert y[PER_FRAME - 1].tolist() == [32.0, 64.0]  # row 1
    assert x[PER_FRAME - 1].tolist() == [64.0, 96.0]  # column 2
    assert out.attention_mask is None


def test_keyframe_outside_the_video_is_refused():
    with pytest.raises(UsageError, match="frame 25"):
        KeyframeGuide(image_latent(), 25).apply(target_state(), GRID)


def test_reference_video_positions_are_scaled_onto_the_target_frame():
    state = target_state()
    reference = image_latent(height=1, width=2, frames=2)  # half resolution, 9 pixel frames
    out = ReferenceVideo(reference, downscale_factor=2).apply(state, GRID)
    ref_positions = out.positions[0, :, SHAPE.token_count :]
    assert out.token_count == SHAPE.token_count + 4
    # token (f=1, h=0, w=1): pixel frames [1, 9), spatial [0, 32)·2 and [32, 64)·2
    time, y, x = ref_positions[:, 3]
    assert time.tolist() == pytest.approx([1 / FPS, 9 / FPS], abs=TIME_TOL)
    assert y.tolist() == [0.0, 64.0] and x.tolist() == [64.0, 128.0]
    assert bool((out.denoise_mask[:, SHAPE.token_count :] == 0).all())


def test_reference_video_at_a_lower_frame_rate_ends_with_the_target():
    out = ReferenceVideo(image_latent(frames=2), temporal_scale_factor=2).apply(
        target_state(), GRID
    )
    time = out.positions[0, 0, SHAPE.token_count :]
    # spaced at fps/2 and shifted back by 1/fps: frame 1 [1, 9)/12 − 1/24 = [1, 17)/24
    assert time[PER_FRAME].tolist() == pytest.approx([1 / FPS, 17 / FPS], abs=TIME_TOL)
    assert time[0].tolist() == pytest.approx([0.0, 1 / FPS], abs=TIME_TOL)  # clamped at 0


def test_attention_strength_builds_the_block_mask():
    state = target_state()
    first = AttentionStrength(ReferenceVideo(image_latent()), 0.5)
    second = AttentionStrength(KeyframeGuide(image_latent(), 8), torch.full((PER_FRAME,), 0.25))
    out = apply_conditioning(state, [first, second], GRID)
    n, m = SHAPE.token_count, PER_FRAME
    mask = out.attention_mask[0]
    assert mask.shape == (n + 2 * m, n + 2 * m)
    target, group1, group2 = slice(0, n), slice(n, n + m), slice(n + m, None)
    assert bool((mask[target, target] == 1).all())
    assert bool((mask[group1, group1] == 1).all()) and bool((mask[group2, group2] == 1).all())
    assert bool((mask[target, group1] == 0.5).all()) and bool((mask[group1, target] == 0.5).all())
    assert bool((mask[target, group2] == 0.25).all())
    assert bool((mask[group1, group2] == 0).all()) and bool((mask[group2, group1] == 0).all())
    # an unwrapped item after a mask exists sees the target fully, earlier groups not at all
    third = KeyframeGuide(image_latent(), 16).apply(out, GRID).attention_mask[0]
    group3 = slice(n + 2 * m, None)
    assert bool((third[target, group3] == 1).all()) and bool((third[group1, group3] == 0).all())


def test_temporal_region_mask_for_video_and_audio():
    # 121 frames at 24 fps, window [1, 2) s. Latent frame f covers [(8f − 7)/24, (8f + 1)/24):
    # (8f + 1)/24 > 1 → f ≥ 3 and (8f − 7)/24 < 2 → f ≤ 6.
    video_grid = VideoGrid(VideoLatentShape(1, CHANNELS, 16, 1, 2), FPS)
    video = TemporalRegionMask(1.0, 2.0).apply(video_grid.initial_state(), video_grid)
    per_frame = video.denoise_mask[0, :, 0].view(16, 2)[:, 0]
    assert per_frame.tolist() == [1.0 if 3 <= f <= 6 else 0.0 for f in range(16)]
    # Audio token t covers [max(0, 4t − 3)·0.01, (4t + 1)·0.01): t = 25 … 50 overlap [1, 2).
    audio_grid = AudioGrid(audio_latent_shape(126))
    audio = TemporalRegionMask(1.0, 2.0).apply(audio_grid.initial_state(), audio_grid)
    assert audio.denoise_mask[0, :, 0].tolist() == [
        1.0 if 25 <= t <= 50 else 0.0 for t in range(126)
    ]


def test_masked_latent_keeps_the_marked_region():
    state = target_state()
    source = torch.randn(SHAPE.size)
    keep = torch.zeros(1, SHAPE.frames, SHAPE.height, SHAPE.width)
    keep[:, :, 0, :] = 1.0  # keep the top latent row of every frame
    out = MaskedLatent(source, keep, strength=1.0).apply(state, GRID)
    kept = keep.reshape(1, -1).bool()
    assert torch.equal(out.clean_latent[kept], patchify_video(source)[kept])
    assert torch.equal(out.clean_latent[~kept], state.clean_latent[~kept])
    assert out.denoise_mask[0, :, 0].tolist() == (1 - keep.reshape(-1)).tolist()


def test_appended_tokens_are_removed_cleanly_after_denoising():
    state = target_state()
    items = [
        ReplaceLatent(image_latent(), 0),
        AttentionStrength(ReferenceVideo(image_latent()), 0.5),
        KeyframeGuide(image_latent(), 16, strength=0.5),
    ]
    conditioned = noise_state(apply_conditioning(state, items, GRID), make_generator(SEED))

    def denoise(current: AV, sigma: float, step: int) -> AV:
        return AV(video=torch.zeros_like(current.video.latent))

    done = euler_loop(AV(video=conditioned), [1.0, 0.5, 0.0], denoise).video
    cleared = clear_conditioning(done)
    assert cleared.token_count == SHAPE.token_count
    assert torch.equal(cleared.positions, GRID.positions())
    assert bool((cleared.denoise_mask == 1).all()) and cleared.attention_mask is None
    dense = GRID.unpatchify(cleared)
    assert dense.shape == SHAPE.size
    assert torch.equal(dense[:, :, 0], image_latent()[:, :, 0])  # conditioned frame kept
    assert not dense[:, :, 1:].any()  # generated frames follow the model's x0


def bf16_target_state():
    return GRID.initial_state(torch.randn(SHAPE.size).to(torch.bfloat16))


@pytest.mark.parametrize(
    "make",
    [
        lambda latent: KeyframeGuide(latent, 8, strength=PARTIAL_STRENGTH),
        lambda latent: ReferenceVideo(latent, strength=PARTIAL_STRENGTH),
    ],
    ids=["keyframe", "reference"],
)
def test_appended_mask_is_one_minus_strength_in_the_latent_dtype(make):
    # The reference fills the new tokens' mask in the conditioning latent's dtype and the
    # concatenation widens it to float32: bf16(0.3) = 154/512.
    out = make(image_latent().to(torch.bfloat16)).apply(bf16_target_state(), GRID)
    new = out.denoise_mask[:, SHAPE.token_count :]
    assert out.denoise_mask.dtype == torch.float32
    assert bool((new == BF16_0_3).all())
    float32 = make(image_latent()).apply(target_state(), GRID)
    assert bool((float32.denoise_mask[:, SHAPE.token_count :] == torch.tensor(0.3)).all())


def test_attention_mask_is_built_in_the_latent_dtype():
    wrapped = AttentionStrength(ReferenceVideo(image_latent().to(torch.bfloat16)), 0.3)
    out = wrapped.apply(bf16_target_state(), GRID)
    mask = out.attention_mask[0]
    assert out.attention_mask.dtype == torch.bfloat16
    assert float(mask[0, SHAPE.token_count]) == BF16_0_3


def test_masked_latent_strength_is_rounded_in_the_latent_dtype():
    state = bf16_target_state()
    keep = torch.zeros(1, SHAPE.frames, SHAPE.height, SHAPE.width)
    keep[:, 0] = 1.0
    source = torch.randn(SHAPE.size).to(torch.bfloat16)
    out = MaskedLatent(source, keep, strength=PARTIAL_STRENGTH).apply(state, GRID)
    assert out.denoise_mask.dtype == torch.float32
    assert out.denoise_mask[0, :, 0].tolist() == [BF16_0_3] * PER_FRAME + [1.0] * (
        SHAPE.token_count - PER_FRAME
    )
    assert torch.equal(out.clean_latent[:, :PER_FRAME], patchify_video(source)[:, :PER_FRAME])


@pytest.mark.parametrize("grid", [GRID, GRID_1_0_0], ids=["current", "1.0.0"])
def test_multi_frame_keyframe_spans_its_latent_frames_in_both_releases(grid):
    # Two latent frames at pixel frame 8 (no causal fix away from frame 0) cover [8, 16) and
    # [16, 24): only a single-image keyframe is narrowed.
    out = KeyframeGuide(image_latent(frames=2), 8).apply(target_state(), grid)
    time = out.positions[0, 0, SHAPE.token_count :] * FPS
    assert time[0].tolist() == pytest.approx([8, 16], abs=TIME_TOL)
    assert time[PER_FRAME].tolist() == pytest.approx([16, 24], abs=TIME_TOL)


@pytest.mark.parametrize(("causal_fix", "frame1"), [(True, (1, 9)), (False, (8, 16))])
def test_keyframe_at_frame_zero_uses_the_grids_causal_fix(causal_fix, frame1):
    grid = VideoGrid(SHAPE, FPS, causal_fix=causal_fix)
    keyframe = image_latent(frames=2)
    out = KeyframeGuide(keyframe, 0).apply(grid.initial_state(), grid)
    time = out.positions[0, 0, SHAPE.token_count :] * FPS
    assert time[PER_FRAME].tolist() == pytest.approx(list(frame1), abs=TIME_TOL)


def test_temporal_region_mask_can_use_its_own_frame_rate():
    # At 12 fps latent frame f covers [(8f − 7)/12, (8f + 1)/12) s: [1, 2) s overlaps f = 2.
    video = TemporalRegionMask(1.0, 2.0, fps=12.0).apply(target_state(), GRID)
    per_frame = video.denoise_mask[0, :, 0].view(SHAPE.frames, PER_FRAME)[:, 0]
    assert per_frame.tolist() == [0.0, 0.0, 1.0]
    at_grid_fps = TemporalRegionMask(1.0, 2.0).apply(target_state(), GRID)
    assert not at_grid_fps.denoise_mask.any()  # 24 fps: the clip ends at 17/24 s


FIELDS = ("latent", "clean_latent", "denoise_mask")
APPENDING = {
    "keyframe": lambda: KeyframeGuide(image_latent(), 8, strength=PARTIAL_STRENGTH),
    "reference": lambda: ReferenceVideo(image_latent(1, 2, frames=2), downscale_factor=2),
    "attention": lambda: AttentionStrength(ReferenceVideo(image_latent()), PARTIAL_STRENGTH),
}


@pytest.mark.parametrize("make", APPENDING.values(), ids=list(APPENDING))
def test_each_appending_item_leaves_the_target_untouched_and_clears_away(make):
    state = target_state()
    out = make().apply(state, GRID)
    n = SHAPE.token_count
    assert out.token_count > n
    for field in FIELDS:
        assert torch.equal(getattr(out, field)[:, :n], getattr(state, field)), field
    assert torch.equal(out.positions[:, :, :n], state.positions)
    cleared = clear_conditioning(out)
    for field in FIELDS:
        assert torch.equal(getattr(cleared, field), getattr(state, field)), field
    assert torch.equal(cleared.positions, state.positions) and cleared.attention_mask is None


def _top_row_kept() -> torch.Tensor:
    keep = torch.zeros(1, SHAPE.frames, SHAPE.height, SHAPE.width)
    keep[:, :, 0] = 1.0
    return keep


# In-place items and the target tokens they may change (by hand from the item's definition).
IN_PLACE = {
    "replace frame 1": (
        lambda: ReplaceLatent(image_latent(), 1, PARTIAL_STRENGTH),
        [PER_FRAME + i for i in range(PER_FRAME)],
    ),
    "mask top row": (
        lambda: MaskedLatent(torch.randn(SHAPE.size), _top_row_kept()),
        [f * PER_FRAME + w for f in range(SHAPE.frames) for w in range(SHAPE.width)],
    ),
}


@pytest.mark.parametrize(("make", "region"), IN_PLACE.values(), ids=list(IN_PLACE))
def test_in_place_items_change_only_their_region_and_never_the_noisy_latent(make, region):
    state = target_state()
    out = make().apply(state, GRID)
    assert torch.equal(out.latent, state.latent) and torch.equal(out.positions, state.positions)
    outside = torch.ones(SHAPE.token_count, dtype=torch.bool)
    outside[region] = False
    for field in FIELDS[1:]:
        assert torch.equal(getattr(out, field)[:, outside], getattr(state, field)[:, outside])
        assert not torch.equal(getattr(out, field)[:, ~outside], getattr(state, field)[:, ~outside])


@pytest.mark.parametrize(("make", "region"), IN_PLACE.values(), ids=list(IN_PLACE))
def test_in_place_items_write_the_latent_too_under_1_0_0(make, region):
    state = target_state()  # latent == clean_latent, as before noising
    item = make()
    current, v1 = item.apply(state, GRID), item.apply(state, GRID_1_0_0)
    assert torch.equal(v1.clean_latent, current.clean_latent)
    assert torch.equal(v1.denoise_mask, current.denoise_mask)
    assert torch.equal(v1.latent, v1.clean_latent)  # the clean values went into both
    outside = torch.ones(SHAPE.token_count, dtype=torch.bool)
    outside[region] = False
    assert torch.equal(v1.latent[:, outside], state.latent[:, outside])
    assert not torch.equal(v1.latent[:, ~outside], state.latent[:, ~outside])


@pytest.mark.parametrize("grid", [GRID, GRID_1_0_0], ids=["current", "1.0.0"])
def test_noised_partial_keyframe_follows_its_release(grid):
    # Appended tokens with mask m = 1 − strength, clean value c, noise scale s:
    # current (1 − m)·c + m·s·ε; 1.0.0 c·(1 − m·s) + ε·m·s.
    keyframe = image_latent()
    state = KeyframeGuide(keyframe, 8, strength=PARTIAL_STRENGTH).apply(target_state(), grid)
    noisy = noise_state(state, make_generator(SEED), STAGE_2_NOISE_SCALE, grid.compat)
    noise = gaussian(state.latent.shape, make_generator(SEED))[:, SHAPE.token_count :]
    c, m, s = patchify_video(keyframe), 1 - PARTIAL_STRENGTH, STAGE_2_NOISE_SCALE
    if grid.compat is CURRENT:
        expected = (1 - m) * c + m * s * noise
    else:
        expected = c * (1 - m * s) + noise * m * s
    torch.testing.assert_close(noisy.latent[:, SHAPE.token_count :], expected)


def test_1_0_0_rounds_target_positions_to_the_latent_dtype_but_not_appended_ones():
    # 1.0.0 casts the target's positions to the latent dtype (bf16): latent frame 1 starts at
    # 1/24 s, which bf16 (8 significant bits) holds as 171/4096. Keyframe positions appended
    # later stay float32 (8/24 s) and the concatenation is float32.
    latent = torch.zeros(SHAPE.size, dtype=torch.bfloat16)
    v1 = GRID_1_0_0.initial_state(latent)
    current = GRID.initial_state(latent)
    assert v1.positions.dtype == torch.bfloat16 and current.positions.dtype == torch.float32
    assert float(v1.positions[0, 0, PER_FRAME, 0]) == BF16_ONE_24TH
    assert float(current.positions[0, 0, PER_FRAME, 0]) == float(torch.tensor(1 / FPS))
    assert torch.equal(v1.positions, current.positions.to(torch.bfloat16))
    keyframe = image_latent().to(torch.bfloat16)
    out = KeyframeGuide(keyframe, 8).apply(v1, GRID_1_0_0)
    assert out.positions.dtype == torch.float32
    assert float(out.positions[0, 0, PER_FRAME, 0]) == BF16_ONE_24TH
    assert float(out.positions[0, 0, SHAPE.token_count, 0]) == float(torch.tensor(8 / FPS))


def test_temporal_region_mask_changes_only_the_denoise_mask():
    state = target_state()
    out = TemporalRegionMask(0.1, 0.5).apply(state, GRID)
    for field in ("latent", "clean_latent", "positions"):
        assert torch.equal(getattr(out, field), getattr(state, field)), field
    assert not torch.equal(out.denoise_mask, state.denoise_mask)


def area_mean_by_hand(frame: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Area downsampling: cell (i, j) averages rows floor(i·H/rows) … ceil((i+1)·H/rows) − 1
    and the same for columns."""
    height, width = frame.shape
    out = torch.empty(rows, cols, dtype=torch.float64)
    for i in range(rows):
        r0, r1 = math.floor(i * height / rows), math.ceil((i + 1) * height / rows)
        for j in range(cols):
            c0, c1 = math.floor(j * width / cols), math.ceil((j + 1) * width / cols)
            out[i, j] = frame[r0:r1, c0:c1].double().mean()
    return out


def latent_mask_by_hand(mask: torch.Tensor, shape: VideoLatentShape) -> torch.Tensor:
    """Frame 0 alone, then groups of (F − 1)/(F' − 1) frames averaged; flattened (f, h, w)."""
    frames = mask.shape[1]
    group = (frames - 1) // (shape.frames - 1)
    areas = [area_mean_by_hand(mask[0, f], shape.height, shape.width) for f in range(frames)]
    latent = [areas[0]] + [
        torch.stack(areas[1 + k * group : 1 + (k + 1) * group]).mean(dim=0)
        for k in range(shape.frames - 1)
    ]
    return torch.stack(latent).reshape(1, -1)


@pytest.mark.parametrize(
    ("pixels", "shape"),
    [
        ((17, 64, 96), VideoLatentShape(1, CHANNELS, 3, 2, 3)),  # exact 32×32 cells, groups of 8
        ((9, 5, 7), VideoLatentShape(1, CHANNELS, 2, 2, 3)),  # overlapping area windows
        ((13, 6, 6), VideoLatentShape(1, CHANNELS, 4, 3, 3)),  # groups of 4 frames
    ],
)
def test_pixel_mask_to_latent_follows_the_area_and_causal_group_formula(pixels, shape):
    torch.manual_seed(11)
    mask = torch.rand(1, *pixels)
    out = pixel_mask_to_latent(mask, shape)
    assert out.shape == (1, shape.token_count)
    expected = latent_mask_by_hand(mask, shape)  # float64; the mask is float32
    torch.testing.assert_close(out.double(), expected, rtol=FLOAT32_TOL, atol=FLOAT32_TOL)


def test_pixel_mask_first_frame_stands_alone():
    # Only frame 0 is 1: latent frame 0 is all ones, the groups of later frames all zeros.
    mask = torch.zeros(1, 17, 64, 96)
    mask[:, 0] = 1.0
    out = pixel_mask_to_latent(mask, SHAPE).view(SHAPE.frames, PER_FRAME)
    assert out[0].tolist() == [1.0] * PER_FRAME
    assert not out[1:].any()


def test_pixel_mask_weights_a_reference_video_token_for_token():
    mask = torch.zeros(1, 17, 64, 96)
    mask[..., :32, :] = 1.0  # top latent row of every frame
    weight = pixel_mask_to_latent(mask, SHAPE) * PARTIAL_STRENGTH
    out = AttentionStrength(ReferenceVideo(torch.randn(SHAPE.size)), weight).apply(
        target_state(), GRID
    )
    n = SHAPE.token_count
    top_row = torch.tensor([(t % PER_FRAME) < SHAPE.width for t in range(n)])
    cross = out.attention_mask[0, 0, n:]
    assert torch.equal(cross, torch.where(top_row, PARTIAL_STRENGTH, 0.0))


@pytest.mark.parametrize("frames", [16, 1])
def test_pixel_mask_frames_must_fit_the_latent_frames(frames):
    with pytest.raises(UsageError, match=f"{frames} frames"):
        pixel_mask_to_latent(torch.ones(1, frames, 64, 96), SHAPE)
