"""`ltx2 caption` with a captioner that hears (a tiny random Qwen2.5-Omni): the soundtrack is
part of what it describes; a model that only sees ignores the sound."""

from __future__ import annotations

import json

import pytest
from train_helpers import (
    AUDIO_RATE,
    CLIP_FPS,
    CLIP_FRAMES,
    moving_square,
    run_ltx2,
    tone,
    write_tiny_qwen_omni,
    write_tiny_qwen_vl,
)


def _same_frames_other_sound(folder):
    """Three clips with identical frames: a 330 Hz tone, a 550 Hz tone, no soundtrack."""
    from ltx2cli.media import Audio, write_video

    folder.mkdir()
    frames, seconds = moving_square(0), CLIP_FRAMES / CLIP_FPS
    write_video(folder / "low.mp4", frames, CLIP_FPS, audio=Audio(tone(330.0, seconds), AUDIO_RATE))
    write_video(
        folder / "high.mp4", frames, CLIP_FPS, audio=Audio(tone(550.0, seconds), AUDIO_RATE)
    )
    write_video(folder / "silent.mp4", frames, CLIP_FPS)
    return folder


def _captions(folder, model, output):
    result = run_ltx2(
        "--json", "caption", str(folder), "-o", str(output), "-m", str(model),
        "--max-new-tokens", "8", "--fps", "4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    return {r["media_path"]: r["caption"] for r in rows}


@pytest.mark.parametrize("full", [False, True], ids=["thinker", "full-omni"])
def test_omni_captions_hear_the_soundtrack(tmp_path, full):
    model = write_tiny_qwen_omni(tmp_path / "omni", full=full)
    folder = _same_frames_other_sound(tmp_path / "clips")
    captions = _captions(folder, model, folder / "captions.jsonl")
    assert set(captions) == {"low.mp4", "high.mp4", "silent.mp4"}
    assert all(c.strip() for c in captions.values())
    # Same frames: only the sound (or its absence) tells the captions apart.
    assert len(set(captions.values())) == 3


def test_a_model_that_only_sees_ignores_the_soundtrack(tmp_path):
    model = write_tiny_qwen_vl(tmp_path / "vl")
    folder = _same_frames_other_sound(tmp_path / "clips")
    captions = _captions(folder, model, folder / "captions.jsonl")
    assert len(set(captions.values())) == 1
