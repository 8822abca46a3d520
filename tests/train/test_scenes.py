"""`ltx2 preprocess --split-scenes`: a clip with two different halves becomes two items."""

from __future__ import annotations

import json

import torch
from train_helpers import AUDIO_RATE, CLIP_FPS, run_preprocess, tone

HALF = 24  # frames per scene (3 s at 8 fps), longer than PySceneDetect's 15-frame minimum
SIZE = (64, 96)


def _two_scene_clip(folder):
    """`folder` with one clip: a red half then a blue half (a hard cut at frame HALF), with a
    tone throughout."""
    from ltx2cli.media import Audio, write_video

    folder.mkdir()
    frames = torch.empty((2 * HALF, *SIZE, 3), dtype=torch.uint8)
    frames[:HALF] = torch.tensor((200, 30, 30), dtype=torch.uint8)
    frames[HALF:] = torch.tensor((30, 30, 200), dtype=torch.uint8)
    for f in range(2 * HALF):  # a little motion inside each scene
        frames[f, 10:20, f : f + 10] = 128
    path = folder / "long.mp4"
    write_video(path, frames, CLIP_FPS, audio=Audio(tone(440.0, 2 * HALF / CLIP_FPS), AUDIO_RATE))
    path.with_suffix(".txt").write_text("a red fox runs in the snow")
    return folder


def test_split_scenes_cuts_at_the_scene_change(tmp_path, tiny_model):
    from ltx2cli.media import probe_video, read_video

    data, out = _two_scene_clip(tmp_path / "data"), tmp_path / "out"
    result = run_preprocess(data, out, tiny_model, "--split-scenes")
    assert result.returncode == 0, result.stderr

    names = sorted(p.name for p in (out / "latents").glob("*.pt"))
    assert names == ["long-Scene-001.pt", "long-Scene-002.pt"]
    for folder in ("conditions", "audio_latents"):
        assert sorted(p.name for p in (out / folder).glob("*.pt")) == names

    scenes = sorted((out / "scenes").glob("long-Scene-*.mp4"))
    assert [probe_video(p).num_frames for p in scenes] == [HALF, HALF]
    assert all(probe_video(p).has_audio for p in scenes)
    red, blue = (read_video(p).frames.mean(dim=(0, 2, 3)) for p in scenes)  # per channel
    assert red[0] > red[2] and blue[2] > blue[0]

    # A second run reuses the detected scenes and the cut clips.
    rerun = run_preprocess(data, out, tiny_model, "--split-scenes")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["written"] == {}


def test_without_split_scenes_the_clip_stays_whole(tmp_path, tiny_model):
    data, out = _two_scene_clip(tmp_path / "data"), tmp_path / "out"
    result = run_preprocess(data, out, tiny_model, "--skip-audio")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "latents").glob("*.pt")) == ["long.pt"]
