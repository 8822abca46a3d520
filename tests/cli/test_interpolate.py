"""`ltx2 interpolate` on tiny checkpoints through the installed command: an mp4 through two
keyframes, a batch file, and bad keyframes as one line, exit 2, before any weights load."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from ltx2cli.cli import app as app_module
from ltx2cli.models.tiny import tiny_config
from ltx2cli.pipelines.demo import write_demo_files
from ltx2cli.pipelines.ledger import ModelLedger

LTX2 = shutil.which("ltx2") or "ltx2"
HEIGHT, WIDTH, FRAMES, FPS = 64, 128, 17, 24
TINY_AUDIO_RATE = tiny_config()["vocoder"]["bwe"]["output_sampling_rate"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_demo_files(tmp_path_factory.mktemp("tiny"), packaged_gemma=False)


def picture(path: Path, value: int) -> Path:
    Image.fromarray(np.full((50, 90, 3), value, np.uint8)).save(path)
    return path


def model_flags(tiny) -> list[str]:
    return [
        "--model", str(tiny.checkpoint), "--text-encoder", str(tiny.text_encoder),
        "--upsampler", str(tiny.upsampler), "--distilled-lora", str(tiny.distilled_lora),
        "--height", str(HEIGHT), "--width", str(WIDTH), "--num-frames", str(FRAMES),
        "--frame-rate", str(FPS), "--steps", "2", "--dtype", "float32",
        "--video-stg-blocks", "1", "--audio-stg-blocks", "1",
    ]  # fmt: skip


def ltx2(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LTX2, *args], capture_output=True, text=True, timeout=900)


def read_back(path: Path) -> tuple:
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0].codec_context
        size = (video.codec_context.width, video.codec_context.height)
        frames = sum(1 for _ in container.decode(video=0))
        return frames, size, float(video.average_rate), (audio.sample_rate, audio.channels)


def test_first_and_last_frame_interpolation_writes_the_clip(tiny, tmp_path):
    a, b = picture(tmp_path / "a.png", 20), picture(tmp_path / "b.png", 230)
    out = tmp_path / "between.mp4"
    done = ltx2(
        "interpolate", "a flower opens", "--keyframe", f"{a}@0", "--keyframe", f"{b}@16:0.9",
        *model_flags(tiny), "-o", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert read_back(out) == (FRAMES, (WIDTH, HEIGHT), FPS, (TINY_AUDIO_RATE, 2))


def test_batch_runs_each_item_and_reports_a_bad_one(tiny, tmp_path):
    a, b = picture(tmp_path / "a.png", 20), picture(tmp_path / "b.png", 230)
    items = tmp_path / "shots.jsonl"
    items.write_text(
        json.dumps({"prompt": "dawn", "images": [f"{a}@0", f"{b}@16"]})
        + "\n"
        + json.dumps({"prompt": "dusk", "images": [f"{b}@40"]})
        + "\n"
    )
    template = str(tmp_path / "{index}.mp4")
    done = ltx2("interpolate", "--prompts-file", str(items), *model_flags(tiny), "-o", template)
    assert done.returncode == 1, done.stderr
    assert read_back(tmp_path / "1.mp4")[0] == FRAMES
    assert not (tmp_path / "2.mp4").exists()
    assert "item 2:" in done.stderr and "outside the clip's 17 frames" in done.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{a}@17", "frame 17 is outside the clip's 17 frames"),
        ("{a}@3:1.5", "strength 1.5"),
        ("{missing}@0", "no such file"),
    ],
)
def test_bad_keyframe_is_one_line_exit_2(spec, message, tiny, tmp_path, capsys, monkeypatch):
    def no_loading(*_args, **_kwargs):
        raise AssertionError("weights loaded before validation finished")

    monkeypatch.setattr(ModelLedger, "_build", no_loading)
    a = picture(tmp_path / "a.png", 20)
    keyframe = spec.format(a=a, missing=tmp_path / "nope.png")
    args = ["interpolate", "x", "--keyframe", keyframe, *model_flags(tiny)]
    with pytest.raises(SystemExit) as info:
        app_module.main([*args, "-o", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    first, *rest = err.splitlines()
    assert first.startswith("Error: ") and message in first
    assert all(line.startswith("Hint: ") for line in rest)


def test_no_keyframe_is_an_error(tiny, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        app_module.main(["interpolate", "x", *model_flags(tiny), "-o", str(tmp_path / "o.mp4")])
    assert info.value.code == 2
    assert "interpolation needs keyframes" in capsys.readouterr().err
