"""read_audio on wav (stdlib), mp3, flac, m4a (PyAV) and a video's audio track."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from media_files import peak_frequency, tone, write_audio_file, write_frames, write_wav

from ltx2cli.errors import MediaError, UsageError
from ltx2cli.media import read_audio

SOURCE_RATE = 44100
TONE_HZ = 440.0
SECONDS = 1.0
AMPLITUDE = 0.5
#: Lossy codecs (mp3, AAC) may shift the peak level by a few percent.
LOSSY_LEVEL = 0.05
#: Allowed error on the decoded duration: one AAC/MP3 frame at the source rate.
CODEC_FRAME_SECONDS = 1152 / SOURCE_RATE
#: A low rate for the exact-sample wav tests: sample n sits at n / 8000 s.
WAV_RATE = 8000


def make_file(tmp_path: Path, suffix: str, channels: int) -> Path:
    samples = np.stack([tone(TONE_HZ, SECONDS, SOURCE_RATE, AMPLITUDE)] * channels)
    if suffix == ".wav":
        return write_wav(tmp_path / "tone.wav", samples, SOURCE_RATE)
    if suffix == ".mp4":
        frames = np.zeros((24, 16, 16, 3), dtype=np.uint8)
        return write_frames(
            tmp_path / "tone.mp4", frames, 24, audio=samples, audio_rate=SOURCE_RATE
        )
    return write_audio_file(tmp_path / f"tone{suffix}", samples, SOURCE_RATE)


@pytest.mark.parametrize(
    ("suffix", "channels"),
    [(".wav", 1), (".wav", 2), (".flac", 1), (".mp3", 1), (".mp3", 2), (".m4a", 2), (".mp4", 2)],
)
@pytest.mark.parametrize("rate", [16000, 48000])
def test_resampled_tone_keeps_frequency_and_duration(
    tmp_path: Path, suffix: str, channels: int, rate: int
):
    audio = read_audio(make_file(tmp_path, suffix, channels), rate)
    assert audio.sample_rate == rate
    assert audio.waveform.dtype == torch.float32
    assert audio.waveform.shape[0] == 2  # mono is duplicated
    assert abs(audio.duration - SECONDS) <= CODEC_FRAME_SECONDS
    left, right = audio.waveform.numpy()
    assert peak_frequency(left, rate) == pytest.approx(TONE_HZ, abs=1.0)  # 1 Hz FFT bins
    assert np.abs(left).max() == pytest.approx(AMPLITUDE, abs=LOSSY_LEVEL)
    np.testing.assert_allclose(left, right, atol=1e-6 if channels == 1 else LOSSY_LEVEL)


def test_native_rate_wav_is_bit_exact_and_mono_is_duplicated(tmp_path: Path):
    rate = WAV_RATE
    ramp = (np.arange(rate) * 4).astype(np.float32) / 32767  # sample n holds 4n in int16
    path = write_wav(tmp_path / "ramp.wav", ramp, rate)
    audio = read_audio(path)
    assert audio.sample_rate == rate
    assert audio.waveform.shape == (2, rate)
    expected = torch.arange(rate, dtype=torch.float32) * 4 / 32768  # int16 -> float is /32768
    torch.testing.assert_close(audio.waveform[0], expected)
    torch.testing.assert_close(audio.waveform[1], expected)


@pytest.mark.parametrize(
    ("start_time", "max_duration", "first", "count"),
    [(0.25, 0.1, 2000, 800), (0.0, 0.5, 0, 4000), (0.75, None, 6000, 2000), (0.9, 1.0, 7200, 800)],
)
def test_start_time_and_max_duration_cut_exact_samples(
    tmp_path: Path, start_time: float, max_duration: float | None, first: int, count: int
):
    rate = WAV_RATE
    ramp = (np.arange(rate) * 4).astype(np.float32) / 32767
    path = write_wav(tmp_path / "ramp.wav", ramp, rate)
    audio = read_audio(path, start_time=start_time, max_duration=max_duration, channels=1)
    assert audio.waveform.shape == (1, count)
    assert round(float(audio.waveform[0, 0]) * 32768) == 4 * first
    assert round(float(audio.waveform[0, -1]) * 32768) == 4 * (first + count - 1)


def test_start_time_on_a_lossy_file_keeps_the_tone(tmp_path: Path):
    rate, start, seconds = 16000, 0.4, 0.5
    audio = read_audio(make_file(tmp_path, ".mp3", 2), rate, start_time=start, max_duration=seconds)
    assert audio.waveform.shape == (2, round(rate * seconds))
    assert peak_frequency(audio.waveform[0].numpy(), rate) == pytest.approx(TONE_HZ, abs=2.0)


def test_stereo_to_mono_averages(tmp_path: Path):
    rate, n = WAV_RATE, 800
    left, right = np.full(n, 0.5, np.float32), np.full(n, -0.25, np.float32)
    path = write_wav(tmp_path / "lr.wav", np.stack([left, right]), rate)
    stereo = read_audio(path, channels=None)
    mono = read_audio(path, channels=1)
    assert stereo.waveform.shape == (2, n)
    assert mono.waveform.shape == (1, n)
    assert float(mono.waveform.mean()) == pytest.approx(0.125, abs=1e-4)


def test_video_without_audio_is_a_media_error(tmp_path: Path):
    path = write_frames(tmp_path / "silent.mp4", np.zeros((4, 16, 16, 3), np.uint8), 24)
    with pytest.raises(MediaError, match=r"silent\.mp4: has no audio stream"):
        read_audio(path)


def test_start_past_the_end_is_a_media_error(tmp_path: Path):
    path = write_wav(tmp_path / "short.wav", tone(TONE_HZ, 0.2, WAV_RATE), WAV_RATE)
    with pytest.raises(MediaError, match=r"short\.wav"):
        read_audio(path, start_time=5.0)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"sample_rate": 0}, "sample rate 0 "),
        ({"channels": 3}, "channels=3 "),
        ({"start_time": -1.0}, "start time -1.0 s"),
        ({"start_time": float("nan")}, "start time nan s"),
        ({"max_duration": 0.0}, "max duration 0.0 s"),
    ],
)
def test_bad_arguments_are_usage_errors_naming_the_value(tmp_path: Path, kwargs: dict, named: str):
    path = write_wav(tmp_path / "a.wav", tone(TONE_HZ, 0.1, WAV_RATE), WAV_RATE)
    with pytest.raises(UsageError, match=re.escape(named)):
        read_audio(path, **kwargs)
