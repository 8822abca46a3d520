"""Opening media inputs with one-line errors, and writing outputs atomically.

Every reader goes through `open_input` so a missing, empty or undecodable file is a `MediaError`
that names the path; every writer goes through `atomic_output` so a failed write never leaves a
half-written file and never touches an existing target.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ltx2cli.errors import MediaError, UsageError


def check_input(path: str | os.PathLike[str]) -> Path:
    """Return `path` as a Path if it names a non-empty regular file, else raise MediaError."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: no such file", "check the path")
    if not p.is_file():
        raise MediaError(f"{p}: not a regular file", "pass a media file, not a directory")
    if p.stat().st_size == 0:
        raise MediaError(f"{p}: file is empty", "the file may be an interrupted download or copy")
    return p


def check_time_window(start_time: float | None, max_duration: float | None) -> None:
    """Raise UsageError unless `start_time` (seconds, None = 0) is finite and >= 0 and
    `max_duration` (seconds, None = to the end) is > 0."""
    if start_time is not None and (start_time < 0 or not math.isfinite(start_time)):
        raise UsageError(f"start time {start_time} s is not valid", "pass seconds >= 0")
    if max_duration is not None and not max_duration > 0:
        raise UsageError(f"max duration {max_duration} s is not positive", "pass seconds > 0")


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip().rstrip(".") or type(exc).__name__


@contextlib.contextmanager
def open_input(path: str | os.PathLike[str]) -> Iterator[Any]:
    """Open a media file with PyAV; decoding errors inside the block become MediaError too."""
    import av

    p = check_input(path)
    try:
        container = av.open(str(p), "r")
    except av.error.FFmpegError as exc:
        raise MediaError(
            f"{p}: cannot be decoded ({_reason(exc)})", "is it a video or audio file?"
        ) from exc
    try:
        yield container
    except av.error.FFmpegError as exc:
        hint = "the file may be truncated or corrupt"
        raise MediaError(f"{p}: decoding failed ({_reason(exc)})", hint) from exc
    finally:
        container.close()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`: on success it replaces `path`, on failure it goes.

    The temporary name keeps the target's suffix so tools that look at extensions still work, and
    starts with a dot so directory listings and globs such as `*.mp4` skip it. The file is created
    by the caller (not here), so it gets the normal umask permissions.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{secrets.token_hex(4)}.part{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
