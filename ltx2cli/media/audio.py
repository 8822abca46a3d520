"""Audio waveforms: reading any container PyAV opens, resampled, as float `[channels, samples]`.

Design choices:
- Resampling and sample-format conversion are FFmpeg's (PyAV's `AudioResampler`, swresample),
  so integer formats arrive scaled to [-1, 1] and the sinc filter is FFmpeg's default.
- Mono becomes stereo by duplicating the channel (swresample would mix it in at -3 dB);
  more than two channels are downmixed to stereo by swresample's standard matrix.
- `start_time` seeks, then trims to the exact sample, so long files are not decoded from 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ltx2cli.errors import MediaError, UsageError
from ltx2cli.media._files import atomic_output, check_time_window, open_input

#: Sample rates the AAC encoder accepts (ISO/IEC 14496-3 sampling frequency table).
AAC_SAMPLE_RATES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
)


@dataclass(frozen=True)
class Audio:
    """A float32 waveform `[channels, samples]` in [-1, 1] and its sample rate in Hz."""

    waveform: torch.Tensor
    sample_rate: int

    @property
    def num_channels(self) -> int:
        return int(self.waveform.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.waveform.shape[-1])

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


def as_channels(waveform: torch.Tensor, channels: int) -> torch.Tensor:
    """Make `[C, N]` have `channels` channels: 1 -> 2 duplicates, 2 -> 1 averages."""
    if waveform.ndim == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.ndim != 2:
        raise UsageError(
            f"waveform has shape {tuple(waveform.shape)}", "expected [channels, samples]"
        )
    have = waveform.shape[0]
    if have == channels:
        return waveform
    if have == 1:
        return waveform.expand(channels, -1).contiguous()
    if channels == 1:
        return waveform.mean(dim=0, keepdim=True)
    raise UsageError(f"waveform has {have} channels", f"expected 1 or {channels}")


def _declared_end(container: Any, stream: Any, origin: float) -> float | None:
    """End of the audio on the file's timeline, where the container states it exactly.

    MP4 edit lists mark the AAC encoder's padding after the last real sample, but the decoder
    still outputs it; other formats' durations are estimates (mp3) or exact already (wav, flac).
    """
    if "mp4" not in container.format.name or stream.duration is None or stream.time_base is None:
        return None
    start = stream.start_time or 0
    return float((start + stream.duration) * stream.time_base) - origin


def read_audio(
    path: str | os.PathLike[str],
    sample_rate: int | None = None,
    *,
    channels: int | None = 2,
    start_time: float = 0.0,
    max_duration: float | None = None,
) -> Audio:
    """Decode the first audio stream of `path` (wav, mp3, flac, m4a, mp4, ...).

    `sample_rate` None keeps the file's rate; `channels` None keeps the file's channel count
    (up to two). `start_time` and `max_duration` are seconds on the file's timeline.
    """
    import av

    if sample_rate is not None and sample_rate <= 0:
        raise UsageError(f"sample rate {sample_rate} is not positive", "pass a rate in Hz")
    if channels not in (None, 1, 2):
        raise UsageError(f"channels={channels} is not supported", "use 1, 2 or None")
    check_time_window(start_time, max_duration)

    with open_input(path) as container:
        if not container.streams.audio:
            raise MediaError(f"{Path(path)}: has no audio stream", "pass a file with sound")
        stream = container.streams.audio[0]
        rate = sample_rate or stream.codec_context.sample_rate
        # Keep mono/stereo as they are (mono is duplicated below); fold surround into stereo.
        layout = "stereo" if stream.codec_context.channels > 2 else None
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        # Times are on the file's timeline, which starts at the earliest stream (an mp3's
        # decoder delay shifts it by ~25 ms; a video's audio keeps its offset to the video).
        origin = (container.start_time or 0) / 1_000_000
        end_time = _declared_end(container, stream, origin)
        if start_time > 0:
            target = int((origin + start_time) / stream.time_base)
            container.seek(target, stream=stream, backward=True)
        want = None if max_duration is None else round(max_duration * rate)

        chunks: list[torch.Tensor] = []
        lead: int | None = None  # samples from `start_time` to the first decoded one (< 0: before)
        decoded = 0
        for frame in container.decode(stream):
            if lead is None:
                first = float(frame.time) - origin if frame.time is not None else start_time
                lead = round((first - start_time) * rate)
            for out in resampler.resample(frame):
                chunks.append(torch.from_numpy(out.to_ndarray().copy()))
                decoded += out.samples
            if want is not None and lead + decoded >= want:
                break
        else:
            for out in resampler.resample(None):
                chunks.append(torch.from_numpy(out.to_ndarray().copy()))

    waveform = torch.cat(chunks, dim=-1) if chunks else torch.zeros(1, 0)
    lead = lead or 0
    if lead < 0:  # the seek landed on a packet that starts before `start_time`
        waveform = waveform[:, -lead:]
    elif lead > 0:  # this stream starts after the file does: keep it in place with silence
        waveform = torch.nn.functional.pad(waveform, (lead, 0))
    if end_time is not None:
        waveform = waveform[:, : max(0, round((end_time - start_time) * rate))]
    if want is not None:
        waveform = waveform[:, :want]
    if waveform.shape[-1] == 0:
        raise MediaError(
            f"{Path(path)}: no audio at {start_time} s (the file is shorter)",
            "pass an earlier start time",
        )
    if channels is not None:
        waveform = as_channels(waveform, channels)
    return Audio(waveform.contiguous(), int(rate))


#: Audio-only outputs by suffix: the container and codec (WAV as 16-bit PCM, as the reference).
_AUDIO_FORMATS = {".wav": ("wav", "pcm_s16le", "s16"), ".m4a": ("ipod", "aac", "fltp")}


def write_audio(path: str | os.PathLike[str], audio: Audio) -> Path:
    """Write `audio` (mono or stereo, written as stereo) to a .wav (PCM s16) or .m4a (AAC)
    file at `path`, atomically. Returns `path`."""
    import av
    import numpy as np

    target = Path(path)
    fmt = _AUDIO_FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"cannot write audio to {target.name!r}", f"use one of: {', '.join(_AUDIO_FORMATS)}"
        )
    container_format, codec, sample_format = fmt
    if codec == "aac" and audio.sample_rate not in AAC_SAMPLE_RATES:
        raise UsageError(
            f"audio sample rate {audio.sample_rate} Hz is not an AAC rate", "write a .wav instead"
        )
    wave = as_channels(audio.waveform.detach().float().cpu(), 2).clamp(-1, 1).numpy()
    if sample_format == "s16":  # interleaved 16-bit samples, rounded as PCM converters do
        data = np.round(wave.T * 32767).astype(np.int16).reshape(1, -1)
    else:
        data = np.ascontiguousarray(wave)
    try:
        with (
            atomic_output(target) as tmp,
            av.open(str(tmp), "w", format=container_format) as container,
        ):
            stream = container.add_stream(codec, rate=audio.sample_rate, layout="stereo")
            frame = av.AudioFrame.from_ndarray(data, format=sample_format, layout="stereo")
            frame.sample_rate = audio.sample_rate
            frame.pts = 0
            container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    except (av.error.FFmpegError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        hint = "check that the folder is writable and has free space"
        raise MediaError(f"{target}: cannot write the audio ({reason})", hint) from exc
    return target
