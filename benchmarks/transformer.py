"""Seconds per transformer forward at the medium LTX-2.3-style config (CPU, float32, 2 threads).

Config and inputs from benchmarks/transformer_medium.json: 2000 video tokens (5×20×20
latent grid, positions for 33 frames at 640×640 and 24 fps), 100 audio tokens, sigma 0.7,
contexts 256×512 / 256×256, no perturbations. One warm-up, then the median of 5 forwards under
`torch.inference_mode()`; prints the ratio to the reference implementation's 0.69 s. Under
inference the Linears run through oneDNN (`layers.cpu_inference_linears`); `--mkl` measures the
stock MKL path instead (same numbers to float32 rounding) for comparison.

    python benchmarks/transformer.py [--spec PATH] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ltx2cli.diffusion.patchify import (
    AudioLatentShape,
    VideoLatentShape,
    audio_positions,
    video_positions,
)
from ltx2cli.models import layers
from ltx2cli.models.transformer import Modality, build_transformer

# The medium transformer config of the reference's benchmark, kept beside the scripts.
DEFAULT_SPEC = Path(__file__).resolve().parent / "transformer_medium.json"
FPS = 24.0
SEED = 0


def make_inputs(spec: dict, config: dict) -> tuple[Modality, Modality]:
    inputs = spec["inputs"]
    frames, height, width = inputs["video_latent_grid_FHW"]
    n_audio = inputs["audio_tokens"]
    sigma = torch.tensor([inputs["sigma"]])
    g = torch.Generator().manual_seed(SEED)
    tcfg = config["transformer"]
    n_video = frames * height * width
    video = Modality(
        latent=torch.randn(1, n_video, tcfg["in_channels"], generator=g),
        sigma=sigma,
        timesteps=torch.full((1, n_video, 1), inputs["sigma"]),
        positions=video_positions(
            VideoLatentShape(1, tcfg["in_channels"], frames, height, width), FPS
        ),
        context=torch.randn(*inputs["video_context"], generator=g),
    )
    audio = Modality(
        latent=torch.randn(1, n_audio, tcfg.get("audio_in_channels", 128), generator=g),
        sigma=sigma,
        timesteps=torch.full((1, n_audio, 1), inputs["sigma"]),
        positions=audio_positions(AudioLatentShape(1, 8, n_audio, 16)),
        context=torch.randn(*inputs["audio_context"], generator=g),
    )
    return video, audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mkl", action="store_true", help="keep float32 Linears on MKL")
    args = parser.parse_args()
    if args.mkl:
        layers.ONEDNN_CPU_LINEARS = False

    torch.set_num_threads(args.threads)
    spec = json.loads(args.spec.read_text())
    config = spec["config"]
    model = build_transformer(config).eval()
    model.init_weights(torch.Generator().manual_seed(SEED))
    video, audio = make_inputs(spec, config)

    times = []
    with torch.inference_mode():
        model(video, audio)  # warm-up
        for _ in range(args.repeats):
            start = time.perf_counter()
            v, a = model(video, audio)
            times.append(time.perf_counter() - start)
    assert torch.isfinite(v).all() and torch.isfinite(a).all()
    reference = spec["reference_seconds_per_forward"]["value"]
    median = statistics.median(times)
    print(
        f"transformer forward: median {median:.3f} s, best {min(times):.3f} s over {args.repeats} "
        f"({args.threads} threads); reference {reference:.2f} s → ratio {median / reference:.2f}"
    )


if __name__ == "__main__":
    main()
