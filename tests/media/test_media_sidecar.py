"""JSON sidecars beside videos: naming, round trip, atomic writes and read errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltx2cli.errors import MediaError
from ltx2cli.media import read_sidecar, sidecar_path, write_sidecar

SETTINGS = {
    "prompt": "a fox runs through snow — at dusk",
    "seed": 42,
    "guidance": {"video_cfg": 3.0, "audio_cfg": 7.0},
    "loras": [{"name": "camera-dolly-left", "strength": 0.8}],
}


def test_round_trip_next_to_the_video(tmp_path: Path):
    video = tmp_path / "out" / "fox.mp4"
    written = write_sidecar(video, {**SETTINGS, "model_path": tmp_path / "m.safetensors"})
    assert written == tmp_path / "out" / "fox.json" == sidecar_path(video)
    assert sorted(p.name for p in written.parent.iterdir()) == ["fox.json"]

    expected = {**SETTINGS, "model_path": str(tmp_path / "m.safetensors")}
    assert read_sidecar(video) == expected  # by the video's path
    assert read_sidecar(written) == expected  # or by its own


def test_rewrite_replaces_whole_file(tmp_path: Path):
    video = tmp_path / "fox.mp4"
    write_sidecar(video, SETTINGS)
    write_sidecar(video, {"seed": 1})
    assert read_sidecar(video) == {"seed": 1}


def test_invalid_json_value_leaves_old_sidecar(tmp_path: Path):
    video = tmp_path / "fox.mp4"
    write_sidecar(video, SETTINGS)
    with pytest.raises(ValueError):
        write_sidecar(video, {"loss": float("nan")})  # NaN is not JSON
    assert read_sidecar(video) == SETTINGS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fox.json"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "no such sidecar"), ("{not json", "not valid JSON"), ("[1, 2]", "JSON object")],
)
def test_read_errors_name_the_file(tmp_path: Path, content: str | None, reason: str):
    path = tmp_path / "fox.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(MediaError, match=reason) as info:
        read_sidecar(tmp_path / "fox.mp4")
    assert str(path) in str(info.value)
