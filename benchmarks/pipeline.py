"""Pipeline speed on the CPU: guided and distilled steps at the medium transformer, and the demo.

- A guided step: the multimodal guided denoiser with the released guidance (cfg, STG,
  modality isolation: 4 passes) against four separate forwards of the same transformer; the
  target is a ratio of at most 0.8 (batching, AdaLN once per distinct timestep, skipped work).
- A distilled step: the simple denoiser (one pass).
- Useful FLOPs of a guided step (4 x one forward, counted by torch's FLOP counter) per second,
  as a share of this CPU's float32 matmul peak (a large square matmul, measured here).
- Peak RSS of this process, and the demo model's `ltx2 generate` end to end in a fresh process
  (the demo files, including the one-time Gemma conversion, are written before timing).

Config and inputs: benchmarks/transformer_medium.json (see benchmarks/transformer.py).

    python benchmarks/pipeline.py [--spec PATH] [--repeats 3] [--threads 2] [--no-demo]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformer import DEFAULT_SPEC, SEED, make_inputs

from ltx2cli.diffusion.denoisers import GuidedDenoiser, SimpleDenoiser, transformer_velocity_model
from ltx2cli.diffusion.guidance import GuiderParams
from ltx2cli.diffusion.state import AV, LatentState
from ltx2cli.models import layers
from ltx2cli.models.transformer import build_transformer

PEAK_MATMUL_SIZE = 2048
STG_BLOCK = 0  # the medium config is shallow; STG perturbs its first block
VIDEO = GuiderParams(3.0, 1.0, (STG_BLOCK,), 0.7, 3.0)
AUDIO = GuiderParams(7.0, 1.0, (STG_BLOCK,), 0.7, 3.0)
DEMO_PROMPT = "a fox runs through the snow"


def median_seconds(fn, repeats: int) -> float:
    return interleaved_medians({"fn": fn}, repeats)["fn"]


def interleaved_medians(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, measured in rounds (one call of each per round), so
    load from other processes on a shared machine hits them alike. One warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_peak_flops(repeats: int) -> float:
    a = torch.randn(PEAK_MATMUL_SIZE, PEAK_MATMUL_SIZE)
    b = torch.randn(PEAK_MATMUL_SIZE, PEAK_MATMUL_SIZE)
    seconds = median_seconds(lambda: a @ b, repeats)
    return 2 * PEAK_MATMUL_SIZE**3 / seconds


def states_of(video, audio) -> AV[LatentState]:
    def state(m) -> LatentState:
        n = m.latent.shape[1]
        return LatentState(
            latent=m.latent,
            clean_latent=m.latent.clone(),
            denoise_mask=torch.ones(1, n, 1),
            positions=m.positions,
            target_tokens=n,
        )

    return AV(video=state(video), audio=state(audio))


def demo_seconds() -> float:
    """`ltx2 generate --model demo` in a fresh process, the demo files already written."""
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "LTX2_HOME": os.environ.get("LTX2_HOME", folder)}
        prepare = "from ltx2cli.pipelines.demo import ensure_demo; ensure_demo()"
        subprocess.run([sys.executable, "-c", prepare], env=env, check=True)
        target = Path(folder) / "demo.mp4"
        start = time.perf_counter()
        command = ["ltx2", "generate", DEMO_PROMPT, "--model", "demo", "-o", str(target), "-q"]
        subprocess.run(command, env=env, check=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-demo", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    spec = json.loads(args.spec.read_text())
    config = spec["config"]
    model = build_transformer(config).eval()
    model.init_weights(torch.Generator().manual_seed(SEED))
    video, audio = make_inputs(spec, config)
    states = states_of(video, audio)
    contexts = AV(video=video.context, audio=audio.context)
    velocity = transformer_velocity_model(model)
    guided = GuidedDenoiser(velocity, contexts, contexts, VIDEO, AUDIO, max_passes=None)
    simple = SimpleDenoiser(velocity, contexts)

    with torch.inference_mode():
        seconds = interleaved_medians(
            {
                "forward": lambda: model(video, audio),
                "guided": lambda: guided(states, 0.7, 0),
                "distilled": lambda: simple(states, 0.7, 0),
            },
            args.repeats,
        )
    forward, guided_step, distilled_step = (seconds[k] for k in ("forward", "guided", "distilled"))
    # Counted with the Linears on aten kernels (the oneDNN path is invisible to the counter).
    from torch.utils.flop_counter import FlopCounterMode

    layers.ONEDNN_CPU_LINEARS = False
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(video, audio)
    layers.ONEDNN_CPU_LINEARS = True
    forward_flops = counter.get_total_flops()
    peak = matmul_peak_flops(args.repeats)
    useful = 4 * forward_flops / guided_step

    print(f"threads {args.threads}, repeats {args.repeats} (median)")
    print(f"one forward:          {forward:.3f} s")
    print(
        f"guided step (4 passes): {guided_step:.3f} s = {guided_step / (4 * forward):.2f} x four "
        "separate forwards (target <= 0.80)"
    )
    print(f"distilled step (1 pass): {distilled_step:.3f} s")
    print(
        f"useful FLOPs: {useful / 1e9:.1f} GFLOP/s of a {peak / 1e9:.1f} GFLOP/s float32 matmul "
        f"peak = {100 * useful / peak:.0f}% (target >= 50%)"
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS: {rss * (1 if sys.platform == 'darwin' else 1024) / 2**20:.0f} MiB")
    if not args.no_demo:
        print(f"demo generate end to end: {demo_seconds():.1f} s (target <= 10 s)")


if __name__ == "__main__":
    main()
