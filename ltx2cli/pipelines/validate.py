"""Checks a job must pass before any weight loads; each failure is one `UsageError` (exit 2).

The settings dataclass already checked sizes, frame counts, rates, steps and scales. Here: the
output path, the `--image` files and frame indices, the clip's duration against the model's
positional range, and STG blocks against the model's depth (both from the checkpoint header).
"""

from __future__ import annotations

import os
from pathlib import Path

from ltx2cli.errors import UsageError
from ltx2cli.pipelines.files import ModelFiles
from ltx2cli.pipelines.job import VIDEO_SUFFIXES, Job

#: The transformer's RoPE covers this many seconds when the config does not say.
DEFAULT_MAX_SECONDS = 20.0


def check_output(path: Path, overwrite: bool, suffixes: tuple[str, ...] = VIDEO_SUFFIXES) -> None:
    """The name has one of `suffixes`, the folder exists and is writable, and an existing
    file is only replaced when asked."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.suffix.lower() not in suffixes:
        kind = "a video" if suffixes == VIDEO_SUFFIXES else f"a {' or '.join(suffixes)}"
        raise UsageError(f"-o {path}: the output must be {kind} file", f"use a {suffixes[0]} name")
    if not folder.is_dir():
        raise UsageError(f"-o {path}: the folder {folder} does not exist", "create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"-o {path}: the folder {folder} is not writable", "pick another -o")
    if path.exists() and not overwrite:
        raise UsageError(f"-o {path} already exists", "pass --overwrite or choose another name")


def check_images(job: Job) -> None:
    """Every `--image` is a readable picture whose frame lies inside the clip."""
    from PIL import Image, UnidentifiedImageError

    frames = job.settings.num_frames
    for image in job.images:
        if not image.path.is_file():
            raise UsageError(f"--image {image.path}: no such file", "check the path")
        try:
            with Image.open(image.path) as picture:
                picture.verify()
        except (OSError, UnidentifiedImageError, SyntaxError):
            raise UsageError(
                f"--image {image.path} is not an image Pillow can read",
                "pass a PNG, JPEG or WebP file",
            ) from None
        if image.frame >= frames:
            raise UsageError(
                f"--image {image.path.name}@{image.frame}: frame {image.frame} is outside the "
                f"clip's {frames} frames",
                f"use a frame between 0 and {frames - 1}",
            )


def check_against_model(job: Job, files: ModelFiles) -> None:
    """Duration within the model's time range, STG blocks within its depth (header only)."""
    from ltx2cli.models.checkpoint import read_checkpoint

    config = read_checkpoint(files.checkpoint).require_config()["transformer"]
    s = job.settings
    max_seconds = float((config.get("positional_embedding_max_pos") or [DEFAULT_MAX_SECONDS])[0])
    if job.seconds > max_seconds and job.seconds != s.duration:  # a length of its own
        raise UsageError(
            f"--duration {job.seconds:g} s is beyond the model's {max_seconds:g} s",
            f"use --duration {max_seconds:g} or less",
        )
    if s.duration > max_seconds:
        longest = int(max_seconds * s.frame_rate - 1) // 8 * 8 + 1
        raise UsageError(
            f"{s.num_frames} frames at {s.frame_rate:g} fps last {s.duration:.1f} s, beyond the "
            f"model's {max_seconds:g} s",
            f"use --num-frames {longest} or fewer, or a higher --frame-rate",
        )
    layers = int(config.get("num_layers", 48))
    for modality in ("video", "audio"):
        if getattr(s, f"{modality}_stg_scale") == 0:
            continue
        for block in getattr(s, f"{modality}_stg_blocks"):
            if block >= layers:
                raise UsageError(
                    f"--{modality}-stg-blocks {block} is outside the model's {layers} blocks",
                    f"use blocks 0..{layers - 1}",
                )
