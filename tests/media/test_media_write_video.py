"""write_video: stream properties read back independently with PyAV, sync, values, atomicity."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media_files import peak_frequency, tone

from ltx2cli.errors import MediaError, UsageError
from ltx2cli.media import Audio, read_audio, write_video

HEIGHT, WIDTH = 32, 48
AAC_FRAME = 1024  # samples per AAC frame
TONE_HZ = 440.0
#: An RGB colour in [-1, 1] and the 0..255 value each channel must decode to (x * 127.5 + 127.5).
COLOUR = (0.6, -0.2, -0.8)
COLOUR_LEVELS = (204.0, 102.0, 25.5)
#: ITU-T H.273 code point for BT.601 (SMPTE 170M), the matrix swscale's RGB -> YUV uses.
SMPTE170M = 6
#: Max mean deviation (0..255 levels) after yuv420p conversion and H.264 at the default CRF.
COLOUR_TOLERANCE = 4.0


def constant_frames(num_frames: int, colour=COLOUR) -> torch.Tensor:
    return torch.tensor(colour).view(1, 3, 1, 1).expand(num_frames, 3, HEIGHT, WIDTH).clone()


@pytest.mark.parametrize(("fps", "sample_rate", "num_frames"), [(24, 24000, 25), (25, 48000, 33)])
def test_stream_properties_and_sync(tmp_path: Path, fps: int, sample_rate: int, num_frames: int):
    waveform = torch.from_numpy(tone(TONE_HZ, 2.0, sample_rate))[None]  # mono, longer than video
    path = write_video(
        tmp_path / "out.mp4",
        constant_frames(num_frames),
        fps,
        audio=Audio(waveform, sample_rate),
        comment="seed=7",
    )

    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264"
        assert video.codec_context.pix_fmt == "yuv420p"
        assert video.codec_context.colorspace == SMPTE170M
        assert video.codec_context.color_primaries == SMPTE170M
        assert (video.width, video.height) == (WIDTH, HEIGHT)
        assert video.average_rate == fps
        assert video.frames == num_frames
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.channels == 2
        assert audio.codec_context.sample_rate == sample_rate
        assert container.metadata["comment"] == "seed=7"
        video_seconds = float(video.duration * video.time_base)
        audio_seconds = float(audio.duration * audio.time_base)
        assert video_seconds == pytest.approx(num_frames / fps)
        assert abs(audio_seconds - video_seconds) <= AAC_FRAME / sample_rate
        assert video.start_time == 0 and audio.start_time == 0


@pytest.mark.parametrize("layout", ["float", "bfloat16", "uint8", "chunks"])
def test_constant_colour_reads_back(tmp_path: Path, layout: str):
    frames = constant_frames(9)
    if layout == "bfloat16":  # what the VAE emits in a bf16 pipeline
        frames = frames.to(torch.bfloat16)
    elif layout == "uint8":
        frames = torch.tensor(COLOUR_LEVELS).round().to(torch.uint8).expand(9, HEIGHT, WIDTH, 3)
    elif layout == "chunks":
        frames = iter(frames.split(4))  # what a tiled VAE decode yields
    path = write_video(tmp_path / "c.mp4", frames, 24)

    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 9
    means = np.stack(decoded).reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(means, COLOUR_LEVELS, atol=COLOUR_TOLERANCE)


def test_audio_onset_stays_in_sync_with_video(tmp_path: Path):
    fps, rate, num_frames, onset_frame = 24, 48000, 49, 24  # onset at exactly 1.0 s
    frames = torch.full((num_frames, 3, HEIGHT, WIDTH), -1.0)
    frames[onset_frame:] = 1.0  # black until the onset, then white
    onset = onset_frame / fps
    silence = np.zeros(round(onset * rate), dtype=np.float32)
    waveform = np.concatenate([silence, tone(TONE_HZ, num_frames / fps - onset, rate)])
    path = write_video(
        tmp_path / "sync.mp4", frames, fps, audio=Audio(torch.from_numpy(waveform)[None], rate)
    )

    with av.open(str(path)) as container:
        white = [f.time for f in container.decode(video=0) if f.to_ndarray().mean() > 128]
    assert white[0] == pytest.approx(onset)
    sound = read_audio(path, rate).waveform[0].numpy()
    loud = np.flatnonzero(np.abs(sound) > 0.25)
    assert abs(loud[0] / rate - onset) < 2 / TONE_HZ  # within one or two cycles of the tone
    assert peak_frequency(sound[loud[0] :], rate) == pytest.approx(TONE_HZ, abs=2)


@pytest.mark.parametrize("audio_seconds", [0.3, 3.0])
def test_audio_is_fitted_to_video_duration(tmp_path: Path, audio_seconds: float):
    fps, rate, num_frames = 24, 24000, 17
    waveform = torch.from_numpy(np.stack([tone(TONE_HZ, audio_seconds, rate)] * 2))
    path = write_video(
        tmp_path / "fit.mp4", constant_frames(num_frames), fps, audio=Audio(waveform, rate)
    )
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        assert abs(float(audio.duration * audio.time_base) - num_frames / fps) <= AAC_FRAME / rate


def test_failure_mid_write_keeps_old_target_and_leaves_no_temp_file(tmp_path: Path):
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"previous video")

    def chunks():
        yield constant_frames(3)
        raise RuntimeError("decoder crashed")

    with pytest.raises(RuntimeError, match="decoder crashed"):
        write_video(target, chunks(), 24)
    assert target.read_bytes() == b"previous video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4"]


def test_success_replaces_existing_target(tmp_path: Path):
    target = tmp_path / "new.mp4"
    target.write_bytes(b"stale")
    write_video(target, constant_frames(2), 24)
    with av.open(str(target)) as container:
        assert container.streams.video[0].frames == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.mp4"]


@pytest.mark.parametrize(
    ("name", "frames", "kwargs", "message"),
    [
        ("odd.mp4", torch.zeros(2, 3, 31, 48), {}, "31"),
        ("odd.mp4", torch.zeros(2, 3, 32, 47), {}, "47"),
        ("clip.avi", torch.zeros(2, 3, 32, 48), {}, "clip.avi"),
        ("rate.mp4", torch.zeros(2, 3, 32, 48), {"fps": 0.0}, "frame rate"),
        ("crf.mp4", torch.zeros(2, 3, 32, 48), {"crf": 60}, "CRF 60"),
        ("layout.mp4", torch.zeros(2, 32, 48, 3), {}, "shape"),
        ("empty.mp4", torch.zeros(0, 3, 32, 48), {}, "no frames"),
        ("preset.mp4", torch.zeros(2, 3, 32, 48), {"preset": "turbo"}, "turbo"),
        (
            "sr.mp4",
            torch.zeros(2, 3, 32, 48),
            {"audio": Audio(torch.zeros(2, 100), 12345)},
            "12345",
        ),
    ],
)
def test_bad_arguments_are_usage_errors(
    tmp_path: Path, name: str, frames: torch.Tensor, kwargs: dict, message: str
):
    kwargs = {"fps": 24.0, **kwargs}
    with pytest.raises(UsageError, match=message):
        write_video(tmp_path / name, frames, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_progress_callback_and_fractional_rate(tmp_path: Path):
    ntsc = 24000 / 1001
    seen: list[int] = []
    path = write_video(tmp_path / "ntsc.mp4", constant_frames(5), ntsc, on_frame=seen.append)
    assert seen == [1, 2, 3, 4, 5]
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == Fraction(24000, 1001)
        assert math.isclose(float(container.streams.video[0].average_rate), ntsc)


@pytest.mark.parametrize(("suffix", "format_name"), [(".mov", "mov"), (".mkv", "matroska")])
def test_other_containers(tmp_path: Path, suffix: str, format_name: str):
    audio = Audio(torch.from_numpy(tone(TONE_HZ, 1.0, 24000))[None], 24000)
    path = write_video(tmp_path / f"clip{suffix}", constant_frames(12), 24, audio=audio)
    with av.open(str(path)) as container:
        assert format_name in container.format.name
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"


def test_unwritable_location_is_a_media_error(tmp_path: Path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    with pytest.raises(MediaError, match="not-a-folder"):
        write_video(blocker / "out.mp4", constant_frames(2), 24)
