"""Whole-checkpoint rewrites, streamed tensor by tensor: LoRA fusion and fp8 quantisation.

- `fuse_checkpoint` writes the base checkpoint with LoRAs fused into its transformer weights,
  in the official layout: every other tensor is copied byte for byte, the metadata (embedded
  config, model_version, ...) is kept and `fused_loras` records each LoRA's file name,
  strength and whether alpha scaled it. Each weight is fused exactly as `load_component`
  fuses it when the model is built in the stored dtype (`lora.lora_delta`/`fuse_weight`):
  bf16 weights in bf16; fp8 weights without scales (an `fp8-cast` file) dequantised to bf16
  and re-cast; fp8 weights with a `weight_scale` (an `-fp8` / `fp8-scaled-mm` file)
  dequantised, summed in float32 and re-quantised with a fresh scale, written right after
  the weight. So loading the fused file equals loading the base with the LoRAs.
- `quantize_checkpoint` stores the transformer blocks' Linears (`fp8.is_fp8_cast_layer`: q/k/v/
  out of every attention and both feed-forwards) in float8 and keeps every other tensor:
  - `fp8-cast`: weight and bias plain-cast to float8_e4m3fn, no scales; loading it with
    `--quantization fp8-cast` gives the same model as casting the original at load.
  - `fp8-scaled-mm`: per-tensor `q = clamp(w·448/amax)` with a 0-d float32 `weight_scale`
    (`amax/448`), the reference's `-fp8` layout; biases stay high precision; with a calibration
    file (`{"amax_values": {"<module>.input_quantizer": amax}}`, model.md §10.2) a 0-d
    `input_scale = amax/448` per layer for static activation scaling.
  A file that already holds float8 transformer weights is refused rather than cast twice.
- Both check the output path and the free space before writing a byte, and write atomically.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ltx2cli.compat import Compat
from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.models.checkpoint import TRANSFORMER_PREFIX, CheckpointInfo
from ltx2cli.models.fp8 import (
    FP8_DTYPES,
    FP8_MAX,
    QUANTIZATIONS,
    is_fp8_cast_layer,
    quantize_per_tensor,
    to_fp8,
)
from ltx2cli.models.loading import component_keys
from ltx2cli.models.lora import (
    alpha_applies,
    fuse_weight,
    fusion_device,
    fusion_dtype,
    lora_delta,
    lora_layout,
    parse_lora,
    plan_loras,
    read_lora,
)
from ltx2cli.models.stream import (
    DTYPE_NAMES,
    Entry,
    ProgressFn,
    TensorReader,
    check_output,
    check_space,
    copy_entry,
    file_size,
    write_entries,
)

logger = logging.getLogger(__name__)

FUSED_LORAS_KEY = "fused_loras"
QUANTIZATION_KEY = "quantization"
_SCALE = "_scale"
_FP8_NAMES = frozenset(DTYPE_NAMES[d] for d in FP8_DTYPES)  # safetensors dtype names
_F8 = "F8_E4M3"
_F32 = "F32"


def _transformer(info: CheckpointInfo) -> dict[str, str]:
    """`{module key: raw key}` of the transformer, or a one-line error."""
    if info.kind == "lora":
        raise CheckpointError(
            f"{info.path.name} is a LoRA file, not a model checkpoint",
            "pass the base checkpoint first and the LoRA with --lora",
        )
    mapping = component_keys(info, "transformer")
    if not mapping:
        raise CheckpointError(
            f"{info.path.name} holds no transformer weights (no '{TRANSFORMER_PREFIX}' keys)",
            "pass an LTX-2 checkpoint in the official layout",
        )
    return mapping


def _report(info: CheckpointInfo, target: Path, size: int, written: bool, **extra: Any) -> dict:
    return {
        "input": str(info.path),
        "output": str(target.absolute()),
        "size_before": info.size,
        "size_after": size,
        "written": written,
        **extra,
    }


def fuse_checkpoint(
    base: str | os.PathLike[str],
    loras: Sequence[Any],
    out: str | os.PathLike[str],
    *,
    use_alpha: bool | Compat = True,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Write `base` with `loras` (`LoraSpec`s, paths or `PATH:STRENGTH`) fused into `out`.

    Returns a report (sizes, fused weights, per-LoRA unmatched modules). `dry_run` checks
    everything, including the free space, and writes nothing.
    """
    from ltx2cli.models.checkpoint import read_checkpoint

    specs = [parse_lora(x) for x in loras]
    if not specs:
        raise UsageError("no LoRA to fuse", "pass one or more --lora FILE[:STRENGTH]")
    info = read_checkpoint(base)
    target = check_output(out, [info.path, *(s.path for s in specs)])
    mapping = _transformer(info)
    weights = {k: info.tensors[raw].shape for k, raw in mapping.items()}
    plan = plan_loras(weights, specs, use_alpha=use_alpha)
    fuse_on = fusion_device("cpu")
    reader = TensorReader(info)
    scales: dict[str, torch.Tensor] = {}  # new weight scales, made with their weights

    def fused(raw: str, terms: list, scale_raw: str | None) -> torch.Tensor:
        w = reader.read(raw)
        delta = lora_delta(terms, w.shape, dtype=fusion_dtype(w.dtype), device=fuse_on)
        scale = reader.read(scale_raw) if scale_raw else None
        new_w, new_scale = fuse_weight(w.to(fuse_on), delta, scale)
        if scale_raw and new_scale is not None:
            scales[scale_raw] = new_scale.reshape(info.tensors[scale_raw].shape)
        return new_w

    fused_raw = {mapping[k]: terms for k, terms in plan.terms.items()}
    # A re-quantised weight's new scale is written right after it, not where the scale was.
    moved = {
        raw + _SCALE
        for raw in fused_raw
        if info.tensors[raw].dtype in _FP8_NAMES and raw + _SCALE in info.tensors
    }
    entries: list[Entry] = []
    for raw, t in info.tensors.items():
        if raw in moved:
            continue
        if raw not in fused_raw:
            entries.append(copy_entry(reader, raw))
            continue
        scale_raw = raw + _SCALE if raw + _SCALE in moved else None
        out_dtype = _F8 if t.dtype in _FP8_NAMES else t.dtype
        entries.append(
            Entry(raw, out_dtype, t.shape, partial(fused, raw, fused_raw[raw], scale_raw))
        )
        if scale_raw:
            shape = info.tensors[scale_raw].shape
            entries.append(Entry(scale_raw, _F32, shape, partial(scales.pop, scale_raw)))

    metadata = dict(reader.metadata)
    metadata[FUSED_LORAS_KEY] = json.dumps(_fused_record(info, specs, use_alpha))
    size = file_size(entries, metadata)
    check_space(target, size)
    report = _report(
        info,
        target,
        size,
        not dry_run,
        fused_weights=len(plan.terms),
        loras=[
            {"file": str(s.path), "strength": s.strength, "unmatched": plan.unmatched[str(s.path)]}
            for s in specs
        ],
    )
    if not dry_run:
        write_entries(target, entries, metadata, progress)
    logger.info("fused %d LoRA(s) into %d weights of %s", len(specs), len(plan.terms), target)
    return report


def _fused_record(
    info: CheckpointInfo, specs: Sequence[Any], use_alpha: bool | Compat
) -> list[dict[str, Any]]:
    """Earlier fusions recorded in the base, then these LoRAs."""
    earlier = info.metadata.get(FUSED_LORAS_KEY)
    record = list(earlier) if isinstance(earlier, list) else []
    for spec in specs:
        layout = lora_layout(spec.path)
        alpha = read_lora(layout, modules=()).alpha
        scaled = alpha_applies(use_alpha) and any(
            value != layout.rank(m) for m, value in alpha.items() if m in layout.down
        )
        record.append({"file": spec.path.name, "strength": spec.strength, "alpha_scaled": scaled})
    return record


def _check_unquantized(info: CheckpointInfo, mapping: Mapping[str, str]) -> None:
    fp8 = [k for k, raw in mapping.items() if info.tensors[raw].dtype in _FP8_NAMES]
    if fp8:
        scaled = any(k.endswith(".weight" + _SCALE) for k in mapping)
        policy = "fp8-scaled-mm or fp8-cast" if scaled else "fp8-cast"
        raise CheckpointError(
            f"{info.path.name} is already quantized: {len(fp8)} transformer tensors are float8 "
            f"(e.g. {fp8[0]})",
            f"use it as it is with --quantization {policy}",
        )


def read_calibration(path: str | os.PathLike[str], layers: Iterable[str]) -> dict[str, float]:
    """`{layer: amax}` from an amax JSON (`{"amax_values": {"<layer>.input_quantizer": x}}`)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"cannot read calibration file {p}: {e}", "pass an amax JSON") from None
    values = data.get("amax_values") if isinstance(data, dict) else None
    if not isinstance(values, dict):
        raise UsageError(
            f"{p.name} has no 'amax_values' object",
            'expected {"amax_values": {"transformer_blocks.0.attn1.to_q.input_quantizer": 3.5}}',
        )
    known = set(layers)
    amax: dict[str, float] = {}
    for name, value in values.items():
        layer = name.removesuffix(".input_quantizer")
        for prefix in (TRANSFORMER_PREFIX, "diffusion_model."):
            layer = layer.removeprefix(prefix)
        if layer not in known:
            raise UsageError(
                f"{p.name}: {name!r} is not a quantized layer of this checkpoint",
                "names are the transformer's Linear paths, e.g. "
                "transformer_blocks.0.attn1.to_q.input_quantizer",
            )
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise UsageError(f"{p.name}: amax {value!r} for {name!r} is not a positive number")
        amax[layer] = float(value)
    return amax


def quantize_checkpoint(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    policy: str,
    *,
    calibration: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Write `path` with its transformer blocks' Linears in fp8 (`policy`) to `out`."""
    from ltx2cli.models.checkpoint import read_checkpoint

    if policy not in QUANTIZATIONS:
        raise UsageError(f"unknown policy {policy!r}", f"use one of: {', '.join(QUANTIZATIONS)}")
    if calibration is not None and policy != "fp8-scaled-mm":
        raise UsageError(
            f"--calibration sets static input scales, which {policy} does not use",
            "use --policy fp8-scaled-mm, or drop --calibration",
        )
    info = read_checkpoint(path)
    target = check_output(out, [info.path])
    mapping = _transformer(info)
    _check_unquantized(info, mapping)
    layers = sorted(
        k.removesuffix(".weight")
        for k, raw in mapping.items()
        if k.endswith(".weight")
        and is_fp8_cast_layer(k.removesuffix(".weight"))
        and len(info.tensors[raw].shape) == 2
    )
    amax = read_calibration(calibration, layers) if calibration is not None else {}
    reader = TensorReader(info)
    scales: dict[str, torch.Tensor] = {}

    def cast(raw: str) -> torch.Tensor:
        return to_fp8(reader.read(raw))

    def scaled(raw: str) -> torch.Tensor:
        q, scale = quantize_per_tensor(reader.read(raw))
        scales[raw + _SCALE] = scale
        return q

    quantized = {mapping[f"{layer}.weight"]: layer for layer in layers}
    if policy == "fp8-cast":  # the load-time cast covers the biases too
        quantized |= {mapping[f"{x}.bias"]: x for x in layers if f"{x}.bias" in mapping}
    entries: list[Entry] = []
    for raw, t in info.tensors.items():
        layer = quantized.get(raw)
        if layer is None:
            entries.append(copy_entry(reader, raw))
        elif policy == "fp8-cast":
            entries.append(Entry(raw, _F8, t.shape, partial(cast, raw)))
        else:
            entries.append(Entry(raw, _F8, t.shape, partial(scaled, raw)))
            entries.append(Entry(raw + _SCALE, _F32, (), partial(scales.pop, raw + _SCALE)))
            if layer in amax:
                value = torch.tensor(amax[layer], dtype=torch.float32) / FP8_MAX
                prefix = raw.removesuffix(".weight")
                entries.append(Entry(f"{prefix}.input_scale", _F32, (), value.clone))

    metadata = dict(reader.metadata)
    metadata[QUANTIZATION_KEY] = policy
    size = file_size(entries, metadata)
    check_space(target, size)
    transformer_raw = set(mapping.values())
    before = info.nbytes(transformer_raw)
    after = sum(
        e.nbytes
        for e in entries
        if e.key in transformer_raw or e.key.removesuffix(_SCALE) in transformer_raw
        or e.key.endswith(".input_scale")
    )  # fmt: skip
    report = _report(
        info,
        target,
        size,
        not dry_run,
        policy=policy,
        quantized_layers=len(layers),
        transformer_bytes_before=before,
        transformer_bytes_after=after,
        static_input_scales=len(amax),
    )
    if not dry_run:
        write_entries(target, entries, metadata, progress)
    return report
