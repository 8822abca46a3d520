"""`ltx2 preprocess --split-scenes`: long clips cut at scene changes before bucketing.

PySceneDetect's content detector (HSV frame differences; `threshold` 27 and scenes of at
least 15 frames are its defaults, as ltx-trainer's `split_scenes.py` uses them) reads each
video through its PyAV backend. A clip with one scene stays as it is; a clip with several is
replaced by one clip per scene, written with the soundtrack cut alongside under
`OUT/scenes/<clip's folder>/<stem>-Scene-NNN.mp4` (PySceneDetect's own naming), and the
dataset item of each scene is named after that file. Its caption is the clip's; a reference
video or a video mask is cut at the same frames, an image mask holds for every scene.

Resumable: the detected ranges are kept in `<stem>.scenes.json` beside the scene clips, and
clips already written are not cut again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from ltx2cli.errors import Ltx2Error, UsageError

log = logging.getLogger(__name__)

SCENES = "scenes"
DEFAULT_THRESHOLD = 27.0
DEFAULT_MIN_FRAMES = 15
_VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


def detect_scenes(path: Path, threshold: float, min_frames: int) -> list[tuple[int, int]]:
    """`[start, end)` frame ranges of the scenes of `path` (the whole clip when none cut)."""
    try:
        from scenedetect import ContentDetector, detect
    except ImportError:
        raise UsageError(
            "--split-scenes needs PySceneDetect", "pip install 'ltx2cli[train]'"
        ) from None
    detector = ContentDetector(threshold=threshold, min_scene_len=min_frames)
    scenes = detect(str(path), detector, start_in_scene=True, backend="pyav")
    return [(start.get_frames(), end.get_frames()) for start, end in scenes]


def _cut(source: Path, target: Path, start: int, end: int) -> None:
    """Frames `[start, end)` of `source` (and its sound over the same seconds) → `target`."""
    from ltx2cli.media import probe_video, read_audio, read_video, write_video

    info = probe_video(source)
    video = read_video(source, start_frame=start, max_frames=end - start)
    audio = None
    if info.has_audio:
        seconds = video.frames.shape[0] / info.fps
        audio = read_audio(source, None, channels=2, start_time=start / info.fps,
                           max_duration=seconds)  # fmt: skip
    target.parent.mkdir(parents=True, exist_ok=True)
    write_video(target, video.frames, info.fps, audio=audio)


def split_scenes(items: list, out: Path, summary, *, threshold: float = DEFAULT_THRESHOLD,
                 min_frames: int = DEFAULT_MIN_FRAMES) -> list:  # fmt: skip
    """`items` with every multi-scene video replaced by its scenes (see the module docstring);
    a clip that cannot be read is left for the later phases to report."""
    result = []
    for item in items:
        video = item.video
        if video is None or video.suffix.lower() not in _VIDEO_SUFFIXES:
            result.append(item)
            continue
        folder = out / SCENES / item.rel.parent
        stem = item.rel.stem
        record = folder / f"{stem}.scenes.json"
        try:
            if record.is_file():
                ranges = [tuple(r) for r in json.loads(record.read_text())["scenes"]]
            else:
                ranges = detect_scenes(video, threshold, min_frames)
                folder.mkdir(parents=True, exist_ok=True)
                record.write_text(json.dumps({"source": str(video), "scenes": ranges}))
        except (Ltx2Error, OSError, ValueError, RuntimeError) as exc:
            log.info("scene detection failed for %s: %s", video, exc)
            result.append(item)
            continue
        if len(ranges) < 2:
            result.append(item)
            continue
        log.info("%s: %d scenes", video, len(ranges))
        for n, (start, end) in enumerate(ranges, start=1):
            name = f"{stem}-Scene-{n:03d}"
            try:
                clip = _cut_once(video, folder / f"{name}{video.suffix}", start, end)
                reference = item.reference and _cut_once(
                    item.reference, folder / f"{name}_reference{item.reference.suffix}", start, end
                )
                mask = item.mask
                if mask is not None and mask.suffix.lower() in _VIDEO_SUFFIXES:
                    mask = _cut_once(mask, folder / f"{name}_mask{mask.suffix}", start, end)
            except Ltx2Error as exc:
                summary.skip(f"{video} scene {n}", exc.message)
                continue
            rel = item.rel.with_name(f"{name}.pt")
            result.append(replace(item, rel=rel, video=clip, reference=reference, mask=mask))
    return result


def _cut_once(source: Path, target: Path, start: int, end: int) -> Path:
    if not target.is_file():
        _cut(source, target, start, end)
    return target
