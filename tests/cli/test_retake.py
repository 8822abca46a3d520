"""`ltx2 retake` on tiny checkpoints: phone-like sources made with PyAV (odd sizes,
30000/1001 fps, 5.1 / mono audio, no audio) through the installed command, read back with
PyAV; and every bad source or window as one line, exit 2, before any weights load."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from ltx2cli.cli import app as app_module
from ltx2cli.models.tiny import tiny_config
from ltx2cli.pipelines.demo import write_demo_files
from ltx2cli.pipelines.ledger import ModelLedger

LTX2 = shutil.which("ltx2") or "ltx2"
EXIT_USAGE = 2
NTSC = Fraction(30000, 1001)
TINY_AUDIO_RATE = tiny_config()["vocoder"]["bwe"]["output_sampling_rate"]
PROMPT = "the dog jumps over the fence"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_demo_files(tmp_path_factory.mktemp("tiny"), packaged_gemma=False)


def make_clip(
    path: Path,
    frames: int,
    width: int,
    height: int,
    fps: Fraction = NTSC,
    *,
    channels: int | None = 2,
    rate: int = 48000,
) -> Path:
    """An H.264 clip (yuv420p, so even sides) with an AAC track of `channels` (None: silent)."""
    rng = np.random.default_rng(0)
    layouts = {1: "mono", 2: "stereo", 6: "5.1"}
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = None
        if channels is not None:
            audio = container.add_stream("aac", rate=rate, layout=layouts[channels])
        for _ in range(frames):
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            samples = round(frames / float(fps) * rate)
            t = np.arange(samples) / rate
            wave = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
            planes = np.tile(wave, (channels, 1))
            frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layouts[channels])
            frame.sample_rate = rate
            for packet in audio.encode(frame):
                container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path


def model_flags(tiny) -> list[str]:
    return [
        "--model", str(tiny.checkpoint), "--text-encoder", str(tiny.text_encoder),
        "--steps", "2", "--dtype", "float32", "--video-stg-blocks", "1",
        "--audio-stg-blocks", "1",
    ]  # fmt: skip


def ltx2(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LTX2, *args], capture_output=True, text=True, timeout=900)


def read_back(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = {
            "fps": stream.average_rate,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "audio": None,
        }
        if container.streams.audio:
            a = container.streams.audio[0].codec_context
            info["audio"] = (a.sample_rate, a.channels)
        info["frames"] = sum(1 for _ in container.decode(video=0))
    return info


def test_odd_ntsc_phone_clip_with_5_1_audio_is_fitted_and_retaken(tiny, tmp_path):
    source = make_clip(tmp_path / "phone.mp4", 20, 100, 70, channels=6)
    before = source.read_bytes()
    out = tmp_path / "retake.mp4"
    done = ltx2(
        "retake", str(source), PROMPT, "--start", "0.1", "--end", "0.4", "--fit", "trim",
        *model_flags(tiny), "-o", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--fit trim: trimmed 20 → 17 frames, cropped 100x70 → 96x64" in done.stderr
    info = read_back(out)
    # 17 = the largest 8k+1 ≤ 20; sides cropped down to multiples of 32; fps kept.
    assert info["frames"] == 17 and info["size"] == (96, 64)
    assert info["fps"] == NTSC
    assert info["audio"] == (TINY_AUDIO_RATE, 2)
    assert done.stdout.strip() == str(out)
    assert source.read_bytes() == before  # the input is never touched


def test_foley_on_a_mono_44k_clip_writes_video_and_new_audio(tiny, tmp_path):
    source = make_clip(tmp_path / "mono.mp4", 17, 96, 64, Fraction(25), channels=1, rate=44100)
    out = tmp_path / "foley.mp4"
    flags = [*model_flags(tiny), "-o", str(out)]
    done = ltx2("retake", str(source), PROMPT, "--what", "audio", *flags)
    assert done.returncode == 0, done.stderr
    info = read_back(out)
    assert info["frames"] == 17 and info["size"] == (96, 64) and info["fps"] == 25
    assert info["audio"] == (TINY_AUDIO_RATE, 2)


def test_a_source_without_audio_gets_a_soundtrack(tiny, tmp_path):
    source = make_clip(tmp_path / "silent.mp4", 17, 64, 64, Fraction(24), channels=None)
    out = tmp_path / "with-sound.mp4"
    done = ltx2(
        "retake", str(source), PROMPT, "--start", "0", "--end", "0.5", "--distilled",
        *model_flags(tiny), "-o", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert read_back(out)["audio"] == (TINY_AUDIO_RATE, 2)


# -- validation: one line, exit 2, nothing loaded ----------------------------------------------


def bad_cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    good = make_clip(tmp / "good.mp4", 17, 64, 64, Fraction(24))  # 17/24 = 0.708 s
    odd = make_clip(tmp / "odd.mp4", 20, 100, 70)
    sound = tmp / "sound.wav"
    with av.open(str(sound), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        silence = np.zeros((1, 1600), np.int16)
        frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    g = str(good)
    return {
        "missing source": ([str(tmp / "no.mp4"), "--start", "0", "--end", "0.5"], "no such video"),
        "audio file": ([str(sound), "--start", "0", "--end", "0.5"], "has no video stream"),
        "no window": ([g], "retake needs a window"),
        "half window": ([g, "--start", "0.1"], "--end is missing"),
        "start after end": ([g, "--start", "0.5", "--end", "0.2"], "is not before --end"),
        "outside": ([g, "--start", "0.2", "--end", "3"], "outside the clip's 0.708 s"),
        "negative": ([g, "--start", "-1", "--end", "0.3"], "outside the clip"),
        "too short": ([g, "--start", "0.1", "--end", "0.2"], "shorter than one latent frame"),
        "does not fit": ([str(odd), "--start", "0", "--end", "0.5"],
                         "nearest: 17 or 25 frames at 96x64"),
        "bad fit": ([str(odd), "--start", "0", "--end", "0.5", "--fit", "squash"],
                    "not a fit mode"),
        "bad what": ([g, "--what", "colour", "--start", "0", "--end", "0.5"], "--what 'colour'"),
        "overwrite source": ([g, "--start", "0", "--end", "0.5", "-o", g], "is the source"),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case",
    [
        "missing source", "audio file", "no window", "half window", "start after end",
        "outside", "negative", "too short", "does not fit", "bad fit", "bad what",
        "overwrite source",
    ],
)  # fmt: skip
def test_bad_source_or_window_is_one_line_exit_2_before_loading(
    case, tiny, tmp_path, capsys, monkeypatch
):
    def no_loading(*_args, **_kwargs):
        raise AssertionError("weights loaded before validation finished")

    monkeypatch.setattr(ModelLedger, "_build", no_loading)
    args, message = bad_cases(tmp_path)[case]
    out = [] if "-o" in args else ["-o", str(tmp_path / "out.mp4")]
    with pytest.raises(SystemExit) as info:
        app_module.main(["retake", args[0], PROMPT, *args[1:], *model_flags(tiny), *out])
    err = capsys.readouterr().err
    assert info.value.code == EXIT_USAGE, err
    first, *rest = err.splitlines()
    assert first.startswith("Error: ") and message in first
    assert all(line.startswith("Hint: ") for line in rest)
