"""Validation sampling during `ltx2 train`: samples per step through the generate pipelines."""

from __future__ import annotations

from pathlib import Path

import torch
from train_helpers import run_ltx2, validating_config, write_yaml

WIDTH, HEIGHT, FRAMES, FPS = 64, 32, 9, 8.0
PROMPT = "a red fox runs in the snow"


def _run_config(tmp_path: Path, dataset: Path, tiny_model, **validation) -> Path:
    validation = {"samples": [{"prompt": PROMPT}], "video_dims": [WIDTH, HEIGHT, FRAMES],
                  "frame_rate": FPS, "inference_steps": 2, **validation}  # fmt: skip
    config = validating_config(
        dataset, tiny_model, tmp_path / "run", validation,
        optimization={"steps": 4, "learning_rate": 1e-2},
    )  # fmt: skip
    return write_yaml(tmp_path / "c.yaml", config)


def test_validation_writes_samples_every_interval_with_the_trained_lora(
    tmp_path, dataset, tiny_model
):
    from ltx2cli.media import probe_video, read_video

    result = run_ltx2("train", str(_run_config(tmp_path, dataset, tiny_model)))
    assert result.returncode == 0, result.stderr

    samples = tmp_path / "run" / "samples"
    names = sorted(p.name for p in samples.glob("*.mp4"))
    # step 0 (before training), then every 2 optimizer steps; i counts from 1
    assert names == ["step_000000_1.mp4", "step_000002_1.mp4", "step_000004_1.mp4"]
    for name in names:
        info = probe_video(samples / name)
        assert (info.width, info.height, info.num_frames) == (WIDTH, HEIGHT, FRAMES)
        assert info.fps == FPS
        assert info.has_audio  # the flexible strategy generates audio
    # The LoRA starts at B = 0 (the base model) and moves: later samples differ from step 0.
    first = read_video(samples / "step_000000_1.mp4").frames.float()
    last = read_video(samples / "step_000004_1.mp4").frames.float()
    assert first.shape == last.shape
    assert not torch.equal(first, last)


def test_validation_step_zero_matches_generate_with_the_base_model(tmp_path, dataset, tiny_model):
    from ltx2cli.media import read_video

    checkpoint, gemma = tiny_model
    config = _run_config(tmp_path, dataset, tiny_model, interval=100, seed=5)
    result = run_ltx2("train", str(config), "--set", "optimization.steps=1")
    assert result.returncode == 0, result.stderr
    sample = tmp_path / "run" / "samples" / "step_000000_1.mp4"

    out = tmp_path / "generated.mp4"
    generated = run_ltx2(
        "generate", PROMPT, "--pipeline", "one-stage",
        "--model", str(checkpoint), "--text-encoder", str(gemma),
        "--width", str(WIDTH), "--height", str(HEIGHT), "--num-frames", str(FRAMES),
        "--frame-rate", str(FPS), "--steps", "2", "--seed", "5", "--dtype", "float32",
        "--device", "cpu", "--video-cfg-scale", "3", "--audio-cfg-scale", "7",
        "--video-stg-scale", "1", "--audio-stg-scale", "1",
        "--video-stg-blocks", "0", "--audio-stg-blocks", "0",
        "--video-rescale-scale", "0.7", "--audio-rescale-scale", "0.7",
        "--video-modality-scale", "3", "--audio-modality-scale", "3",
        "-o", str(out),
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    assert torch.equal(read_video(sample).frames, read_video(out).frames)


def test_unsupported_validation_condition_is_a_one_line_error(tmp_path, dataset, tiny_model):
    sample = {
        "prompt": "a red fox",
        "conditions": [{"type": "prefix", "video": "x.mp4", "num_frames": 9}],
    }
    config = _run_config(tmp_path, dataset, tiny_model, samples=[sample])
    result = run_ltx2("train", str(config))
    assert result.returncode == 2
    assert "validation.samples[0].conditions[0]" in result.stderr
    assert "prefix" in result.stderr and "validation.interval=null" in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
