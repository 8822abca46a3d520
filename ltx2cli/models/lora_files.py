"""What a LoRA file holds (`inspect_lora`) and rewriting it in another key style
(`convert_lora`), both from the header plus the few tensors they need.

- `inspect_lora` reports the key style, ranks, alphas and whether alpha changes the result
  (ltx2 applies alpha/rank; the reference and `--compat 1.0.0` ignore it), the targeted
  modules per group, stored dtypes, the metadata people look for (trainer, base model,
  trigger words, `reference_downscale_factor`), the generation its targets fit, and against
  a model: matched, unmatched and shape-mismatched modules with a one-line verdict.
- `convert_lora` renames keys losslessly, streaming one tensor at a time. Alpha: `comfy`
  keeps it (rank when the source had none, the same scale); `official` and `diffusers`
  store none, so an alpha ≠ rank is folded into `lora_B` as `B·(alpha/rank)` in B's dtype.
  At strength 1 that fuses to the same bits (the fusion multiplies B by strength·alpha/rank
  in B's dtype); at other strengths it may differ in the last bit, unless alpha/rank is a
  power of two. Keys of kinds that are not LoRA pairs (DoRA scales, `.diff`) are dropped
  and listed in the report.
"""

from __future__ import annotations

import os
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ltx2cli.compat import Compat
from ltx2cli.models.checkpoint import read_checkpoint
from ltx2cli.models.loading import component_keys
from ltx2cli.models.lora import LoraLayout, alpha_applies, lora_layout, match_lora, read_lora
from ltx2cli.models.lora_keys import (
    DOWN,
    GROUPS,
    UP,
    check_style,
    lora_generation,
    lora_key,
    module_group,
)
from ltx2cli.models.stream import (
    Entry,
    ProgressFn,
    TensorReader,
    check_output,
    check_space,
    copy_entry,
    file_size,
    write_entries,
)

# Metadata keys trainers write, per thing people look for (first present wins).
_METADATA = {
    "trainer": ("trainer", "ss_network_module", "modelspec.implementation", "software"),
    "base_model": (
        "base_model", "ss_base_model_version", "ss_sd_model_name", "modelspec.architecture"
    ),
    "trigger_words": ("trigger_words", "trigger_word", "trigger", "modelspec.trigger_phrase"),
    "reference_downscale_factor": ("reference_downscale_factor",),
    "reference_temporal_scale_factor": ("reference_temporal_scale_factor",),
}  # fmt: skip


def _alphas(layout: LoraLayout) -> dict[str, float]:
    return read_lora(layout, modules=()).alpha


def inspect_lora(
    path: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    *,
    model_label: str | None = None,
    use_alpha: bool | Compat = True,
) -> dict[str, Any]:
    """A JSON-ready description of the LoRA at `path`, matched against `model` if given."""
    layout = lora_layout(path)
    info = layout.info
    modules = layout.modules
    alphas = _alphas(layout)
    ranks = sorted({layout.rank(m) for m in modules})
    scaled = sorted({m for m, a in alphas.items() if m in layout.down and a != layout.rank(m)})
    if not alphas:
        alpha_note = "no alpha: fuses as in the reference"
    elif not scaled:
        alpha_note = "alpha equals rank: fuses as in the reference"
    elif alpha_applies(use_alpha):
        alpha_note = "alpha/rank scales the LoRA (the reference and --compat 1.0.0 ignore alpha)"
    else:
        alpha_note = "alpha is ignored, as in the reference"
    groups = Counter(module_group(m) for m in modules)
    pair_keys = (*layout.down.values(), *layout.up.values())
    generation, evidence = lora_generation(layout.target_shapes())
    report: dict[str, Any] = {
        "path": str(info.path),
        "style": layout.style,
        "modules": len(modules),
        "ranks": ranks,
        "alphas": sorted(set(alphas.values())),
        "alpha": alpha_note,
        "groups": {g: groups[g] for g in GROUPS if groups[g]},
        "dtypes": sorted({info.tensors[k].dtype for k in pair_keys}),
        "generation": generation,
        "generation_evidence": evidence,
        "metadata": _known_metadata(info.metadata),
        "metadata_keys": sorted(info.metadata),
        "incomplete": layout.incomplete,
        "ignored": layout.ignored,
    }  # fmt: skip
    if model is not None:
        report["model"] = _against_model(layout, model, model_label or Path(model).stem, generation)
    return report


def _known_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    found = {}
    for name, keys in _METADATA.items():
        key = next((k for k in keys if metadata.get(k) not in (None, "")), None)
        if key is not None:
            found[name] = metadata[key]
    return found


def _against_model(
    layout: LoraLayout, model: str | os.PathLike[str], label: str, generation: str | None
) -> dict[str, Any]:
    info = read_checkpoint(model)
    mapping = component_keys(info, "transformer")
    match = match_lora(layout.pair_shapes(), {k: info.tensors[r].shape for k, r in mapping.items()})
    total, matched = len(layout.modules), len(match.matched)
    model_generation = info.generation
    if generation and generation != model_generation:
        verdict = (
            f"does not fit {label}: a LoRA for LTX-{generation}, {label} is LTX-{model_generation}"
        )
    elif matched == total and total:
        verdict = f"fits {label}: {matched:,} of {total:,} keys"
    elif matched == 0:
        verdict = f"does not fit {label}: 0 of {total:,} keys"
    else:
        verdict = (
            f"partly fits {label}: {matched:,} of {total:,} keys ({len(match.unmatched):,} "
            f"unmatched, {len(match.mismatched):,} shape-mismatched)"
        )
    return {
        "name": label,
        "path": str(info.path),
        "generation": model_generation,
        "matched": matched,
        "unmatched": match.unmatched,
        "mismatched": match.mismatched,
        "verdict": verdict,
    }


def convert_lora(
    path: str | os.PathLike[str],
    to: str,
    out: str | os.PathLike[str],
    *,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Rewrite the LoRA at `path` in key style `to` ("official", "comfy", "diffusers")."""
    check_style(to)
    layout = lora_layout(path)
    info = layout.info
    target = check_output(out, [info.path])
    alphas = _alphas(layout)
    reader = TensorReader(info)
    entries: list[Entry] = []
    folded: list[str] = []
    for module in layout.modules:
        rank = layout.rank(module)
        entries.append(copy_entry(reader, layout.down[module], lora_key(module, DOWN, to)))
        up_key, scale = lora_key(module, UP, to), alphas.get(module, rank) / rank
        if to != "comfy" and scale != 1:
            folded.append(module)
            up = info.tensors[layout.up[module]]
            make = partial(_fold, reader, layout.up[module], scale)
            entries.append(Entry(up_key, up.dtype, tuple(up.shape), make))
        else:
            entries.append(copy_entry(reader, layout.up[module], up_key))
        if to == "comfy":
            alpha_key = lora_key(module, "alpha", to)
            if module in layout.alpha:
                entries.append(copy_entry(reader, layout.alpha[module], alpha_key))
            else:  # alpha = rank: the same scale, stated explicitly
                entries.append(Entry(alpha_key, "F32", (), partial(torch.tensor, float(rank))))
    metadata = dict(reader.metadata)
    size = file_size(entries, metadata)
    check_space(target, size)
    dropped = sorted(set(layout.ignored) | {_keys_of(layout, m) for m in layout.incomplete})
    if not dry_run:
        write_entries(target, entries, metadata, progress)
    return {
        "input": str(info.path),
        "output": str(target.absolute()),
        "from": layout.style,
        "to": to,
        "modules": len(layout.modules),
        "alpha_folded": len(folded),
        "dropped": dropped,
        "size": size,
        "written": not dry_run,
    }


def _fold(reader: TensorReader, key: str, scale: float) -> torch.Tensor:
    return reader.read(key) * scale  # in B's own dtype, as the fusion multiplies it


def _keys_of(layout: LoraLayout, module: str) -> str:
    return layout.down.get(module) or layout.up[module]
