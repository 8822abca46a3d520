"""Training speed and memory on the CPU: steps/s and peak RSS.

Scenarios (each in a fresh subprocess, so `ru_maxrss` is its own peak):
- `demo`: the tiny model through the real trainer (`ltx2cli.train.trainer.train`) on a
  synthetic precomputed dataset (video + audio latents, text features), LoRA rank 4, batch 1.
- `medium-lora` / `medium-lora-ckpt`: one LoRA training step (forward, backward, AdamW) of
  the transformer in benchmarks/transformer_medium.json (4 blocks, 2000 video + 100 audio
  tokens; LoRA rank 32 on to_q/to_k/to_v/to_out.0) without and with gradient checkpointing.

    python benchmarks/train.py                      # all scenarios, 2 threads
    python benchmarks/train.py --threads 2 --steps 5 --scenario medium-lora
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MEDIUM = Path(__file__).with_name("transformer_medium.json")
SCENARIOS = ("demo", "medium-lora", "medium-lora-ckpt")
MIB = 1024**2


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MIB  # KiB on Linux


def bench_demo(steps: int) -> dict:
    import torch

    from ltx2cli.models.tiny import write_tiny_checkpoint
    from ltx2cli.train.config import parse_config
    from ltx2cli.train.trainer import train

    root = Path(tempfile.mkdtemp(prefix="ltx2-bench-train-"))
    checkpoint = write_tiny_checkpoint(root / "tiny.safetensors", dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    for folder in ("latents", "audio_latents", "conditions"):
        (root / "data" / folder).mkdir(parents=True)
    for i in range(4):
        name = f"clip{i}.pt"
        torch.save(
            {
                "latents": torch.randn(16, 2, 2, 3, generator=g).bfloat16(),
                "num_frames": 2,
                "height": 2,
                "width": 3,
                "fps": 24.0,
            },
            root / "data" / "latents" / name,
        )
        torch.save(
            {
                "latents": torch.randn(8, 29, 16, generator=g),
                "num_time_steps": 29,
                "frequency_bins": 16,
                "duration": 1.125,
            },
            root / "data" / "audio_latents" / name,
        )
        mask = torch.zeros(1024, dtype=torch.bool)
        mask[-12:] = True
        torch.save(
            {
                "video_prompt_embeds": torch.randn(1024, 32, generator=g).bfloat16(),
                "audio_prompt_embeds": torch.randn(1024, 16, generator=g).bfloat16(),
                "prompt_attention_mask": mask,
            },
            root / "data" / "conditions" / name,
        )
    config = parse_config(
        {
            "model": {"model_path": str(checkpoint)},
            "lora": {"rank": 4, "alpha": 4},
            "training_strategy": {
                "name": "flexible",
                "video": {"is_generated": True, "latents_dir": "latents"},
                "audio": {"is_generated": True, "latents_dir": "audio_latents"},
            },
            "optimization": {"steps": steps, "batch_size": 1, "scheduler_type": "constant"},
            "acceleration": {"mixed_precision_mode": "no"},
            "data": {"preprocessed_data_root": str(root / "data"), "num_dataloader_workers": 0},
            "validation": {"interval": None},
            "checkpoints": {"interval": None, "save_training_state": "off"},
            "output_dir": str(root / "run"),
        }
    )
    stamps: list[float] = []
    train(config, on_step=lambda *_: stamps.append(time.perf_counter()))
    per_step = [b - a for a, b in itertools.pairwise(stamps)]
    return {"seconds_per_step": statistics.median(per_step)}


def bench_medium(steps: int, checkpointing: bool) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    from ltx2cli.diffusion.patchify import (
        AudioLatentShape,
        VideoLatentShape,
        audio_positions,
        video_positions,
    )
    from ltx2cli.models.transformer import Modality, build_transformer

    spec = json.loads(MEDIUM.read_text())
    torch.manual_seed(0)
    model = build_transformer(spec["config"])
    model.init_weights(torch.Generator().manual_seed(0))
    model.requires_grad_(False)
    model.set_gradient_checkpointing(checkpointing)
    model = get_peft_model(
        model, LoraConfig(r=32, lora_alpha=32, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )
    model.train()
    f, h, w = spec["inputs"]["video_latent_grid_FHW"]
    t_audio = spec["inputs"]["audio_tokens"]
    vshape, ashape = VideoLatentShape(1, 128, f, h, w), AudioLatentShape(1, 8, t_audio, 16)
    n = vshape.token_count
    sigma = torch.full((1,), spec["inputs"]["sigma"])
    video = Modality(
        latent=torch.randn(1, n, 128),
        sigma=sigma,
        timesteps=sigma.view(1, 1).expand(1, n),
        positions=video_positions(vshape, 24.0),
        context=torch.randn(*spec["inputs"]["video_context"]),
    )
    audio = Modality(
        latent=torch.randn(1, t_audio, 128),
        sigma=sigma,
        timesteps=sigma.view(1, 1).expand(1, t_audio),
        positions=audio_positions(ashape),
        context=torch.randn(*spec["inputs"]["audio_context"]),
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for _ in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        v, a = model(video, audio)
        loss = v.float().pow(2).mean() + a.float().pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return {
        "seconds_per_step": statistics.median(times[1:]),
        "trainable_parameters": sum(p.numel() for p in params),
    }


def run_scenario(name: str, steps: int) -> dict:
    if name == "demo":
        result = bench_demo(steps)
    else:
        result = bench_medium(steps, checkpointing=name.endswith("ckpt"))
    result["steps_per_second"] = 1.0 / result["seconds_per_step"]
    result["peak_rss_mib"] = _peak_mib()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=SCENARIOS, action="append")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per scenario")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(run_scenario(args.scenario[0], args.steps)))
        return
    for name in args.scenario or SCENARIOS:
        steps = args.steps * 4 if name == "demo" else args.steps
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--scenario",
                name,
                "--steps",
                str(steps),
                "--threads",
                str(args.threads),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps({"scenario": name, "threads": args.threads, **result}))


if __name__ == "__main__":
    main()
