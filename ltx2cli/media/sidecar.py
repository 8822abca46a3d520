"""JSON sidecars: `NAME.json` beside `NAME.mp4`, holding the settings that made the video.

The writer is atomic like the video writer, so a sidecar is either complete or absent. Values
that JSON lacks are written as strings (paths) or lists (tuples); NaN and infinity are refused,
so every sidecar is strict JSON that any parser reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ltx2cli.errors import MediaError
from ltx2cli.media._files import atomic_output


def sidecar_path(video_path: str | os.PathLike[str]) -> Path:
    """`out/fox.mp4` -> `out/fox.json`."""
    return Path(video_path).with_suffix(".json")


def write_sidecar(video_path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Write `data` as indented JSON to the sidecar of `video_path`; return the sidecar's path."""
    target = sidecar_path(video_path)
    text = json.dumps(dict(data), indent=2, ensure_ascii=False, allow_nan=False, default=str)
    with atomic_output(target) as tmp, open(tmp, "x", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return target


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a sidecar, given either the video's path or the sidecar's own path."""
    p = sidecar_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MediaError(f"{p}: no such sidecar file", "it is written next to each video") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MediaError(f"{p}: cannot be read ({exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MediaError(f"{p}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(data, dict):
        raise MediaError(f"{p}: expected a JSON object, got {type(data).__name__}")
    return data
