"""IC-LoRA video-to-video on tiny checkpoints: `ltx2 generate --reference-video` through the
installed command (an mp4 of the requested shape, stage 2 skipped or not, a mask), the
reference tokens absent from the output latents, and the bad inputs as one line, exit 2."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from ltx2cli.config.generation import GenerationSettings
from ltx2cli.pipelines.demo import write_demo_files, write_demo_lora
from ltx2cli.pipelines.ic_lora import ICLoraJob
from ltx2cli.pipelines.job import LoraInput
from ltx2cli.pipelines.run import run_job

LTX2 = shutil.which("ltx2") or "ltx2"
EXIT_USAGE = 2
HEIGHT, WIDTH, FRAMES, FPS = 128, 128, 9, 24
PROMPT = "the same street at night"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_demo_files(tmp_path_factory.mktemp("tiny"), packaged_gemma=False)


def write_ic_lora(path: Path, checkpoint: Path, factor: int | None) -> Path:
    """A tiny LoRA with the reference downscale factor in its safetensors metadata."""
    write_demo_lora(path, checkpoint, seed=7)
    metadata = {} if factor is None else {"reference_downscale_factor": str(factor)}
    save_file(load_file(str(path)), str(path), metadata=metadata)
    return path


def write_clip(path: Path, size: tuple[int, int], frames: int = FRAMES, gray: int = 0) -> Path:
    """An H.264 clip at 30000/1001 fps of moving gradients (`gray`: a constant frame level)."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
            level = gray if gray else (x + 20 * i) % 256
            image = np.broadcast_to(level, (height, width, 3)).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def ltx2(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LTX2, *args], capture_output=True, text=True, timeout=900, check=False)


def model_flags(tiny) -> list[str]:
    return [
        "--model", str(tiny.checkpoint), "--text-encoder", str(tiny.text_encoder),
        "--upsampler", str(tiny.upsampler), "--height", str(HEIGHT), "--width", str(WIDTH),
        "--num-frames", str(FRAMES), "--frame-rate", str(FPS), "--dtype", "float32",
        "--seed", "5",
    ]  # fmt: skip


def read_back(path: Path) -> tuple[int, int, int, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return (
            stream.codec_context.width,
            stream.codec_context.height,
            frames,
            float(stream.average_rate),
        )


def test_reference_video_makes_an_mp4_of_the_requested_shape(tiny, tmp_path):
    lora = write_ic_lora(tmp_path / "ic.safetensors", tiny.checkpoint, factor=2)
    reference = write_clip(tmp_path / "ref.mp4", (90, 70), frames=12)
    mask = write_clip(tmp_path / "mask.mp4", (90, 70), frames=12, gray=200)
    out = tmp_path / "v2v.mp4"
    done = ltx2("generate", PROMPT, "--reference-video", f"{reference}:0.9", "--reference-mask",
                f"{mask}:0.5", "--lora", str(lora), "-o", str(out), *model_flags(tiny))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert read_back(out) == (WIDTH, HEIGHT, FRAMES, FPS)

    half = tmp_path / "half.mp4"
    done = ltx2("generate", PROMPT, "--reference-video", str(reference), "--lora", str(lora),
                "--skip-stage-2", "-o", str(half), *model_flags(tiny))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert read_back(half) == (WIDTH // 2, HEIGHT // 2, FRAMES, FPS)


def test_reference_tokens_do_not_reach_the_output_latents(tiny, tmp_path):
    lora = write_ic_lora(tmp_path / "ic.safetensors", tiny.checkpoint, factor=1)
    reference = write_clip(tmp_path / "ref.mp4", (64, 64), frames=FRAMES)
    settings = GenerationSettings.for_pipeline(
        "ic-lora", model=str(tiny.checkpoint), height=HEIGHT, width=WIDTH, num_frames=FRAMES,
        frame_rate=FPS, dtype="float32", seed=5,
    )  # fmt: skip
    job = ICLoraJob(PROMPT, settings, tmp_path / "unused.mp4", loras=(LoraInput(str(lora)),),
                    upsampler=str(tiny.upsampler), text_encoder=str(tiny.text_encoder),
                    reference=reference)  # fmt: skip
    result = run_job(job)
    latent_frames = (FRAMES - 1) // 8 + 1
    channels = result.latents["video"].shape[1]
    # Target grids only: (F-1)/8+1 latent frames at 1/32 of the size (1/64 in stage 1).
    assert tuple(result.latents["video"].shape) == (1, channels, latent_frames, 4, 4)
    assert tuple(result.latents["stage1_video"].shape) == (1, channels, latent_frames, 2, 2)
    assert tuple(result.video.shape) == (FRAMES, 3, HEIGHT, WIDTH)


def test_reference_smaller_than_stage_one_without_metadata_is_an_error(tiny, tmp_path):
    lora = write_ic_lora(tmp_path / "ic.safetensors", tiny.checkpoint, factor=None)
    reference = write_clip(tmp_path / "small.mp4", (32, 32))
    out = tmp_path / "x.mp4"
    done = ltx2("generate", PROMPT, "--reference-video", str(reference), "--lora", str(lora),
                "-o", str(out), *model_flags(tiny))  # fmt: skip
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "no --lora states its reference_downscale_factor" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_bad_reference_inputs_are_one_line_errors(tiny, tmp_path):
    lora = write_ic_lora(tmp_path / "ic.safetensors", tiny.checkpoint, factor=2)
    other = write_ic_lora(tmp_path / "ic4.safetensors", tiny.checkpoint, factor=4)
    reference = write_clip(tmp_path / "ref.mp4", (64, 64))
    out = tmp_path / "x.mp4"
    cases = [
        (["--reference-video", str(tmp_path / "missing.mp4"), "--lora", str(lora)],
         "missing.mp4: no such file"),
        (["--reference-video", f"{reference}:1.5", "--lora", str(lora)],
         "--reference-video strength 1.5 is outside 0..1"),
        (["--reference-video", str(reference)], "--reference-video needs an IC-LoRA"),
        (["--reference-video", str(reference), "--lora", str(lora), "--lora", str(other)],
         "conflicting reference_downscale_factor"),
        (["--skip-stage-2"], "--reference-mask and --skip-stage-2 belong to IC-LoRA runs"),
    ]  # fmt: skip
    for extra, message in cases:
        done = ltx2("generate", PROMPT, *extra, "-o", str(out), *model_flags(tiny))
        assert done.returncode == EXIT_USAGE, (extra, done.stderr)
        assert message in done.stderr, (extra, done.stderr)
        assert "Traceback" not in done.stderr and not out.exists()
