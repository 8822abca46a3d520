"""Helpers of the training tests: synthetic clips and running the `ltx2` command."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import torch

CLIP_FPS = 8.0
CLIP_FRAMES = 17
CLIP_SIZE = (64, 96)  # (H, W)
AUDIO_RATE = 48000
TONES_HZ = (330.0, 440.0, 550.0)
BUCKET = "96x64x9"
# Words the tiny tokenizer knows, so every caption encodes differently.
CAPTIONS = (
    "a red fox runs in the snow with wind sound",
    "a blue bird flies in the sky with music",
    "a green car in the city street with voice",
)
SILENT_CAPTION = "a white cat walks at night"


def moving_square(index: int, frames: int = CLIP_FRAMES, size=CLIP_SIZE) -> torch.Tensor:
    """uint8 `[F, H, W, 3]`: a coloured square crossing a grey background."""
    h, w = size
    video = torch.full((frames, h, w, 3), 60, dtype=torch.uint8)
    colour = torch.tensor(
        [(200, 40, 40), (40, 200, 40), (40, 40, 200)][index % 3], dtype=torch.uint8
    )
    for f in range(frames):
        x = (f * 4 + index * 10) % (w - 16)
        video[f, 20:36, x : x + 16] = colour
    return video


def tone(freq: float, seconds: float) -> torch.Tensor:
    t = torch.arange(round(seconds * AUDIO_RATE)) / AUDIO_RATE
    return (0.3 * torch.sin(2 * math.pi * freq * t)).unsqueeze(0).repeat(2, 1)


def run_ltx2(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 900):
    return subprocess.run(
        [sys.executable, "-m", "ltx2cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
