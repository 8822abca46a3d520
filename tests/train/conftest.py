"""Shared training fixtures: a tiny checkpoint and Gemma, and a folder of real short clips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_helpers import (
    AUDIO_RATE,
    BUCKET,
    CAPTIONS,
    CLIP_FPS,
    CLIP_FRAMES,
    SILENT_CAPTION,
    TONES_HZ,
    moving_square,
    run_ltx2,
    tone,
)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, gemma dir): a float32 tiny LTX-2.3 checkpoint and a tiny Gemma 3."""
    from ltx2cli.models.tiny import write_tiny_checkpoint, write_tiny_gemma

    root = tmp_path_factory.mktemp("tiny-model")
    checkpoint = write_tiny_checkpoint(root / "tiny.safetensors", dtype=torch.float32)
    gemma = write_tiny_gemma(root / "gemma")
    return checkpoint, gemma


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    """Three clips with tones and captions, one silent clip and one broken file."""
    from ltx2cli.media import Audio, write_video

    root = tmp_path_factory.mktemp("clips")
    seconds = CLIP_FRAMES / CLIP_FPS
    for i, freq in enumerate(TONES_HZ):
        path = root / f"clip{i}.mp4"
        write_video(path, moving_square(i), CLIP_FPS, audio=Audio(tone(freq, seconds), AUDIO_RATE))
        path.with_suffix(".txt").write_text(CAPTIONS[i])
    write_video(root / "silent.mp4", moving_square(3), CLIP_FPS)
    (root / "silent.txt").write_text(SILENT_CAPTION)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    (root / "broken.txt").write_text("never encoded")
    return root


@pytest.fixture(scope="session")
def dataset(tmp_path_factory, tiny_model, clips) -> Path:
    """The clips preprocessed once with the real CLI (shared by the training tests)."""
    checkpoint, gemma = tiny_model
    out = tmp_path_factory.mktemp("dataset") / ".precomputed"
    result = run_ltx2(
        "--json",
        "preprocess",
        str(clips),
        "-o",
        str(out),
        "-m",
        str(checkpoint),
        "-t",
        str(gemma),
        "-b",
        BUCKET,
    )
    assert result.returncode == 0, result.stderr
    return out
