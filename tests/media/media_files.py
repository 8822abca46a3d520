"""Real media files for the media tests, written directly with PyAV, the stdlib `wave` module
and Pillow, independently of the code under test."""

from __future__ import annotations

import math
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

#: Gray level of frame i in a "counter" video: distinct and far apart even after H.264.
COUNTER_BASE, COUNTER_STEP = 20, 7
#: Keyframe interval of the counter video, so seeking has to land mid-stream.
COUNTER_GOP = 8


def counter_level(index: int) -> int:
    return COUNTER_BASE + COUNTER_STEP * index


def counter_index(mean_level: float) -> int:
    """Invert `counter_level` from a decoded frame's mean 0..255 value."""
    return round((mean_level - COUNTER_BASE) / COUNTER_STEP)


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def peak_frequency(samples: np.ndarray, rate: int) -> float:
    """Frequency of the largest FFT bin of a 1-D signal (Hann window)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def write_frames(
    path: Path,
    frames: np.ndarray,
    fps: float,
    *,
    audio: np.ndarray | None = None,
    audio_rate: int | None = None,
    gop: int | None = None,
) -> Path:
    """uint8 `[F, H, W, 3]` frames (and optional stereo float audio) as H.264/AAC."""
    options = {"crf": "10", "preset": "ultrafast"}
    if gop:
        options.update({"g": str(gop), "keyint_min": str(gop), "bf": "0"})
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps), options=options)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if audio is not None:
            astream = container.add_stream("aac", rate=audio_rate, layout="stereo")
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio is not None:
            aframe = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(audio, dtype=np.float32), format="fltp", layout="stereo"
            )
            aframe.sample_rate, aframe.pts = audio_rate, 0
            container.mux(astream.encode(aframe))
            container.mux(astream.encode(None))
    return path


def write_counter_video(path: Path, num_frames: int, fps: float, size: tuple[int, int]) -> Path:
    """Frame i is uniform gray `counter_level(i)`."""
    levels = np.array([counter_level(i) for i in range(num_frames)], dtype=np.uint8)
    frames = np.broadcast_to(levels[:, None, None, None], (num_frames, *size, 3))
    return write_frames(path, frames, fps, gop=COUNTER_GOP)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """float `[C, N]` (or `[N]`) samples as 16-bit PCM, with the stdlib."""
    samples = np.atleast_2d(samples)
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(samples.shape[0])
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.T.tobytes())
    return path


_AUDIO_CODECS = {".mp3": ("libmp3lame", "fltp"), ".flac": ("flac", "s16"), ".m4a": ("aac", "fltp")}


def write_audio_file(path: Path, samples: np.ndarray, rate: int) -> Path:
    """float `[C, N]` samples in the codec the suffix implies (mp3, flac, m4a)."""
    samples = np.atleast_2d(samples).astype(np.float32)
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    codec, fmt = _AUDIO_CODECS[path.suffix]
    # s16 is packed: one plane of interleaved samples.
    pcm = np.round(samples.T * 32767).astype(np.int16).reshape(1, -1)
    data = pcm if fmt == "s16" else samples
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
