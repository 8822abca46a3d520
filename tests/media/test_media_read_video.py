"""read_video / probe_video on real H.264 files written directly with PyAV."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from media_files import counter_index, tone, write_counter_video, write_frames

from ltx2cli.errors import MediaError, UsageError
from ltx2cli.media import probe_video, read_video

FPS = 24
NUM_FRAMES = 30
SIZE = (32, 48)


def frame_indices(frames: torch.Tensor) -> list[int]:
    """Which counter frame each decoded frame is, from its mean level."""
    levels = (frames.mean(dim=(1, 2, 3)) + 1) * 127.5
    return [counter_index(level) for level in levels.tolist()]


@pytest.fixture
def counter(tmp_path: Path) -> Path:
    return write_counter_video(tmp_path / "counter.mp4", NUM_FRAMES, FPS, SIZE)


def test_reads_all_frames_in_model_range(counter: Path):
    video = read_video(counter)
    assert video.frames.shape == (NUM_FRAMES, 3, *SIZE)
    assert video.frames.dtype == torch.float32
    assert video.frames.min() >= -1 and video.frames.max() <= 1
    assert video.fps == FPS
    assert video.num_frames == NUM_FRAMES
    assert video.duration == pytest.approx(NUM_FRAMES / FPS)
    assert frame_indices(video.frames) == list(range(NUM_FRAMES))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"start_frame": 5, "max_frames": 4}, range(5, 9)),
        ({"start_frame": 17}, range(17, NUM_FRAMES)),  # past two keyframes: a real seek
        ({"start_time": 0.5}, range(12, NUM_FRAMES)),  # 0.5 s * 24 fps = frame 12 exactly
        ({"start_time": 0.51}, range(13, NUM_FRAMES)),  # first frame at or after 0.51 s
        ({"max_duration": 0.25}, range(6)),  # 6 frames last exactly 0.25 s
        ({"max_duration": 0.26}, range(6)),  # a 7th would run past 0.26 s
        ({"start_time": 1.0, "max_duration": 0.2, "max_frames": 3}, range(24, 27)),
        ({"start_frame": 26, "max_frames": 10}, range(26, NUM_FRAMES)),  # cut short by the end
    ],
)
def test_frame_selection(counter: Path, kwargs: dict, expected: range):
    video = read_video(counter, **kwargs)
    assert frame_indices(video.frames) == list(expected)
    assert video.start_frame == expected[0]
    assert video.start_time == pytest.approx(expected[0] / FPS)


def test_start_past_the_end_is_a_media_error(counter: Path):
    with pytest.raises(MediaError, match=r"counter\.mp4"):
        read_video(counter, start_frame=NUM_FRAMES)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"start_frame": 2, "start_time": 0.1}, "both start_frame and start_time"),
        ({"start_frame": -1}, "start frame -1 "),
        ({"max_frames": 0}, "max frames 0 "),
        ({"max_duration": 0.0}, "max duration 0.0 s"),
        ({"start_time": -0.5}, "start time -0.5 s"),
        ({"start_time": float("inf")}, "start time inf s"),
    ],
)
def test_bad_selection_is_a_usage_error_naming_the_value(counter: Path, kwargs: dict, named: str):
    with pytest.raises(UsageError, match=re.escape(named)):
        read_video(counter, **kwargs)


# A white marker block in a black frame, and where bilinear resize + centre crop must put it.
# Exact 2x downscales (align_corners=False) average aligned 2x2 blocks, so an even-aligned block
# maps to the block of half its coordinates; the crop then shifts by (new - target) // 2.
#   landscape 64x128 -> (32, 32): scale 0.5 -> 32x64, crop left 16;
#   portrait 128x64 -> (32, 32): scale 0.5 -> 64x32, crop top 16.
# (source size, marker rows, marker cols, expected rows, expected cols)
MARKERS = [
    ((64, 128), (8, 16), (48, 64), (4, 8), (8, 16)),
    ((128, 64), (48, 64), (8, 16), (8, 16), (4, 8)),
]
TARGET = (32, 32)


def marker_frame(size, rows, cols) -> np.ndarray:
    frame = np.zeros((*size, 3), dtype=np.uint8)
    frame[rows[0] : rows[1], cols[0] : cols[1]] = 255
    return frame


@pytest.mark.parametrize(("size", "rows", "cols", "want_rows", "want_cols"), MARKERS)
def test_resize_and_center_crop_puts_marker_where_expected(
    tmp_path: Path, size, rows, cols, want_rows, want_cols
):
    frames = np.stack([marker_frame(size, rows, cols)] * 3)
    path = write_frames(tmp_path / "marker.mp4", frames, FPS)
    video = read_video(path, size=TARGET)
    assert video.frames.shape == (3, 3, *TARGET)

    inside = torch.zeros(TARGET, dtype=torch.bool)
    inside[want_rows[0] : want_rows[1], want_cols[0] : want_cols[1]] = True
    # Codec ringing blurs the edges by a pixel; compare the block's core and far background.
    core = torch.zeros(TARGET, dtype=torch.bool)
    core[want_rows[0] + 1 : want_rows[1] - 1, want_cols[0] + 1 : want_cols[1] - 1] = True
    grown = torch.nn.functional.max_pool2d(inside[None].float(), 5, 1, 2)[0].bool()
    luma = video.frames.mean(dim=1)  # [F, H, W]
    assert luma[:, core].min() > 0.8
    assert luma[:, ~grown].max() < -0.8


def test_probe_reports_streams(tmp_path: Path):
    rate = 48000
    frames = np.zeros((12, *SIZE, 3), dtype=np.uint8)
    audio = np.stack([tone(440, 0.5, rate)] * 2)
    path = write_frames(tmp_path / "av.mp4", frames, FPS, audio=audio, audio_rate=rate)
    info = probe_video(path)
    assert (info.height, info.width) == SIZE
    assert (info.fps, info.num_frames, info.codec) == (FPS, 12, "h264")
    assert info.duration == pytest.approx(12 / FPS)
    assert info.has_audio and info.audio_sample_rate == rate and info.audio_channels == 2


def test_probe_without_audio(counter: Path):
    info = probe_video(counter)
    assert not info.has_audio
    assert info.num_frames == NUM_FRAMES
