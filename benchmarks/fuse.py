"""Peak resident memory of `ltx2 lora fuse` and `ltx2 quantize` against the checkpoint size.

Writes a 2 GB+ transformer checkpoint in the official layout (the tiny LTX-2.3 config widened
to 1024 / 512 channels and 48 blocks, so the largest tensor is ~0.4 % of the file as in the
released 22B model) and a rank-32 bf16 LoRA on every attention's q/k/v/out (the official
trainer's default targets), then in a fresh subprocess each fuses the LoRA
(`fuse_checkpoint`) or quantizes (`quantize_checkpoint`, both policies) and reports the peak
RSS (`ru_maxrss`) as a fraction of the file size, in total and above the baseline taken after
the imports. The checkpoint itself is written tensor by tensor too. Everything lives in a
temporary folder that is deleted at the end.

    python benchmarks/fuse.py               # ~2.2 GB checkpoint
    python benchmarks/fuse.py --layers 24   # ~1.1 GB
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_FRACTION = 0.15
RANK = 32
ATTENTION_LINEARS = (".to_q", ".to_k", ".to_v", ".to_out.0")


def bench_config(layers: int) -> dict:
    from ltx2cli.models.tiny import tiny_config

    config = tiny_config("2.3")
    config["transformer"].update(
        num_layers=layers,
        num_attention_heads=16,
        attention_head_dim=64,
        audio_num_attention_heads=16,
        audio_attention_head_dim=32,
        cross_attention_dim=1024,
        audio_cross_attention_dim=512,
    )
    return config


def write_files(root: Path, layers: int) -> tuple[Path, Path]:
    """The checkpoint and the LoRA, each streamed to disk one random tensor at a time."""
    import torch

    from ltx2cli.models.checkpoint import TRANSFORMER_PREFIX
    from ltx2cli.models.loading import COMPONENTS, component_builder
    from ltx2cli.models.stream import Entry, write_entries

    config = bench_config(layers)
    with torch.device("meta"):
        module = component_builder(COMPONENTS["transformer"])(config)
    g = torch.Generator().manual_seed(0)

    def normal(shape: tuple[int, ...], std: float) -> torch.Tensor:
        return torch.empty(shape, dtype=torch.bfloat16).normal_(0, std, generator=g)

    entries, lora = [], []
    for key, meta in module.state_dict().items():
        shape = tuple(meta.shape)
        if meta.dim() == 0:
            entries.append(Entry(TRANSFORMER_PREFIX + key, "F32", shape, lambda: torch.ones(())))
            continue
        entries.append(
            Entry(TRANSFORMER_PREFIX + key, "BF16", shape, lambda s=shape: normal(s, 0.02))
        )
        name = key.removesuffix(".weight")
        if key.endswith(".weight") and name.endswith(ATTENTION_LINEARS):
            out_f, in_f = shape
            prefix = f"diffusion_model.{name}"
            lora.append(
                Entry(
                    f"{prefix}.lora_A.weight",
                    "BF16",
                    (RANK, in_f),
                    lambda i=in_f: normal((RANK, i), 0.02),
                )
            )
            lora.append(
                Entry(
                    f"{prefix}.lora_B.weight",
                    "BF16",
                    (out_f, RANK),
                    lambda o=out_f: normal((o, RANK), 0.02),
                )
            )
    base, lora_path = root / "base.safetensors", root / "lora.safetensors"
    write_entries(base, entries, {"config": json.dumps(config), "model_version": "2.3.0"})
    write_entries(lora_path, lora, {})
    return base, lora_path


def child(mode: str, base: str, lora: str, out: str) -> None:
    """Runs in a fresh process: import, take the baseline, run, report the peak."""
    import resource

    import torch

    from ltx2cli.models.rewrite import fuse_checkpoint, quantize_checkpoint

    torch.set_num_threads(2)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    if mode == "fuse":
        fuse_checkpoint(base, [f"{lora}:0.8"], out)
    else:
        quantize_checkpoint(base, out, mode)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"baseline": baseline, "peak": peak, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=48)
    parser.add_argument("--child", nargs=4, metavar=("MODE", "BASE", "LORA", "OUT"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="ltx2-fuse-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        base, lora = write_files(root, args.layers)
        size, lora_size = base.stat().st_size, lora.stat().st_size
        print(f"checkpoint {size / 1e9:.2f} GB, LoRA {lora_size / 1e6:.1f} MB "
              f"(written in {time.perf_counter() - start:.0f} s)")  # fmt: skip
        for mode in ("fuse", "fp8-cast", "fp8-scaled-mm"):
            out = root / f"{mode}.safetensors"
            proc = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(base), str(lora), str(out)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            added = r["peak"] - r["baseline"]
            verdict = "ok" if r["peak"] / size <= TARGET_FRACTION else "over target"
            print(
                f"{mode:<14} peak RSS {r['peak'] / 1e6:7.0f} MB = {r['peak'] / size:.3f} of the "
                f"file ({verdict}, target <= {TARGET_FRACTION}); above the baseline "
                f"{added / 1e6:6.0f} MB = {added / size:.3f}; {r['seconds']:.0f} s; "
                f"output {out.stat().st_size / 1e9:.2f} GB"
            )
            out.unlink()


if __name__ == "__main__":
    main()
