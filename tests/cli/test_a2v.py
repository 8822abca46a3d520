"""`ltx2 a2v` on tiny checkpoints: soundtracks made with PyAV (5.1 m4a at 48 kHz, mono wav at
44.1 kHz, a video's audio track) through the installed command, read back with PyAV; and every
bad audio input as one line, exit 2, before any weights load."""

from __future__ import annotations

import math
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from ltx2cli.cli import app as app_module
from ltx2cli.pipelines.demo import write_demo_files
from ltx2cli.pipelines.ledger import ModelLedger

LTX2 = shutil.which("ltx2") or "ltx2"
EXIT_USAGE = 2
HEIGHT, WIDTH, FPS = 64, 128, 24
PROMPT = "a drummer in a garage"
LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_demo_files(tmp_path_factory.mktemp("tiny"), packaged_gemma=False)


def write_audio(path: Path, seconds: float, channels: int, rate: int, codec: str) -> Path:
    layout = LAYOUTS[channels]
    t = np.arange(round(seconds * rate)) / rate
    wave = (0.25 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        fmt = "fltp" if codec == "aac" else "s16"
        planes = np.tile(wave, (channels, 1))
        if fmt == "s16":
            planes = np.round(planes * 32767).astype(np.int16).T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(planes, format=fmt, layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def write_silent_video(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def model_flags(tiny) -> list[str]:
    return [
        "--model", str(tiny.checkpoint), "--text-encoder", str(tiny.text_encoder),
        "--upsampler", str(tiny.upsampler), "--distilled-lora", str(tiny.distilled_lora),
        "--height", str(HEIGHT), "--width", str(WIDTH), "--frame-rate", str(FPS),
        "--steps", "2", "--dtype", "float32", "--video-stg-blocks", "1",
        "--audio-stg-blocks", "1",
    ]  # fmt: skip


def read_back(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0].codec_context
        info = {
            "fps": float(video.average_rate),
            "size": (video.codec_context.width, video.codec_context.height),
            "audio": (audio.sample_rate, audio.channels),
            "frames": sum(1 for _ in container.decode(video=0)),
        }
    return info


def test_5_1_m4a_at_48k_sets_the_duration_and_is_muxed_at_its_own_rate(tiny, tmp_path):
    song = write_audio(tmp_path / "song.m4a", 0.8, channels=6, rate=48000, codec="aac")
    out = tmp_path / "song.mp4"
    done = subprocess.run(
        [LTX2, "a2v", str(song), PROMPT, *model_flags(tiny), "-o", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    info = read_back(out)
    # 0.8 s at 24 fps = 19.2 frames → the largest 8k+1 below: 17.
    assert info["frames"] == 17 and info["size"] == (WIDTH, HEIGHT) and info["fps"] == FPS
    assert info["audio"] == (48000, 2)  # the original rate, downmixed to stereo


def test_mono_wav_with_audio_start_and_num_frames(tiny, tmp_path):
    voice = write_audio(tmp_path / "voice.wav", 2.0, channels=1, rate=44100, codec="pcm_s16le")
    out = tmp_path / "voice.mp4"
    done = subprocess.run(
        [LTX2, "a2v", str(voice), PROMPT, "--audio-start", "1.2", "--num-frames", "9",
         *model_flags(tiny), "-o", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    info = read_back(out)
    assert info["frames"] == 9 and info["audio"] == (44100, 2)


def bad_cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    short = write_audio(tmp / "short.wav", 0.5, channels=2, rate=44100, codec="pcm_s16le")
    silent = write_silent_video(tmp / "silent.mp4")
    text = tmp / "notes.txt"
    text.write_text("not audio")
    return {
        "missing": ([str(tmp / "nope.wav")], "no such audio file"),
        "no audio stream": ([str(silent)], "has no audio stream"),
        "not media": ([str(text)], str(text)),
        "negative start": ([str(short), "--audio-start", "-1"], "--audio-start -1 is negative"),
        "start after end": ([str(short), "--audio-start", "3"], "no audio at 3"),
        "longer than audio": ([str(short), "--num-frames", "25"],
                              "needs 1.04 s of audio; the audio has 0.50 s"),
        "overwrite input": ([str(short), "-o", str(short)], "is the input audio"),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case",
    [
        "missing", "no audio stream", "not media", "negative start", "start after end",
        "longer than audio", "overwrite input",
    ],
)  # fmt: skip
def test_bad_audio_is_one_line_exit_2_before_loading(case, tiny, tmp_path, capsys, monkeypatch):
    def no_loading(*_args, **_kwargs):
        raise AssertionError("weights loaded before validation finished")

    monkeypatch.setattr(ModelLedger, "_build", no_loading)
    args, message = bad_cases(tmp_path)[case]
    out = [] if "-o" in args else ["-o", str(tmp_path / "out.mp4")]
    with pytest.raises(SystemExit) as info:
        app_module.main(["a2v", args[0], PROMPT, *args[1:], *model_flags(tiny), *out])
    err = capsys.readouterr().err
    assert info.value.code == EXIT_USAGE, err
    first, *rest = err.splitlines()
    assert first.startswith("Error: ") and message in first
    assert all(line.startswith("Hint: ") for line in rest)
