"""LoRA key names: the three key styles, the model's module names, groups and generation.

Torch-free: works on key names and shapes from a safetensors header.

- Styles (what `ltx2 lora inspect` reports and `convert` writes):
  - `official`: PEFT `<m>.lora_A.weight` [r, in] and `<m>.lora_B.weight` [out, r], module
    names as in the official checkpoint, under `diffusion_model.` (what the official trainer
    writes; PEFT's `base_model.model.` and bare names are read as this style too). No alpha.
  - `comfy`: kohya/ComfyUI `<m>.lora_down.weight`, `<m>.lora_up.weight` and a 0-d `<m>.alpha`
    (scale alpha/rank), under `diffusion_model.`; kohya's flattened `lora_unet_<m with _>`
    names are read as this style too.
  - `diffusers`: PEFT pairs under `transformer.` with diffusers' module names for LTX-2
    (`patchify_proj` → `proj_in`, `adaln_single` → `time_embed`, `q_norm` → `norm_q`, ...) and
    the text projection under `connectors.`. No alpha.
- `module_name` turns any of them into the model's own module name (the transformer's
  state-dict naming, e.g. `transformer_blocks.0.attn1.to_q`); `lora_key` is its inverse.
- `lora_generation` decides 2.0 vs 2.3 from names that exist in one generation only and
  from the AdaLN widths (6 modulation rows per block in 2.0, 9 in 2.3; model.md §1.5).
  LoRAs that target only attention and feed-forward Linears fit both generations (their
  shapes are equal), so the answer may be None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.families import GEN_2_0, GEN_2_3

STYLES = ("official", "comfy", "diffusers")
DOWN, UP = "down", "up"  # A / lora_down [r, in], B / lora_up [out, r]
_KIND_NAMES = {
    "official": {DOWN: "lora_A", UP: "lora_B"},
    "comfy": {DOWN: "lora_down", UP: "lora_up"},
    "diffusers": {DOWN: "lora_A", UP: "lora_B"},
}
_KINDS = {"lora_A": DOWN, "lora_down": DOWN, "lora_B": UP, "lora_up": UP}

_PAIR_KEY = re.compile(
    r"^(?P<module>.+?)\.(?P<kind>lora_A|lora_B|lora_down|lora_up)(\.[^.]+)?\.weight$"
)
_ALPHA_KEY = re.compile(r"^(?P<module>.+)\.alpha$")

OFFICIAL_PREFIX = "diffusion_model."
_OFFICIAL_PREFIXES = ("base_model.model.", "model.diffusion_model.", OFFICIAL_PREFIX)
_KOHYA_PREFIXES = ("lora_unet_", "lora_transformer_")
_DIFFUSERS_PREFIX = "transformer."
_DIFFUSERS_CONNECTORS = "connectors."
_TEXT_PROJECTION = "text_embedding_projection."

# Segment renames of diffusers' LTX-2 LoRA converter (official → diffusers); the first
# segment additionally maps `adaln_single` / `audio_adaln_single` to the time embedders.
_DIFFUSERS_SEGMENTS = {
    "patchify_proj": "proj_in",
    "audio_patchify_proj": "audio_proj_in",
    "av_ca_video_scale_shift_adaln_single": "av_cross_attn_video_scale_shift",
    "av_ca_a2v_gate_adaln_single": "av_cross_attn_video_a2v_gate",
    "av_ca_audio_scale_shift_adaln_single": "av_cross_attn_audio_scale_shift",
    "av_ca_v2a_gate_adaln_single": "av_cross_attn_audio_v2a_gate",
    "q_norm": "norm_q",
    "k_norm": "norm_k",
    "audio_prompt_adaln_single": "audio_prompt_adaln",
    "prompt_adaln_single": "prompt_adaln",
}
_DIFFUSERS_FIRST = {"adaln_single": "time_embed", "audio_adaln_single": "audio_time_embed"}
_DIFFUSERS_CONNECTOR_SEGMENTS = {"aggregate_embed": "text_proj_in"}

# Every module-name segment of the released transformers that contains an underscore (from
# the 19B and 22B manifests), so kohya's flattened names can be split back into segments.
_UNDERSCORED = frozenset(
    {
        "adaln_single", "audio_adaln_single", "audio_attn1", "audio_attn2",
        "audio_caption_projection", "audio_embeddings_connector", "audio_ff",
        "audio_patchify_proj", "audio_proj_out", "audio_prompt_adaln_single",
        "audio_to_video_attn", "av_ca_a2v_gate_adaln_single",
        "av_ca_audio_scale_shift_adaln_single", "av_ca_v2a_gate_adaln_single",
        "av_ca_video_scale_shift_adaln_single", "caption_projection", "k_norm", "linear_1",
        "linear_2", "patchify_proj", "proj_out", "prompt_adaln_single", "q_norm",
        "timestep_embedder", "to_gate_logits", "to_k", "to_out", "to_q", "to_v",
        "transformer_1d_blocks", "transformer_blocks", "video_embeddings_connector",
        "video_to_audio_attn", "text_embedding_projection", "aggregate_embed",
        "video_aggregate_embed", "audio_aggregate_embed",
    }
)  # fmt: skip
_LONGEST = max(s.count("_") for s in _UNDERSCORED) + 1

# Generation evidence in module names (model.md §1.5; the 2.0 / 2.3 manifests).
_NAMES_2_3 = ("to_gate_logits", "prompt_adaln_single", "audio_prompt_adaln_single")
_NAMES_2_0 = ("caption_projection", "audio_caption_projection")
_ADALN = ("adaln_single.linear", "audio_adaln_single.linear")
_ADALN_ROWS = {6: GEN_2_0, 9: GEN_2_3}

GROUPS = ("video", "audio", "cross-modal", "text connectors")
_CONNECTORS = ("video_embeddings_connector.", "audio_embeddings_connector.", _TEXT_PROJECTION)
_CROSS_MODAL = ("audio_to_video_attn", "video_to_audio_attn", "av_ca_")


def split_strength(text: str) -> tuple[str, float]:
    """`PATH[:STRENGTH]` → `(path, strength)`; strength 1 when absent. A colon that belongs to
    the path (`C:/x.safetensors`) is kept. UsageError for a strength that is not finite."""
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            strength = float(tail)
        except ValueError:
            return text, 1.0
        if not math.isfinite(strength):
            raise UsageError(f"LoRA strength {tail} for {Path(head).name} is not finite")
        return head, strength
    return text, 1.0


def check_style(style: str) -> str:
    if style not in STYLES:
        raise UsageError(f"unknown LoRA key style {style!r}", f"use one of: {', '.join(STYLES)}")
    return style


@dataclass(frozen=True)
class LoraKey:
    """One tensor of a LoRA file: the model module it belongs to and what it is."""

    module: str  # the model's module name
    kind: str  # "down", "up" or "alpha"
    style: str


def parse_lora_key(key: str) -> LoraKey | None:
    """The module and kind of a LoRA tensor key in any style; None for other tensors."""
    if m := _PAIR_KEY.match(key):
        kind = _KINDS[m["kind"]]
        raw = m["module"]
        style = "comfy" if m["kind"] in ("lora_down", "lora_up") else None
    elif m := _ALPHA_KEY.match(key):
        kind, raw, style = "alpha", m["module"], "comfy"
    else:
        return None
    module, found = module_name(raw)
    return LoraKey(module, kind, style or found)


def module_name(raw: str) -> tuple[str, str]:
    """`(model module name, style)` for the module part of a LoRA key in any style."""
    if raw.startswith(_DIFFUSERS_PREFIX):
        return _from_diffusers(raw.removeprefix(_DIFFUSERS_PREFIX)), "diffusers"
    if raw.startswith(_DIFFUSERS_CONNECTORS):
        inverse = {v: k for k, v in _DIFFUSERS_CONNECTOR_SEGMENTS.items()}
        rest = _rename(raw.removeprefix(_DIFFUSERS_CONNECTORS), inverse)
        return _TEXT_PROJECTION + rest, "diffusers"
    for prefix in _KOHYA_PREFIXES:
        if raw.startswith(prefix):
            return _unflatten(raw.removeprefix(prefix)), "comfy"
    for prefix in _OFFICIAL_PREFIXES:
        if raw.startswith(prefix):
            return raw.removeprefix(prefix), "official"
    return raw, "official"


def lora_key(module: str, kind: str, style: str) -> str:
    """The tensor key of `module`'s `kind` ("down", "up", "alpha") in `style`."""
    check_style(style)
    if style == "diffusers":
        if module.startswith(_TEXT_PROJECTION):
            rest = module.removeprefix(_TEXT_PROJECTION)
            name = _DIFFUSERS_CONNECTORS + _rename(rest, _DIFFUSERS_CONNECTOR_SEGMENTS)
        else:
            name = _DIFFUSERS_PREFIX + _to_diffusers(module)
    else:
        # The official text projection lives outside `diffusion_model.` (its own raw prefix).
        name = module if module.startswith(_TEXT_PROJECTION) else OFFICIAL_PREFIX + module
    if kind == "alpha":
        if style != "comfy":
            raise ValueError(f"the {style} style stores no alpha")
        return f"{name}.alpha"
    return f"{name}.{_KIND_NAMES[style][kind]}.weight"


def _rename(name: str, table: Mapping[str, str]) -> str:
    return ".".join(table.get(s, s) for s in name.split("."))


def _to_diffusers(module: str) -> str:
    first, _, rest = module.partition(".")
    first = _DIFFUSERS_FIRST.get(first, first)
    return _rename(f"{first}.{rest}" if rest else first, _DIFFUSERS_SEGMENTS)


def _from_diffusers(name: str) -> str:
    inverse = {v: k for k, v in _DIFFUSERS_SEGMENTS.items()}
    first, _, rest = _rename(name, inverse).partition(".")
    first = {v: k for k, v in _DIFFUSERS_FIRST.items()}.get(first, first)
    return f"{first}.{rest}" if rest else first


def _unflatten(flat: str) -> str:
    """`transformer_blocks_0_attn1_to_out_0` → `transformer_blocks.0.attn1.to_out.0`."""
    if "." in flat:
        return flat
    parts, out, i = flat.split("_"), [], 0
    while i < len(parts):
        for j in range(min(len(parts), i + _LONGEST), i, -1):
            joined = "_".join(parts[i:j])
            if j == i + 1 or joined in _UNDERSCORED:
                out.append(joined)
                i = j
                break
    return ".".join(out)


def module_group(module: str) -> str:
    """video, audio, cross-modal or text connectors."""
    if module.startswith(_CONNECTORS):
        return "text connectors"
    if any(part in module for part in _CROSS_MODAL):
        return "cross-modal"
    if any(s.startswith("audio_") for s in module.split(".")):
        return "audio"
    return "video"


def lora_generation(shapes: Mapping[str, Iterable[int]]) -> tuple[str | None, str | None]:
    """`(generation, evidence)` from `{module: weight shape (out, in, ...)}`; `(None, None)`
    when nothing tells the generations apart. Works for a LoRA's targets and for a model's
    own weights alike. Raises CheckpointError when the evidence contradicts itself."""
    found: dict[str, str] = {}
    for module, shape in shapes.items():
        segments = module.split(".")
        if any(s in _NAMES_2_3 for s in segments):
            found.setdefault(GEN_2_3, module)
        elif segments[0] in _NAMES_2_0:  # the caption projections sit at the top level
            found.setdefault(GEN_2_0, module)
        if module in _ADALN:
            out_features, in_features, *_ = tuple(shape)
            rows = out_features // in_features if in_features else 0
            if rows in _ADALN_ROWS and out_features == rows * in_features:
                found.setdefault(_ADALN_ROWS[rows], f"{module} {[out_features, in_features]}")
    if len(found) > 1:
        raise CheckpointError(
            f"LoRA modules of both generations: {found[GEN_2_0]!r} (LTX-2) and "
            f"{found[GEN_2_3]!r} (LTX-2.3)",
            "the file was merged from LoRAs of two generations",
        )
    if not found:
        return None, None
    ((generation, evidence),) = found.items()
    return generation, evidence
