"""`ltx2 upscale` on tiny checkpoints through the installed command: twice the size, the same
frames and fps, the source's audio kept (or dropped); bad inputs as one line, exit 2."""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_demo_files(tmp_path_factory.mktemp("tiny"), packaged_gemma=False)


def make_clip(path: Path, frames: int, width: int, height: int, fps, rate: int | None) -> Path:
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = None if rate is None else container.add_stream("aac", rate=rate, layout="stereo")
        for _ in range(frames):
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            wave = np.zeros((2, round(frames / float(fps) * rate)), np.float32)
            frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="stereo")
            frame.sample_rate = rate
            for packet in [*audio.encode(frame), *audio.encode()]:
                container.mux(packet)
    return path


def model_flags(tiny) -> list[str]:
    return [
        "--model", str(tiny.checkpoint), "--text-encoder", str(tiny.text_encoder),
        "--upsampler", str(tiny.upsampler), "--dtype", "float32",
    ]  # fmt: skip


def read_back(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0].codec_context if container.streams.audio else None
        return {
            "size": (video.codec_context.width, video.codec_context.height),
            "fps": video.average_rate,
            "frames": sum(1 for _ in container.decode(video=0)),
            "audio": (audio.sample_rate, audio.channels) if audio else None,
        }


def test_upscale_doubles_the_size_and_keeps_frames_fps_and_audio(tiny, tmp_path):
    fps = Fraction(30000, 1001)
    source = make_clip(tmp_path / "clip.mp4", 17, 96, 64, fps, 48000)
    out = tmp_path / "clip-x2.mp4"
    done = subprocess.run(
        [LTX2, "upscale", str(source), *model_flags(tiny), "-o", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    info = read_back(out)
    assert info["size"] == (192, 128) and info["frames"] == 17 and info["fps"] == fps
    assert info["audio"] == (48000, 2)


def test_upscale_of_an_odd_clip_with_fit_and_no_audio(tiny, tmp_path):
    source = make_clip(tmp_path / "odd.mp4", 12, 70, 40, Fraction(25), 44100)
    out = tmp_path / "odd-x2.mp4"
    done = subprocess.run(
        [LTX2, "upscale", str(source), "waves", "--fit", "pad", "--no-audio", "--strength", "0.5",
         *model_flags(tiny), "-o", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--fit pad: padded 12 → 17 frames, cropped 70x40 → 64x32" in done.stderr
    info = read_back(out)
    assert info["size"] == (128, 64) and info["frames"] == 17 and info["audio"] is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strength", "1.5", "--fit", "trim"], "--strength 1.5 is outside 0..1"),
        (["--fit", "zoom"], "not a fit mode"),
    ],
)
def test_bad_upscale_input_is_one_line_exit_2(extra, message, tiny, tmp_path, capsys, monkeypatch):
    def no_loading(*_args, **_kwargs):
        raise AssertionError("weights loaded before validation finished")

    monkeypatch.setattr(ModelLedger, "_build", no_loading)
    source = make_clip(tmp_path / "c.mp4", 12, 70, 40, Fraction(25), None)
    args = ["upscale", str(source), *extra, *model_flags(tiny), "-o", str(tmp_path / "o.mp4")]
    with pytest.raises(SystemExit) as info:
        app_module.main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert err.startswith("Error: ") and message in err.splitlines()[0]


def test_an_off_grid_clip_without_fit_names_the_nearest_shape(tiny, tmp_path, capsys):
    source = make_clip(tmp_path / "c.mp4", 12, 70, 40, Fraction(25), None)
    with pytest.raises(SystemExit) as info:
        app_module.main(["upscale", str(source), *model_flags(tiny)])
    assert info.value.code == 2
    first = capsys.readouterr().err.splitlines()[0]
    assert "12 frames at 70x40" in first and "nearest: 9 or 17 frames at 64x32" in first
