"""One entry point that turns a checkpoint file into a ready module: `load_component`.

- A short table maps each component name to its builder (an import path, so importing this
  module stays light) and to key layouts: ordered `(raw prefix → module prefix)` rules, first
  match per key wins, `None` skips the key. A file may match several layouts (the official
  monolithic file, a split-component file, a file holding only that module's own keys); the
  layout that explains most of the module's keys is used.
- The module is built on the meta device from the checkpoint's `config`, then only its tensors
  are read, one at a time, through safetensors' memory map, cast per tensor and assigned
  (`load_state_dict(strict=True, assign=True)`), so peak memory stays near the component's own
  size. Missing, unexpected or mis-shaped keys are an error that lists them, never a silent skip.
- Each tensor goes through the reference builder's steps in its order: the load-time ops
  (pre-quantised `<param>_scale` siblings folded as `bf16(w·scale)` unless `fp8-scaled-mm`
  keeps them; fp8-cast layers cast to float8), LoRA fusion in the resulting dtype, then the
  build cast: floating tensors go to the requested dtype except float8 payloads and 0-d
  float32 scalars (scales).
"""

from __future__ import annotations

import copy
import importlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.models.checkpoint import TRANSFORMER_PREFIX, CheckpointInfo, read_checkpoint
from ltx2cli.models.fp8 import (
    FP8_DTYPES,
    Fp8CastLinear,
    apply_fp8_cast,
    apply_fp8_scaled_mm,
    check_quantization,
    check_scaled_mm_device,
    scaled_mm_layers,
    to_fp8,
)

logger = logging.getLogger(__name__)

Rule = tuple[str, "str | None"]
Layout = tuple[Rule, ...]
ProgressFn = Callable[[int, int], None]

_P = TRANSFORMER_PREFIX
_BARE: Layout = (("", ""),)
_STATS = "per_channel_statistics."


def _vae_layouts(root: str, part: str) -> tuple[Layout, ...]:
    """Monolithic `vae.encoder.` + shared stats, split `encoder.` + stats, or the module's keys."""
    return (
        ((f"{root}{part}", ""), (f"{root}{_STATS}", _STATS)),
        ((part, ""), (_STATS, _STATS)),
        _BARE,
    )


@dataclass(frozen=True)
class Component:
    builder: str | Callable[..., nn.Module]  # "package.module:function" or the function
    section: str | None  # config section the builder reads; None = flat config (upsampler)
    layouts: tuple[Layout, ...]
    lenient: tuple[str, ...] = ()  # module-key prefixes whose extra file keys are ignored


_SKIP_CONNECTORS: Layout = (
    (_P + "video_embeddings_connector.", None),
    (_P + "audio_embeddings_connector.", None),
)

COMPONENTS: dict[str, Component] = {
    "transformer": Component(
        "ltx2cli.models.transformer:build_transformer",
        "transformer",
        (
            (*_SKIP_CONNECTORS, (_P, "")),
            (("video_embeddings_connector.", None), ("audio_embeddings_connector.", None), *_BARE),
        ),
    ),
    "video_connector": Component(
        "ltx2cli.models.text_connectors:build_video_connector",
        "transformer",
        (((_P + "video_embeddings_connector.", ""),), _BARE),
    ),
    "audio_connector": Component(
        "ltx2cli.models.text_connectors:build_audio_connector",
        "transformer",
        (((_P + "audio_embeddings_connector.", ""),), _BARE),
    ),
    "text_projection": Component(
        "ltx2cli.models.text_connectors:build_text_projection",
        "transformer",
        ((("text_embedding_projection.", ""),), _BARE),
    ),
    # Older VAEs stored extra statistics under the same prefix; the reference ignores them.
    "video_encoder": Component(
        "ltx2cli.models.video_vae:build_video_encoder",
        "vae",
        _vae_layouts("vae.", "encoder."),
        (_STATS,),
    ),
    "video_decoder": Component(
        "ltx2cli.models.video_vae:build_video_decoder",
        "vae",
        _vae_layouts("vae.", "decoder."),
        (_STATS,),
    ),
    "audio_encoder": Component(
        "ltx2cli.models.audio_vae:build_audio_encoder",
        "audio_vae",
        _vae_layouts("audio_vae.", "encoder."),
        (_STATS,),
    ),
    "audio_decoder": Component(
        "ltx2cli.models.audio_vae:build_audio_decoder",
        "audio_vae",
        _vae_layouts("audio_vae.", "decoder."),
        (_STATS,),
    ),
    # The leading `vocoder.` is removed exactly once (2.3 keys are `vocoder.vocoder.*`).
    "vocoder": Component(
        "ltx2cli.models.vocoder:build_vocoder", "vocoder", ((("vocoder.", ""),), _BARE)
    ),
    "upsampler": Component("ltx2cli.models.upsampler:build_upsampler", None, (_BARE,)),
}
_SECTIONS = ("transformer", "vae", "audio_vae", "vocoder")


def get_component(name: str) -> Component:
    try:
        return COMPONENTS[name]
    except KeyError:
        raise UsageError(
            f"unknown model component {name!r}", f"use one of: {', '.join(COMPONENTS)}"
        ) from None


def _map_keys(keys: Iterable[str], layout: Layout) -> dict[str, str]:
    """`{module key: raw key}` for the raw keys that `layout` selects."""
    out: dict[str, str] = {}
    for raw in keys:
        for prefix, target in layout:
            if raw.startswith(prefix):
                if target is not None:
                    module_key = target + raw[len(prefix) :]
                    if module_key in out:
                        raise CheckpointError(
                            f"keys {out[module_key]!r} and {raw!r} both map to {module_key!r}",
                            "the file holds the same tensor twice; use an official checkpoint",
                        )
                    out[module_key] = raw
                break
    return out


def component_keys(info: CheckpointInfo, component: str) -> dict[str, str]:
    """`{module key: raw key}` for `component` without building it (first layout with a prefix
    that selects anything; a file's own bare keys only for the upsampler)."""
    spec = get_component(component)
    for layout in spec.layouts:
        if layout == _BARE and len(spec.layouts) > 1:
            continue
        mapping = _map_keys(info.tensors, layout)
        if mapping:
            return mapping
    return {}


def available_components(path: str | os.PathLike[str]) -> list[str]:
    """The components a file holds tensors for (by the official raw prefixes)."""
    info = read_checkpoint(path)
    if info.kind == "upsampler":
        return ["upsampler"]
    return [c for c in COMPONENTS if c != "upsampler" and component_keys(info, c)]


def component_nbytes(path: str | os.PathLike[str], component: str) -> int:
    """Stored bytes of one component's tensors (for memory estimates before loading)."""
    info = read_checkpoint(path)
    return info.nbytes(component_keys(info, component).values())


def _component_config(
    info: CheckpointInfo, spec: Component, override: Mapping[str, Any] | None
) -> dict[str, Any]:
    config = dict(override) if override is not None else info.require_config()
    if spec.section is None:
        return config
    if spec.section not in config and config and not any(s in config for s in _SECTIONS):
        # A split file whose config is the component's own flat section.
        config = {spec.section: config}
    if not isinstance(config.get(spec.section), Mapping):
        raise CheckpointError(
            f"{info.path.name}: the embedded config has no '{spec.section}' section",
            "the file's config does not describe this component",
        )
    return config


def _patch_config_from_keys(
    config: dict[str, Any], component: str, module_keys: Iterable[str]
) -> dict[str, Any]:
    """Let the tensors decide what the config may state wrongly (model.md §4.1: 19B decoder)."""
    if component != "video_decoder":
        return config
    has_tc = any(k in ("last_scale_shift_table", "timestep_scale_multiplier") for k in module_keys)
    if bool(config["vae"].get("timestep_conditioning", True)) != has_tc:
        logger.info(
            "video decoder timestep_conditioning=%s (from the checkpoint's tensors)", has_tc
        )
        config = copy.deepcopy(config)
        config["vae"]["timestep_conditioning"] = has_tc
    return config


def _options_from_keys(
    info: CheckpointInfo,
    component: str,
    config: Mapping[str, Any],
    mapping: Mapping[str, str],
    options: dict[str, Any],
) -> dict[str, Any]:
    """The Gemma depth the text projection expects is not in the config; its shape says it."""
    if component != "text_projection" or "gemma_hidden_states" in options:
        return options
    hidden = options.get("gemma_hidden_size") or config["transformer"].get("caption_channels")
    weight = next((raw for k, raw in mapping.items() if k.endswith("aggregate_embed.weight")), None)
    if not hidden or weight is None:
        return options
    flat = info.tensors[weight].shape[-1]
    return {**options, "gemma_hidden_states": flat // hidden} if flat % hidden == 0 else options


def _choose_layout(
    info: CheckpointInfo, spec: Component, expected: Iterable[str], component: str
) -> dict[str, str]:
    expected = set(expected)
    best: tuple[tuple[int, int], dict[str, str]] | None = None
    for layout in spec.layouts:
        mapping = _map_keys(info.tensors, layout)
        score = (len(expected & mapping.keys()), -len(mapping.keys() - expected))
        if best is None or score > best[0]:
            best = (score, mapping)
    assert best is not None
    if best[0][0] == 0:
        held = [c for c in COMPONENTS if component_keys(info, c)] or ["none of them"]
        raise CheckpointError(
            f"{info.path.name} holds no '{component}' weights",
            f"it holds: {', '.join(held)}",
        )
    return best[1]


def component_builder(spec: Component) -> Callable[..., nn.Module]:
    if callable(spec.builder):
        return spec.builder
    module_name, _, fn_name = spec.builder.partition(":")
    return getattr(importlib.import_module(module_name), fn_name)


def _listing(keys: Iterable[str], limit: int = 5) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > limit else ''})"


def _target_dtype(
    t: torch.Tensor, dtype: torch.dtype | None, keep_fp8: bool, high: torch.dtype
) -> torch.dtype:
    if not t.is_floating_point():
        return t.dtype
    if t.dtype in FP8_DTYPES:
        return t.dtype if keep_fp8 else high
    if t.dim() == 0 and t.dtype == torch.float32:
        return t.dtype  # scales and scalar multipliers keep float32 (reference builder)
    return dtype or t.dtype


@dataclass
class ComponentPlan:
    """Everything decided before reading tensor data: the meta module and the key mapping."""

    info: CheckpointInfo
    component: str
    module: nn.Module  # on the meta device, quantised layers already swapped
    mapping: dict[str, str]  # module key → raw key, exactly the module's state-dict keys
    folds: dict[str, str]  # module key → raw key of its `_scale` sibling to multiply in
    fp8_layers: set[str]  # module names whose weight (and bias) stay float8

    @property
    def nbytes(self) -> int:
        """Stored bytes that loading reads."""
        return self.info.nbytes(self.mapping.values()) + self.info.nbytes(self.folds.values())


def plan_component(
    source: str | os.PathLike[str] | CheckpointInfo,
    component: str,
    *,
    quantization: str | None = None,
    config: Mapping[str, Any] | None = None,
    **options: Any,
) -> ComponentPlan:
    """Build `component` on the meta device and match it against the file's keys and shapes.

    Reads only the header; raises CheckpointError listing missing, unexpected or mis-shaped
    keys. `load_component` is this plus reading the tensors.
    """
    spec = get_component(component)
    quantization = check_quantization(quantization)
    if quantization and component != "transformer":
        raise UsageError(
            f"quantization {quantization!r} applies to the transformer only, not {component!r}"
        )
    info = source if isinstance(source, CheckpointInfo) else read_checkpoint(source)
    if info.kind == "lora":
        raise CheckpointError(
            f"{info.path.name} is a LoRA file, not a model checkpoint", "pass it with --lora"
        )
    cfg = _component_config(info, spec, config)

    builder = component_builder(spec)
    with torch.device("meta"):
        module = builder(cfg, **options)
    mapping = _choose_layout(info, spec, module.state_dict().keys(), component)
    derived = _options_from_keys(info, component, cfg, mapping, options)
    patched = _patch_config_from_keys(cfg, component, mapping)
    if patched is not cfg or derived is not options:
        with torch.device("meta"):
            module = builder(patched, **derived)

    # 1. Quantisation changes which modules exist before anything is read.
    # As the reference: only F8_E4M3 weights with a weight_scale sibling run scaled matmuls.
    fp8_in_file = [k for k, raw in mapping.items() if info.tensors[raw].dtype == "F8_E4M3"]
    fp8_layers: set[str] = set()
    if quantization == "fp8-scaled-mm":
        layers = scaled_mm_layers(mapping, fp8_in_file)
        if not layers:
            raise CheckpointError(
                f"{info.path.name} is not pre-quantised (no float8 weights with weight_scale)",
                "fp8-scaled-mm needs an -fp8 checkpoint; use --quantization fp8-cast for this file",
            )
        fp8_layers = set(apply_fp8_scaled_mm(module, layers, mapping))
    elif quantization == "fp8-cast":
        fp8_layers = set(apply_fp8_cast(module))
    expected = module.state_dict(keep_vars=True)

    # 2. Fold `<param>_scale` siblings the module does not keep; drop unused input scales.
    folds: dict[str, str] = {}
    for key in list(mapping):
        if key in expected or not key.endswith("_scale"):
            continue
        owner = key.removesuffix("_scale")
        if key.endswith(".input_scale"):
            mapping.pop(key)
        elif owner in mapping:
            folds[owner] = mapping.pop(key)
    for key in [k for k in mapping if k not in expected and k.startswith(spec.lenient or ("\0",))]:
        logger.debug("ignoring extra tensor %s", mapping.pop(key))

    # 3. Strict key and shape check before reading a byte of tensor data.
    missing, unexpected = expected.keys() - mapping.keys(), mapping.keys() - expected.keys()
    if missing or unexpected:
        parts = [f"missing {_listing(missing)}"] if missing else []
        parts += [f"unexpected {_listing(unexpected)}"] if unexpected else []
        raise CheckpointError(
            f"{info.path.name}: '{component}' keys do not match the model: " + "; ".join(parts),
            "the checkpoint and its embedded config disagree, or this is not an LTX-2 file",
        )
    bad_shapes = [
        f"{k} {list(info.tensors[raw].shape)} vs {list(expected[k].shape)}"
        for k, raw in mapping.items()
        if tuple(info.tensors[raw].shape) != tuple(expected[k].shape)
    ]
    if bad_shapes:
        raise CheckpointError(
            f"{info.path.name}: '{component}' shapes differ from the config: "
            + _listing(bad_shapes, 3),
            "the embedded config does not belong to these weights",
        )

    return ComponentPlan(info, component, module, mapping, folds, fp8_layers)


def load_component(
    path: str | os.PathLike[str],
    component: str,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    quantization: str | None = None,
    loras: Sequence[Any] = (),
    lora_load_device: torch.device | str = "cpu",
    use_lora_alpha: bool = True,
    config: Mapping[str, Any] | None = None,
    progress: ProgressFn | None = None,
    **options: Any,
) -> nn.Module:
    """Build `component` from the checkpoint at `path` and load its weights.

    `dtype` None keeps each tensor's stored dtype. `quantization` is None, `"fp8-cast"` or
    `"fp8-scaled-mm"` (transformer only). `loras` are `LoraSpec`s, paths or `(path, strength)`
    pairs fused into the weights (`use_lora_alpha=False` ignores kohya `.alpha` tensors, as the
    reference does). `config` replaces the embedded config (for split files without one).
    `progress(done_bytes, total_bytes)` is called after every tensor. Other keyword `options`
    go to the builder. Returns the module in eval mode.
    """
    from ltx2cli.models.lora import (
        fuse_weight,
        fusion_device,
        fusion_dtype,
        lora_delta,
        plan_loras,
    )

    device = torch.device(device)
    if check_quantization(quantization) == "fp8-scaled-mm":
        check_scaled_mm_device(device)
    plan = plan_component(path, component, quantization=quantization, config=config, **options)
    info, module, mapping, folds = plan.info, plan.module, plan.mapping, plan.folds

    kept_fp8 = {f"{layer}.{p}" for layer in plan.fp8_layers for p in ("weight", "bias")}
    cast_fp8 = {
        k for k in kept_fp8 if isinstance(module.get_submodule(k.rpartition(".")[0]), Fp8CastLinear)
    }
    fusing: dict[str, list[Any]] = {}
    if loras:
        shapes = {k: t.shape for k, t in module.state_dict(keep_vars=True).items()}
        fusing = plan_loras(
            shapes, loras, lora_load_device=lora_load_device, use_alpha=use_lora_alpha
        ).terms
    scaled = {k for k in fusing if k in kept_fp8 and k not in cast_fp8}  # fp8-scaled-mm layers
    fuse_on = fusion_device(device)
    high = dtype or torch.bfloat16
    total, done = plan.nbytes, 0
    state: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(info.path), framework="pt", device="cpu") as f:
            scales = {owner: f.get_tensor(raw).float() for owner, raw in folds.items()}
            weight_scales = {k: f.get_tensor(mapping[f"{k}_scale"]) for k in scaled}
        # 4. Read one tensor at a time and treat it as the reference builder does: its load-time
        # ops (scale folding, fp8 cast), LoRA fusion in that dtype, then the build dtype cast.
        # The map is reopened every READ_WINDOW bytes: pages read only to be cast are released
        # when their mapping closes, so a casting load peaks near the result's size.
        for chunk in _windows(mapping.items(), info, READ_WINDOW):
            with safe_open(str(info.path), framework="pt", device="cpu") as f:
                for key, raw in chunk:
                    t = f.get_tensor(raw)
                    if key in scales:  # the reference folds pre-quantised scales into bf16
                        t = (t.float() * scales[key]).to(torch.bfloat16)
                    if key in cast_fp8 and t.dtype != torch.float8_e4m3fn:
                        t = to_fp8(t)
                    if key in fusing:
                        fuse_dtype = fusion_dtype(t.dtype, dtype)
                        delta = lora_delta(fusing[key], t.shape, dtype=fuse_dtype, device=fuse_on)
                        scale = weight_scales.get(key)
                        scale = None if scale is None else scale.to(fuse_on)
                        t, new_scale = fuse_weight(t.to(fuse_on), delta, scale)
                        if new_scale is not None:
                            weight_scales[key] = new_scale
                    t = t.to(_target_dtype(t, dtype, key in kept_fp8, high))
                    state[key] = t.to(device)
                    done += info.tensors[raw].nbytes
                    if progress is not None:
                        progress(done, total)
    except (OSError, SafetensorError) as e:
        raise CheckpointError(f"cannot read {info.path.name}: {e}", _REDOWNLOAD) from None
    for key, new_scale in weight_scales.items():  # re-quantised fp8-scaled-mm weights
        state[f"{key}_scale"] = new_scale.to(device)
    module.load_state_dict(state, strict=True, assign=True)
    del state
    for name, p in module.named_parameters():
        if p.dtype in FP8_DTYPES:
            p.requires_grad_(False)
        if p.is_meta:  # pragma: no cover - guarded by the strict check above
            raise CheckpointError(f"{info.path.name}: parameter {name} was not loaded")
    if fusing:
        logger.info("fused %d LoRA(s) into %d weights", len(loras), len(fusing))
    return module.eval()


_REDOWNLOAD = "the file is damaged; download it again (ltx2 models verify)"
READ_WINDOW = 128 * 1024**2


def _windows(
    items: Iterable[tuple[str, str]], info: CheckpointInfo, size: int
) -> list[list[tuple[str, str]]]:
    """`items` in consecutive groups of at most `size` stored bytes (one tensor may exceed it)."""
    groups: list[list[tuple[str, str]]] = [[]]
    used = 0
    for key, raw in items:
        nbytes = info.tensors[raw].nbytes
        if groups[-1] and used + nbytes > size:
            groups.append([])
            used = 0
        groups[-1].append((key, raw))
        used += nbytes
    return groups
