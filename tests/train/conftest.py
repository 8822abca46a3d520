"""Shared training fixtures: a tiny checkpoint and Gemma, and a folder of real short clips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_helpers import (
    AUDIO_RATE,
    CAPTIONS,
    CLIP_FPS,
    CLIP_FRAMES,
    CLIP_SIZE,
    SILENT_CAPTION,
    TONES_HZ,
    moving_square,
    run_preprocess,
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
    """Three clips with tones and captions (the first with an inpainting mask), one silent
    clip and one broken file."""
    from PIL import Image

    from ltx2cli.media import Audio, write_video

    root = tmp_path_factory.mktemp("clips")
    seconds = CLIP_FRAMES / CLIP_FPS
    for i, freq in enumerate(TONES_HZ):
        path = root / f"clip{i}.mp4"
        write_video(path, moving_square(i), CLIP_FPS, audio=Audio(tone(freq, seconds), AUDIO_RATE))
        path.with_suffix(".txt").write_text(CAPTIONS[i])
    mask = torch.zeros(CLIP_SIZE, dtype=torch.uint8)
    mask[:, : CLIP_SIZE[1] // 2] = 255  # inpaint the left half
    Image.fromarray(mask.numpy()).save(root / "clip0_mask.png")
    write_video(root / "silent.mp4", moving_square(3), CLIP_FPS)
    (root / "silent.txt").write_text(SILENT_CAPTION)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    (root / "broken.txt").write_text("never encoded")
    return root


@pytest.fixture(scope="session")
def dataset(tmp_path_factory, tiny_model, clips) -> Path:
    """The clips preprocessed once with the real CLI (shared by the training tests)."""
    out = tmp_path_factory.mktemp("dataset") / ".precomputed"
    result = run_preprocess(clips, out, tiny_model)
    assert result.returncode == 0, result.stderr
    return out
