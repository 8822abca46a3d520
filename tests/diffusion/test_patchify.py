"""Latent sizes, patchifiers and RoPE position grids: the reference's token order and
[start, end) bounds."""

from __future__ import annotations

import pytest
import torch

from ltx2cli.diffusion.patchify import (
    AudioLatentShape,
    VideoLatentShape,
    audio_latent_frames,
    audio_latent_frames_for_video,
    audio_latent_shape,
    audio_positions,
    frames_for_duration,
    patchify_audio,
    patchify_video,
    snap_frames,
    unpatchify_audio,
    unpatchify_video,
    video_latent_shape,
    video_positions,
)
from ltx2cli.errors import UsageError

FRAMES, HEIGHT, WIDTH = 121, 512, 768
LATENT_FRAMES, LATENT_H, LATENT_W = 16, 16, 24
SECONDS_TOL = 1e-6  # float32 seconds up to ~5 s
VAE_TIME, VAE_SPACE = 8, 32  # pixels per latent of the video VAE
MEL_HOP, SAMPLE_RATE, MEL_PER_LATENT = 160, 16000, 4


def token_index(f: int, h: int, w: int) -> int:
    return (f * LATENT_H + h) * LATENT_W + w


def test_video_latent_shape_for_121_frames_at_512x768():
    shape = video_latent_shape(FRAMES, HEIGHT, WIDTH)
    assert shape.size == (1, 128, LATENT_FRAMES, LATENT_H, LATENT_W)
    assert shape.token_count == 6144
    assert shape.tokens_per_frame == LATENT_H * LATENT_W
    assert shape.pixel_size() == (FRAMES, HEIGHT, WIDTH)


@pytest.mark.parametrize(
    ("frames", "height", "width", "message", "hint"),
    [
        (120, 512, 768, "num_frames: 120", "use 113 or 121"),
        (0, 512, 768, "num_frames: 0", "use 1 or 9"),
        (121, 500, 768, "height: 500", "use 480 or 512"),
        (121, 512, 16, "width: 16", "use 32 or 64"),
    ],
)
def test_invalid_video_sizes_name_the_parameter_value_and_the_fix(
    frames, height, width, message, hint
):
    with pytest.raises(UsageError) as err:
        video_latent_shape(frames, height, width)
    assert message in err.value.message
    assert err.value.hint == hint


@pytest.mark.parametrize(
    ("duration", "fps", "frames"), [(5.0, 24.0, 113), (5.05, 24.0, 121), (4.0, 25.0, 97)]
)
def test_frames_for_duration_snap_down_to_8k_plus_1(duration, fps, frames):
    # round(5·24) = 120 → 113; round(5.05·24) = 121; round(4·25) = 100 → 97
    assert frames_for_duration(duration, fps) == frames
    assert (frames - 1) % 8 == 0


def test_snap_frames():
    assert [snap_frames(n) for n in (1, 8, 9, 120, 121)] == [1, 1, 9, 113, 121]
    with pytest.raises(UsageError):
        frames_for_duration(0.0, 24.0)


def test_two_stage_sizes_need_multiples_of_64():
    with pytest.raises(UsageError, match="multiple of 64"):
        video_latent_shape(FRAMES, 544, WIDTH, multiple=64)
    assert video_latent_shape(FRAMES, 576, WIDTH, multiple=64).height == 18


@pytest.mark.parametrize(
    ("frames", "fps", "expected"),
    [(121, 24.0, 126), (121, 25.0, 121), (97, 24.0, 101), (1, 24.0, 1)],
)
def test_audio_latent_length_from_video_duration(frames, fps, expected):
    # round(frames / fps · 25): 121/24 s = 5.0417 s → 126
    assert audio_latent_frames_for_video(frames, fps) == expected


def test_audio_latent_length_from_duration_and_shape():
    assert audio_latent_frames(5.0) == 125
    assert audio_latent_shape(126).size == (1, 8, 126, 16)
    with pytest.raises(UsageError):
        audio_latent_frames_for_video(FRAMES, 0.0)


def test_video_patchify_is_frame_major_and_invertible():
    latent = torch.randn(2, 4, 3, 5, 6)
    tokens = patchify_video(latent)
    assert tokens.shape == (2, 3 * 5 * 6, 4)
    f, h, w = 2, 3, 4
    assert torch.equal(tokens[1, (f * 5 + h) * 6 + w], latent[1, :, f, h, w])
    assert torch.equal(unpatchify_video(tokens, VideoLatentShape.of(latent)), latent)


def test_audio_patchify_is_channel_major_and_invertible():
    latent = torch.randn(2, 8, 7, 16)
    tokens = patchify_audio(latent)
    assert tokens.shape == (2, 7, 128)
    c, t, m = 5, 3, 11
    assert tokens[1, t, c * 16 + m] == latent[1, c, t, m]
    assert torch.equal(unpatchify_audio(tokens, AudioLatentShape.of(latent)), latent)


def test_unpatchify_rejects_a_token_count_that_does_not_fill_the_shape():
    with pytest.raises(ValueError):
        unpatchify_video(torch.zeros(1, 10, 4), VideoLatentShape(1, 4, 1, 3, 3))


@pytest.mark.parametrize("fps", [24.0, 25.0])
def test_video_positions_for_121_frames_at_512x768(fps):
    positions = video_positions(video_latent_shape(FRAMES, HEIGHT, WIDTH), fps)
    assert positions.shape == (1, 3, 6144, 2)
    assert positions.dtype == torch.float32
    time, y, x = positions[0]
    # Causal fix: latent frame 0 is pixel frame [0, 1), frame f ≥ 1 is [8f − 7, 8f + 1).
    expected_frames = {0: (0, 1), 1: (1, 9), 2: (9, 17), 15: (113, 121)}
    for f, (start, end) in expected_frames.items():
        i = token_index(f, 7, 11)
        assert time[i].tolist() == pytest.approx([start / fps, end / fps], abs=SECONDS_TOL)
    i = token_index(5, 3, 23)
    assert y[i].tolist() == [96.0, 128.0]
    assert x[i].tolist() == [736.0, 768.0]
    assert float(time[:, 1].max()) == pytest.approx(FRAMES / fps, abs=SECONDS_TOL)


def test_video_positions_without_causal_fix_use_whole_latent_frames():
    positions = video_positions(VideoLatentShape(1, 128, 2, 1, 1), 8.0, causal_fix=False)
    assert positions[0, 0].tolist() == [[0.0, 1.0], [1.0, 2.0]]


def test_audio_positions_in_seconds():
    positions = audio_positions(audio_latent_shape(126))
    assert positions.shape == (1, 1, 126, 2)
    # t covers [max(0, 4t − 3)·0.01, (4t + 1)·0.01) s
    for t in (0, 1, 2, 125):
        start, end = max(0, 4 * t - 3) * 0.01, (4 * t + 1) * 0.01
        assert positions[0, 0, t].tolist() == pytest.approx([start, end], abs=SECONDS_TOL)
    shifted = audio_positions(audio_latent_shape(3), shift=1)
    assert shifted[0, 0, 0].tolist() == pytest.approx([0.01, 0.05], abs=SECONDS_TOL)


def test_positions_repeat_over_the_batch():
    positions = audio_positions(audio_latent_shape(4, batch=3))
    assert positions.shape == (3, 1, 4, 2)
    assert torch.equal(positions[0], positions[2])


def test_positions_are_integer_bounds_divided_once_in_float32():
    # The reference divides whole pixel-frame / mel-hop bounds by fps (resp. 16000) in
    # float32, so each time is the correctly rounded quotient, not a product with 1/fps.
    fps = 24.0
    positions = video_positions(VideoLatentShape(1, 128, 16, 1, 1), fps)
    starts = [max(0, 8 * f - 7) for f in range(16)]
    ends = [8 * f + 1 for f in range(16)]
    expected = torch.tensor([starts, ends], dtype=torch.float32).T / fps
    assert torch.equal(positions[0, 0], expected)
    audio = audio_positions(audio_latent_shape(126))
    hops = [[max(0, 4 * t - 3) * 160, (4 * t + 1) * 160] for t in range(126)]
    assert torch.equal(audio[0, 0], torch.tensor(hops, dtype=torch.float32) / 16000)


@pytest.mark.parametrize(("fps", "audio_latents"), [(24.0, 126), (25.0, 121)])
def test_every_position_of_121_frames_at_512x768(fps, audio_latents):
    """All 6144 video tokens (time, y, x) and the matching audio tokens, by hand from
    the causal bounds: [max(0, 8f − 7), 8f + 1)/fps s, [32h, 32h + 32) px, [32w, 32w + 32) px;
    audio t covers [max(0, 4t − 3), 4t + 1) mel hops of 160/16000 s."""
    video = video_positions(video_latent_shape(FRAMES, HEIGHT, WIDTH), fps)
    t, px = VAE_TIME, VAE_SPACE
    rows = [
        ((max(0, t * f - t + 1), t * f + 1), (px * h, px * (h + 1)), (px * w, px * (w + 1)))
        for f in range(LATENT_FRAMES)
        for h in range(LATENT_H)
        for w in range(LATENT_W)
    ]
    time, y, x = (torch.tensor(axis, dtype=torch.float32) for axis in zip(*rows, strict=True))
    assert torch.equal(video[0], torch.stack([time / fps, y, x]))
    frames = audio_latent_frames_for_video(FRAMES, fps)
    assert frames == audio_latents
    audio = audio_positions(audio_latent_shape(frames))
    m = MEL_PER_LATENT
    hops = [(max(0, m * i - m + 1) * MEL_HOP, (m * i + 1) * MEL_HOP) for i in range(frames)]
    assert torch.equal(audio[0, 0], torch.tensor(hops, dtype=torch.float32) / SAMPLE_RATE)
