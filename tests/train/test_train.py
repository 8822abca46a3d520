"""`ltx2 train` end to end on the tiny model: outputs, overfitting, Ctrl-C + resume, DDP."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from train_helpers import RANK, run_ltx2
from train_helpers import train_config as _config
from train_helpers import write_yaml as _write

from ltx2cli.train.config import parse_config

LORA_KEY_PREFIX = "diffusion_model.transformer_blocks."
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _metrics(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


def test_train_writes_official_lora_metrics_plot_and_retention(tmp_path, dataset, tiny_model):
    checkpoint, _ = tiny_model
    run_dir = tmp_path / "run"
    config = _write(tmp_path / "c.yaml", _config(dataset, checkpoint, run_dir))
    result = run_ltx2("--json", "train", str(config))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["steps"] == 6

    files = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    # keep_last_n 1: the step-3 checkpoint is gone, the final one (step 6) stays.
    assert files == [
        "lora_weights_step_00006.safetensors",
        "training_state_step_00006.json",
        "training_state_step_00006.safetensors",
    ]
    lora = run_dir / "checkpoints" / "lora_weights_step_00006.safetensors"
    tensors = _tensors(lora)
    assert tensors and all(k.startswith(LORA_KEY_PREFIX) for k in tensors)
    assert all(k.endswith((".lora_A.weight", ".lora_B.weight")) for k in tensors)
    assert "diffusion_model.transformer_blocks.0.attn1.to_out.0.lora_A.weight" in tensors
    assert "diffusion_model.transformer_blocks.0.audio_to_video_attn.to_q.lora_B.weight" in tensors
    a = tensors["diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight"]
    assert a.shape[0] == RANK and a.dtype == torch.float32
    with safe_open(str(lora), "pt") as f:
        meta = f.metadata()
    assert meta["ltx2_lora_rank"] == str(RANK) and meta["ltx2_lora_alpha"] == str(RANK)
    assert meta["ltx2_lora_targets"] == "to_q,to_k,to_v,to_out.0"
    assert meta["ltx2_base_generation"] == "2.3"

    rows = _metrics(run_dir)
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    # linear schedule: lr_k = lr·(1 − 0.9·k/steps)
    assert float(rows[2]["learning_rate"]) == pytest.approx(1e-3 * (1 - 0.9 * 3 / 6))
    assert (run_dir / "loss.png").read_bytes().startswith(PNG_MAGIC)
    (run_dir / "loss.png").unlink()
    plotted = run_ltx2("train", "plot", str(run_dir))
    assert plotted.returncode == 0, plotted.stderr
    assert (run_dir / "loss.png").read_bytes().startswith(PNG_MAGIC)
    assert (run_dir / "training_config.yaml").is_file()

    # The LoRA loads through the model layer's LoRA fusion (what `generate --lora` uses):
    # W' = W + B·A for a trained projection.
    from ltx2cli.models.loading import load_component

    base = load_component(checkpoint, "transformer", dtype=torch.float32)
    fused = load_component(checkpoint, "transformer", dtype=torch.float32, loras=[lora])
    name = "transformer_blocks.1.attn2.to_v"
    b = tensors[f"diffusion_model.{name}.lora_B.weight"]
    a = tensors[f"diffusion_model.{name}.lora_A.weight"]
    expected = base.get_submodule(name).weight + b @ a
    torch.testing.assert_close(fused.get_submodule(name).weight, expected, rtol=1e-2, atol=1e-2)
    assert not torch.equal(fused.get_submodule(name).weight, base.get_submodule(name).weight)


def test_a_run_is_not_overwritten_unless_asked(tmp_path, dataset, tiny_model):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    config = _write(tmp_path / "c.yaml", _config(dataset, tiny_model[0], run_dir))
    result = run_ltx2("train", str(config))
    assert result.returncode == 2
    assert "holds another run" in result.stderr and "--overwrite" in result.stderr


def _one_sample_dataset(dataset: Path, target: Path) -> Path:
    for folder in ("latents", "audio_latents", "conditions"):
        (target / folder).mkdir(parents=True)
        shutil.copy(dataset / folder / "clip0.pt", target / folder / "clip0.pt")
    return target


def test_loss_falls_when_overfitting_one_batch(tmp_path, dataset, tiny_model):
    from ltx2cli.train.trainer import train

    data = _one_sample_dataset(dataset, tmp_path / "one")
    steps = 40
    config = parse_config(
        _config(
            data,
            tiny_model[0],
            tmp_path / "run",
            lora={"rank": 8, "alpha": 8},
            optimization={"steps": steps, "learning_rate": 1e-2, "scheduler_type": "constant"},
            checkpoints={"interval": None},
            flow_matching={
                "timestep_sampling_mode": "uniform",
                "timestep_sampling_params": {"min_value": 0.5, "max_value": 0.5},
            },
        )
    )
    result = train(config)
    losses = [float(r["loss"]) for r in _metrics(result.run_dir)]
    assert len(losses) == steps and all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.65 * first, (first, last)


def _wait_for_rows(run_dir: Path, rows: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.stderr.read()}")
        path = run_dir / "metrics.csv"
        if path.is_file() and len(path.read_text().splitlines()) > rows:
            return
        time.sleep(0.2)
    raise AssertionError("training made no progress")


def test_ctrl_c_saves_and_resume_matches_an_uninterrupted_run(tmp_path, dataset, tiny_model):
    steps = 8
    sections = {
        "optimization": {"steps": steps},
        "checkpoints": {"interval": None, "keep_last_n": -1},
    }
    straight = tmp_path / "straight"
    config = _write(tmp_path / "a.yaml", _config(dataset, tiny_model[0], straight, **sections))
    assert run_ltx2("train", str(config)).returncode == 0

    stopped = tmp_path / "stopped"
    config = _write(tmp_path / "b.yaml", _config(dataset, tiny_model[0], stopped, **sections))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ltx2cli", "train", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_rows(stopped, 2, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr
    saved = sorted((stopped / "checkpoints").glob("lora_weights_step_*.safetensors"))
    assert len(saved) == 1 and 2 <= int(saved[0].stem.rsplit("_", 1)[1]) < steps

    resumed = run_ltx2("train", str(config), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    final = f"checkpoints/lora_weights_step_{steps:05d}.safetensors"
    a, b = _tensors(straight / final), _tensors(stopped / final)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["loss"] for r in _metrics(straight)] == [r["loss"] for r in _metrics(stopped)]


def test_two_processes_under_accelerate_launch_agree(tmp_path, dataset, tiny_model):
    config = _write(
        tmp_path / "c.yaml",
        _config(dataset, tiny_model[0], tmp_path / "run", optimization={"steps": 3}),
    )
    launcher = Path(sys.executable).with_name("accelerate")
    result = subprocess.run(
        [
            str(launcher),
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            "29613",
            "-m",
            "ltx2cli",
            "--json",
            "train",
            str(config),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "ACCELERATE_USE_CPU": "1"},  # gloo on CPU
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1  # only rank 0 reports
    report = reports[0]
    assert report["processes"] == 2 and report["steps"] == 3
    first, second = report["replica_checksums"]
    assert first == second
    assert len(_metrics(tmp_path / "run")) == 3


def test_full_fine_tuning_saves_the_whole_transformer(tmp_path, dataset, tiny_model):
    from ltx2cli.models.loading import load_component
    from ltx2cli.train.trainer import train

    config = parse_config(
        _config(
            dataset,
            tiny_model[0],
            tmp_path / "run",
            model={"model_path": str(tiny_model[0]), "training_mode": "full"},
            lora=None,
            optimization={"steps": 2},
            checkpoints={"interval": None},
        )
    )
    result = train(config)
    assert result.weights.name == "model_weights_step_00002.safetensors"
    saved = _tensors(result.weights)
    base = load_component(tiny_model[0], "transformer", dtype=torch.float32).state_dict()
    assert saved.keys() == base.keys()
    assert any(not torch.equal(saved[k], base[k]) for k in base)
