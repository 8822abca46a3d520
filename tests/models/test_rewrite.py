"""Streamed checkpoint rewrites in whatever tensor order a file has."""

from __future__ import annotations

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ltx2cli.models.checkpoint import TRANSFORMER_PREFIX
from ltx2cli.models.fp8 import is_fp8_cast_layer, quantize_per_tensor
from ltx2cli.models.loading import load_component
from ltx2cli.models.rewrite import fuse_checkpoint
from ltx2cli.models.stream import DTYPE_NAMES, Entry, write_entries
from ltx2cli.models.tiny import write_tiny_checkpoint

LAYER = "transformer_blocks.0.attn1.to_q"
RANK = 2


def test_fusing_a_scaled_base_whose_scales_come_first(tmp_path):
    """The new scale of a re-quantised weight replaces the old one wherever the file had it."""
    tiny = write_tiny_checkpoint(tmp_path / "tiny.safetensors", "2.3")
    tensors = load_file(str(tiny))
    with safe_open(str(tiny), "pt") as f:
        metadata = f.metadata()
    for raw in [k for k in tensors if k.startswith(TRANSFORMER_PREFIX) and k.endswith(".weight")]:
        if is_fp8_cast_layer(raw.removeprefix(TRANSFORMER_PREFIX).removesuffix(".weight")):
            tensors[raw], tensors[raw + "_scale"] = quantize_per_tensor(tensors[raw])
    scales_first = sorted(tensors, key=lambda k: (not k.endswith("_scale"), k))
    entries = [
        Entry(k, DTYPE_NAMES[tensors[k].dtype], tuple(tensors[k].shape), tensors[k].clone)
        for k in scales_first
    ]
    base = tmp_path / "fp8.safetensors"
    write_entries(base, entries, metadata)
    out_f, in_f = tensors[f"{TRANSFORMER_PREFIX}{LAYER}.weight"].shape
    g = torch.Generator().manual_seed(0)
    lora = tmp_path / "l.safetensors"
    save_file(
        {
            f"diffusion_model.{LAYER}.lora_A.weight": torch.randn(RANK, in_f, generator=g),
            f"diffusion_model.{LAYER}.lora_B.weight": torch.randn(out_f, RANK, generator=g),
        },
        str(lora),
    )
    out = tmp_path / "fused.safetensors"
    report = fuse_checkpoint(base, [lora], out)
    assert report["fused_weights"] == 1
    kwargs = {"dtype": torch.bfloat16, "quantization": "fp8-scaled-mm"}
    at_load = load_component(base, "transformer", loras=[lora], **kwargs).get_submodule(LAYER)
    fused = load_component(out, "transformer", **kwargs).get_submodule(LAYER)
    assert torch.equal(fused.weight.view(torch.uint8), at_load.weight.view(torch.uint8))
    assert fused.weight_scale.item() == at_load.weight_scale.item()
    stored = tensors[f"{TRANSFORMER_PREFIX}{LAYER}.weight_scale"]
    assert fused.weight_scale.item() != stored.item()
