"""Peak resident memory of `load_component` against the file size and the component size.

Writes a 1 GB+ monolithic checkpoint in the official layout (a medium-width transformer next to
a real-width video VAE encoder, so the transformer is a fraction of the file), then loads one
component in a fresh subprocess, touches every weight (as a forward pass would: safetensors may
return lazily mapped pages) and reports the peak RSS growth over the baseline taken after the
imports (`resource.getrusage(...).ru_maxrss`). For contrast it also reports reading the
whole file with `safetensors.torch.load_file`.

    python benchmarks/loading.py                       # transformer, bf16, temp file
    python benchmarks/loading.py --component video_encoder --keep /tmp/big.safetensors
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 1024**3
MIB = 1024**2


def bench_config() -> dict:
    """The tiny 19B config widened: 16 blocks of width 640 and the released encoder widths."""
    from ltx2cli.models.tiny import tiny_config

    config = tiny_config("2.0")
    t = config["transformer"]
    t.update(num_layers=16, num_attention_heads=8, attention_head_dim=80)
    t.update(audio_num_attention_heads=8, audio_attention_head_dim=40)
    t.update(cross_attention_dim=640, audio_cross_attention_dim=320)
    t.update(in_channels=128, out_channels=128)
    config["vae"].update(latent_channels=128, decoder_base_channels=64)
    return config


def write_checkpoint(path: Path) -> None:
    """Random bf16 tensors for every key of the official layout (shapes from meta builds)."""
    import torch
    from safetensors.torch import save_file

    from ltx2cli.models.loading import COMPONENTS, component_builder
    from ltx2cli.models.tiny import TINY_COMPONENTS, _raw_key, builder_options

    config = bench_config()
    generator = torch.Generator().manual_seed(0)
    tensors: dict[str, torch.Tensor] = {}
    for component in TINY_COMPONENTS:
        with torch.device("meta"):
            module = component_builder(COMPONENTS[component])(config, **builder_options(component))
        for key, meta in module.state_dict().items():
            value = torch.empty(meta.shape, dtype=torch.bfloat16)
            value.normal_(0, 0.02, generator=generator) if value.dim() else value.fill_(1.0)
            if key.endswith("std-of-means"):
                value.abs_().add_(0.5)
            tensors.setdefault(_raw_key(component, key), value)
    save_file(tensors, str(path), metadata={"config": json.dumps(config)})


def child(path: str, component: str, dtype: str, mode: str) -> None:
    """Runs in a fresh process: import, take the baseline, load, report the peak growth."""
    import resource

    import torch
    from safetensors.torch import load_file

    from ltx2cli.models.loading import COMPONENTS, component_builder, load_component
    from ltx2cli.models.tiny import builder_options

    torch.set_num_threads(2)
    component_builder(COMPONENTS[component])  # import the model module before the baseline
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    if mode == "load_component":
        module = load_component(
            path, component, dtype=getattr(torch, dtype), **builder_options(component)
        )
        state = module.state_dict()
    else:
        state = load_file(path)
    # Touch every weight, as a forward pass would: safetensors may hand out lazily mapped pages.
    held = sum(t.numel() * t.element_size() for t in state.values() if float(t.sum()) or True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak_growth": peak - base, "held": held, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--component", default="transformer")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--keep", type=Path, help="write (or reuse) the checkpoint at this path")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.write:
        write_checkpoint(args.write)
        return

    from ltx2cli.models.checkpoint import read_checkpoint
    from ltx2cli.models.loading import component_nbytes

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "bench.safetensors"
        if not path.exists():
            # In a child: Linux carries a process's peak RSS through fork and exec, so a parent
            # that held the whole file would hand that peak to every measuring child.
            start = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--write", str(path)], check=True)
            print(f"wrote {path} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        size = read_checkpoint(path).size
        stored = component_nbytes(path, args.component)
        print(f"file            {size / GIB:6.2f} GiB")
        print(f"{args.component:<15} {stored / MIB:8.1f} MiB stored ({stored / size:.0%} of file)")
        for mode in ("load_component", "load_file"):
            cmd = [sys.executable, __file__, "--child", str(path), args.component, args.dtype, mode]
            result = json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)
            growth = result["peak_growth"]
            print(
                f"{mode:<15} peak RSS +{growth / MIB:8.1f} MiB = {growth / size:5.1%} of file, "
                f"{growth / result['held']:.2f}x what it holds ({result['held'] / MIB:.1f} MiB), "
                f"{result['seconds']:.2f} s"
            )


if __name__ == "__main__":
    main()
