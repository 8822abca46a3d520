"""Files written by `ltx2 lora fuse` and `ltx2 quantize` run `ltx2 generate` like any checkpoint.

The demo model's own distilled LoRA is fused into its bf16 checkpoint: generating from the fused
file must give the same frames as generating from the base with the LoRA fused at load into a
bf16 build (both add the bf16 product to the bf16 weight). The fp8-cast file must generate a
clip of the requested shape.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from ltx2cli.pipelines.demo import write_demo_files

LTX2 = shutil.which("ltx2") or "ltx2"
HEIGHT, WIDTH, FRAMES, FPS = 64, 128, 9, 24.0
PROMPT = "a red fox runs through the snow"
LORA_STRENGTH = "0.5"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo_files(tmp_path_factory.mktemp("demo"), packaged_gemma=False)


def ltx2(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LTX2, *args], capture_output=True, text=True, timeout=900)


def generate(demo, model: Path, out: Path, *extra: str, dtype: str = "float32") -> np.ndarray:
    done = ltx2(
        "generate", PROMPT, "--pipeline", "one-stage", "--model", str(model),
        "--text-encoder", str(demo.text_encoder), "--height", str(HEIGHT),
        "--width", str(WIDTH), "--num-frames", str(FRAMES), "--frame-rate", str(FPS),
        "--steps", "2", "--dtype", dtype, "--video-stg-blocks", "1",
        "--audio-stg-blocks", "1", "--no-audio", "-o", str(out), "-q", *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with av.open(str(out)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_a_fused_checkpoint_generates_like_the_lora_applied_at_load(demo, tmp_path):
    fused = tmp_path / "fused.safetensors"
    lora = f"{demo.distilled_lora}:{LORA_STRENGTH}"
    done = ltx2("lora", "fuse", str(demo.checkpoint), "--lora", lora, "-o", str(fused))
    assert done.returncode == 0, done.stderr

    bf16 = {"dtype": "bfloat16"}
    from_file = generate(demo, fused, tmp_path / "fused.mp4", **bf16)
    at_load = generate(demo, demo.checkpoint, tmp_path / "at_load.mp4", "--lora", lora, **bf16)
    plain = generate(demo, demo.checkpoint, tmp_path / "plain.mp4", **bf16)

    assert from_file.shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert np.array_equal(from_file, at_load)
    assert not np.array_equal(from_file, plain)  # the LoRA did change the weights


def test_a_quantized_checkpoint_generates(demo, tmp_path):
    quantized = tmp_path / "fp8.safetensors"
    done = ltx2("quantize", str(demo.checkpoint), "--policy", "fp8-cast", "-o", str(quantized))
    assert done.returncode == 0, done.stderr
    assert quantized.stat().st_size < demo.checkpoint.stat().st_size

    frames = generate(demo, quantized, tmp_path / "fp8.mp4")
    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
