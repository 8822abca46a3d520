"""Video files: probing, reading frames as model tensors, and writing H.264/AAC mp4s.

Design choices:
- Written video is H.264 (libx264) yuv420p at a CRF (default 19, preset veryfast, as the
  reference's current main branch), so every player opens it; width and height must be even.
- Audio is AAC stereo at the model's rate (24 kHz for LTX-2, 48 kHz for LTX-2.3). It is cut or
  padded with silence to exactly `num_frames / fps` seconds and fed to the encoder frame by
  frame beside the video, so the two streams start at 0 and end together.
- Frames may arrive as one tensor or as an iterable of chunks (what a tiled VAE decode yields),
  so a long video never needs to be in memory twice.
- Reading decodes to RGB bytes (a quarter of the float32 size), then converts and resizes in
  batches (see `frames.py`): a few large tensor ops beat several small ones per frame. It
  seeks for a start time or start frame instead of decoding from the beginning; frame indices
  come from presentation timestamps, so they stay right after a seek.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from ltx2cli.errors import MediaError, UsageError
from ltx2cli.media._files import atomic_output, check_time_window, open_input
from ltx2cli.media.audio import AAC_SAMPLE_RATES, Audio, as_channels
from ltx2cli.media.frames import resize_and_center_crop, to_model, to_pixels

#: Container format for each output suffix we write.
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}

#: Frames converted and resized per batch when reading.
_RESIZE_BATCH = 16

DEFAULT_CRF = 19
DEFAULT_PRESET = "veryfast"
#: libx264's speed presets, fastest first.
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


@dataclass(frozen=True)
class VideoInfo:
    """Stream properties of a video file, read without decoding frames."""

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    codec: str
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    comment: str | None = None

    @property
    def has_audio(self) -> bool:
        return self.audio_sample_rate is not None


@dataclass(frozen=True)
class Video:
    """Frames `[F, 3, H, W]` float32 in [-1, 1], their rate, and where they start in the source."""

    frames: torch.Tensor
    fps: float
    start_frame: int = 0

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    @property
    def start_time(self) -> float:
        return self.start_frame / self.fps


def _fps_of(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Width, height, fps, frame count, duration and audio properties of a video file."""
    with open_input(path) as container:
        if not container.streams.video:
            raise MediaError(f"{Path(path)}: has no video stream", "pass a video file")
        stream = container.streams.video[0]
        if not (stream.codec_context.width and stream.codec_context.height):
            raise MediaError(f"{Path(path)}: cannot be decoded (no frame size in the header)")
        fps = _fps_of(stream)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / 1_000_000
        num_frames = stream.frames or round(duration * fps)
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            path=Path(path),
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=fps,
            num_frames=int(num_frames),
            duration=duration,
            codec=stream.codec_context.name,
            audio_sample_rate=audio.codec_context.sample_rate if audio else None,
            audio_channels=audio.codec_context.channels if audio else None,
            comment=container.metadata.get("comment"),
        )


def count_frames(path: str | os.PathLike[str]) -> int:
    """Frames in the first video stream, counted from its packets (right for variable frame
    rate and for containers that state no count), without decoding."""
    with open_input(path) as container:
        if not container.streams.video:
            raise MediaError(f"{Path(path)}: has no video stream", "pass a video file")
        stream = container.streams.video[0]
        count = sum(1 for packet in container.demux(stream) if packet.size)
    if count == 0:
        raise MediaError(f"{Path(path)}: has no video frames", "pass a non-empty video")
    return count


def read_video(
    path: str | os.PathLike[str],
    *,
    start_frame: int = 0,
    max_frames: int | None = None,
    start_time: float | None = None,
    max_duration: float | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = False,
) -> Video:
    """Decode frames of the first video stream as `[F, 3, H, W]` float32 in [-1, 1].

    Pick the first frame with `start_frame` or `start_time` (seconds; the first frame at or after
    it), and limit the count with `max_frames` and/or `max_duration` (seconds; the clip's
    duration F/fps never exceeds it). `size=(H, W)` scales each frame to cover H x W and
    crops the centre.
    """
    if start_time is not None and start_frame:
        raise UsageError("both start_frame and start_time were given", "pass only one of them")
    if start_frame < 0:
        raise UsageError(f"start frame {start_frame} is negative", "pass a frame index >= 0")
    if max_frames is not None and max_frames <= 0:
        raise UsageError(f"max frames {max_frames} is not positive", "pass a count >= 1")
    check_time_window(start_time, max_duration)

    with open_input(path) as container:
        if not container.streams.video:
            raise MediaError(f"{Path(path)}: has no video stream", "pass a video file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = _fps_of(stream)
        if fps <= 0:
            raise MediaError(f"{Path(path)}: frame rate is unknown", "re-encode the video")
        first = start_frame if start_time is None else math.ceil(start_time * fps - 1e-6)
        count = max_frames
        if max_duration is not None:
            by_time = max(1, math.floor(max_duration * fps + 1e-6))
            count = by_time if count is None else min(count, by_time)

        frames = list(_decode(container, stream, fps, first, count))
    if not frames:
        raise MediaError(
            f"{Path(path)}: no frames at or after frame {first} (the video is shorter)",
            "pass an earlier start",
        )
    if size is None:
        return Video(to_model(torch.stack(frames)), fps, first)
    # Batched: a handful of large tensor ops instead of several per frame.
    resized = [
        resize_and_center_crop(to_model(torch.stack(group)), *size, antialias=antialias)
        for group in (frames[i : i + _RESIZE_BATCH] for i in range(0, len(frames), _RESIZE_BATCH))
    ]
    return Video(torch.cat(resized), fps, first)


def _decode(
    container: Any,
    stream: Any,
    fps: float,
    first: int,
    count: int | None,
) -> Iterator[torch.Tensor]:
    """uint8 `[H, W, 3]` frames from index `first` on, at most `count` of them."""
    origin = stream.start_time or 0
    tb = stream.time_base
    if first > 0 and tb is not None:
        container.seek(origin + int(first / fps / tb), stream=stream, backward=True)
    index = -1
    taken = 0
    for frame in container.decode(stream):
        if frame.pts is not None and tb is not None:
            index = round(float((frame.pts - origin) * tb) * fps)
        else:
            index += 1
        if index < first:
            continue
        yield torch.from_numpy(frame.to_ndarray(format="rgb24"))
        taken += 1
        if count is not None and taken >= count:
            return


def _chunks(frames: torch.Tensor | Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """uint8 `[f, H, W, 3]` chunks from a tensor or an iterable of tensors (either layout)."""
    for chunk in [frames] if isinstance(frames, torch.Tensor) else frames:
        pixels = to_pixels(chunk)
        yield pixels.unsqueeze(0) if pixels.ndim == 3 else pixels


def write_video(
    path: str | os.PathLike[str],
    frames: torch.Tensor | Iterable[torch.Tensor],
    fps: float,
    *,
    audio: Audio | None = None,
    crf: int = DEFAULT_CRF,
    preset: str = DEFAULT_PRESET,
    comment: str | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> Path:
    """Write `frames` (and `audio`) to an H.264/AAC file at `path`, atomically.

    `frames`: float `[F, 3, H, W]` in [-1, 1] or uint8 `[F, H, W, 3]`, or an iterable of such
    chunks. `audio`: any channel count of 1 or 2 (mono is duplicated) at an AAC sample rate;
    it is cut or padded with silence to the video's duration. `comment` goes into the
    container's `comment` tag. `on_frame(n)` is called after each frame with the count so far.
    Returns `path`. On any error the target is left as it was and no temporary file remains.
    """
    import av

    target = Path(path)
    fmt = _FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"cannot write video to {target.name!r}",
            f"use one of these suffixes: {', '.join(_FORMATS)}",
        )
    if not (math.isfinite(fps) and fps > 0):
        raise UsageError(f"frame rate {fps} is not positive", "pass e.g. 24 or 25")
    if not 0 <= crf <= 51:
        raise UsageError(f"CRF {crf} is out of range", "H.264 CRF goes from 0 (lossless) to 51")
    if preset not in X264_PRESETS:
        raise UsageError(f"unknown x264 preset {preset!r}", f"use one of {', '.join(X264_PRESETS)}")
    if audio is not None and audio.sample_rate not in AAC_SAMPLE_RATES:
        raise UsageError(
            f"audio sample rate {audio.sample_rate} Hz is not an AAC rate",
            "resample to 48000 or 24000 Hz first",
        )
    rate = Fraction(fps).limit_denominator(1001)
    chunks = _chunks(frames)
    first_chunk = next(chunks, None)
    if first_chunk is None or first_chunk.shape[0] == 0:
        raise UsageError("no frames to write", "pass at least one frame")
    height, width = int(first_chunk.shape[1]), int(first_chunk.shape[2])
    if height % 2 or width % 2:
        raise UsageError(
            f"frame size {width}x{height} has an odd side",
            "H.264 yuv420p needs even width and height; crop or resize by one pixel",
        )

    try:
        with atomic_output(target) as tmp:
            _encode(tmp, fmt, first_chunk, chunks, rate, audio, crf, preset, comment, on_frame)
    except (av.error.FFmpegError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        hint = "check that the folder is writable and has free space"
        raise MediaError(f"{target}: cannot write the video ({reason})", hint) from exc
    return target


def _encode(
    tmp: Path,
    fmt: str,
    first_chunk: torch.Tensor,
    chunks: Iterator[torch.Tensor],
    rate: Fraction,
    audio: Audio | None,
    crf: int,
    preset: str,
    comment: str | None,
    on_frame: Callable[[int], None] | None,
) -> None:
    import av

    height, width = int(first_chunk.shape[1]), int(first_chunk.shape[2])
    options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
    with av.open(str(tmp), "w", format=fmt, options=options) as container:
        if comment:
            container.metadata["comment"] = comment
        stream = container.add_stream(
            "libx264", rate=rate, options={"crf": str(crf), "preset": preset}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        _tag_bt601(stream.codec_context)
        muxer = _AudioMuxer(container, audio, rate) if audio is not None else None

        written = 0
        for chunk in _prepend(first_chunk, chunks):
            if tuple(chunk.shape[1:3]) != (height, width):
                raise UsageError(
                    f"frame chunk of size {chunk.shape[2]}x{chunk.shape[1]} after {width}x{height}",
                    "all frames need the same size",
                )
            for array in chunk.numpy():
                frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                frame.pts = written
                container.mux(stream.encode(frame))
                written += 1
                if muxer is not None:
                    muxer.feed_until(written)
                if on_frame is not None:
                    on_frame(written)
        if muxer is not None:
            muxer.finish(written)
        container.mux(stream.encode(None))


def _tag_bt601(codec_context: Any) -> None:
    """Say in the bitstream which RGB->YUV matrix was used (swscale's default, BT.601 limited
    range), so players do not guess BT.709 for HD sizes and shift the colours."""
    smpte170m, limited = 6, 1  # ITU-T H.273 code points
    codec_context.colorspace = smpte170m
    codec_context.color_primaries = smpte170m
    codec_context.color_trc = smpte170m
    codec_context.color_range = limited


def _prepend(first: torch.Tensor, rest: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
    yield first
    yield from rest


class _AudioMuxer:
    """Feeds the AAC encoder just enough samples to keep pace with the video frames muxed."""

    def __init__(self, container: Any, audio: Audio, rate: Fraction) -> None:
        self.container = container
        self.sr = audio.sample_rate
        self.rate = rate
        self.wave = as_channels(audio.waveform.detach().float().cpu(), 2).clamp(-1, 1).numpy()
        self.stream = container.add_stream("aac", rate=self.sr, layout="stereo")
        self.sent = 0

    def _samples_at(self, num_frames: int) -> int:
        return round(num_frames * self.sr / self.rate)

    def feed_until(self, num_frames: int) -> None:
        import av
        import numpy as np

        end = self._samples_at(num_frames)
        if end <= self.sent:
            return
        block = self.wave[:, self.sent : end]
        if block.shape[1] < end - self.sent:  # audio shorter than video: pad with silence
            pad = np.zeros((2, end - self.sent - block.shape[1]), dtype=np.float32)
            block = np.concatenate([block, pad], axis=1)
        block = np.ascontiguousarray(block)
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
        frame.sample_rate = self.sr
        frame.pts = self.sent
        self.container.mux(self.stream.encode(frame))
        self.sent = end

    def finish(self, num_frames: int) -> None:
        self.feed_until(num_frames)
        self.container.mux(self.stream.encode(None))
