"""Every reader turns a missing, empty or undecodable file into a one-line MediaError."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from media_files import tone, write_wav

from ltx2cli.errors import MediaError
from ltx2cli.media import (
    load_image,
    prepare_conditioning_image,
    probe_video,
    read_audio,
    read_video,
)

READERS: dict[str, Callable[[Path], object]] = {
    "read_video": read_video,
    "probe_video": probe_video,
    "read_audio": read_audio,
    "load_image": load_image,
    "prepare_conditioning_image": lambda path: prepare_conditioning_image(path, 32, 32),
}


def missing(tmp_path: Path) -> Path:
    return tmp_path / "nowhere.mp4"


def empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.mp4"
    path.touch()
    return path


def garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(bytes(range(256)) * 8)
    return path


def truncated_png(tmp_path: Path) -> Path:
    path = tmp_path / "cut.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return path


def directory(tmp_path: Path) -> Path:
    path = tmp_path / "folder.mp4"
    path.mkdir()
    return path


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (missing, "no such file"),
        (empty, "file is empty"),
        (garbage, "cannot be|decoding failed"),
        (truncated_png, "cannot be|decoding failed|no audio stream"),  # a PNG has no sound
        (directory, "not a regular file"),
    ],
)
def test_bad_files_raise_media_error_naming_the_path(
    tmp_path: Path, reader: str, make: Callable[[Path], Path], reason: str
):
    path = make(tmp_path)
    with pytest.raises(MediaError, match=reason) as info:
        READERS[reader](path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message


@pytest.mark.parametrize("reader", ["read_video", "probe_video"])
def test_audio_only_file_has_no_video_stream(tmp_path: Path, reader: str):
    path = write_wav(tmp_path / "sound.wav", tone(440, 0.1, 8000), 8000)
    with pytest.raises(MediaError, match=r"sound\.wav: has no video stream"):
        READERS[reader](path)


def test_truncated_video_is_a_media_error(tmp_path: Path):
    # A real mp4 cut in half loses its index (moov at the end): not decodable.
    from media_files import write_frames

    path = write_frames(tmp_path / "full.mp4", np.zeros((24, 32, 32, 3), np.uint8), 24)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"cut\.mp4"):
        read_video(cut)
