"""One entry point that turns a checkpoint file into a ready module: `load_component`.

- A short table maps each component name to its builder (an import path, so importing this
  module stays light), its key layouts (ordered `(raw prefix → module prefix)` rules, first
  match per key wins, `None` skips the key) and its hooks: whether a file of only the module's
  own keys is accepted, how a file is recognised as holding it, and what the tensors decide
  that the config may state wrongly. A file may match several layouts (the official monolithic
  file, a split-component file, a file of the module's own keys); the layout that explains most
  of the module's keys is used.
- A model source (`ModelSource`) is one checkpoint file or the split files of one model; each
  component is read from the one file that holds it.
- The module is built on the meta device from the checkpoint's `config`, then only its tensors
  are read, one at a time, through safetensors' memory map, cast per tensor and assigned
  (`load_state_dict(strict=True, assign=True)`), so peak memory stays near the component's own
  size. Missing, unexpected or mis-shaped keys are an error that lists them, never a silent skip.
- Each tensor goes through `TENSOR_STEPS`, the reference builder's steps in its order: fold
  pre-quantised `<param>_scale` siblings as `bf16(w·scale)` (unless `fp8-scaled-mm` keeps
  them), cast fp8-cast layers to float8, fuse LoRAs (through `models.lora`, the helpers
  `fuse_loras` uses too), then the build cast: floating tensors go to the requested dtype
  except float8 payloads and 0-d float32 scalars (scales).
"""

from __future__ import annotations

import copy
import importlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.models.checkpoint import (
    TRANSFORMER_PREFIX,
    CheckpointInfo,
    check_supported,
    read_checkpoint,
)
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
_SECTIONS = ("transformer", "vae", "audio_vae", "vocoder")


def _vae_layouts(root: str, part: str) -> tuple[Layout, ...]:
    """Monolithic `vae.encoder.` + shared stats, or split `encoder.` + stats."""
    return (
        ((f"{root}{part}", ""), (f"{root}{_STATS}", _STATS)),
        ((part, ""), (_STATS, _STATS)),
    )


# ---------------------------------------------------------------------------------------------
# Hooks: what the tensors say that the config does not


@dataclass(frozen=True)
class KeyEvidence:
    """What a hook sees: the file, the key mapping chosen for the module, the builder inputs."""

    info: CheckpointInfo
    mapping: Mapping[str, str]  # module key → raw key
    config: dict[str, Any]
    options: dict[str, Any]


def _decoder_timestep_conditioning(e: KeyEvidence) -> tuple[dict[str, Any], dict[str, Any]]:
    """The released 19B config and its decoder tensors may disagree: the tensors decide."""
    has_tc = any(k in ("last_scale_shift_table", "timestep_scale_multiplier") for k in e.mapping)
    if bool(e.config["vae"].get("timestep_conditioning", True)) == has_tc:
        return e.config, e.options
    logger.info("video decoder timestep_conditioning=%s (from the checkpoint's tensors)", has_tc)
    config = copy.deepcopy(e.config)
    config["vae"]["timestep_conditioning"] = has_tc
    return config, e.options


def _gemma_depth(e: KeyEvidence) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Gemma depth the text projection expects is not in the config; its shape says it."""
    if "gemma_hidden_states" in e.options:
        return e.config, e.options
    hidden = e.options.get("gemma_hidden_size") or e.config["transformer"].get("caption_channels")
    weight = next((r for k, r in e.mapping.items() if k.endswith("aggregate_embed.weight")), None)
    if not hidden or weight is None:
        return e.config, e.options
    flat = e.info.tensors[weight].shape[-1]
    if flat % hidden:
        return e.config, e.options
    return e.config, {**e.options, "gemma_hidden_states": flat // hidden}


def _holds_prefixed_keys(info: CheckpointInfo, component: str) -> bool:
    return bool(component_keys(info, component))


def _is_upsampler_file(info: CheckpointInfo, component: str) -> bool:
    return info.kind == "upsampler"


@dataclass(frozen=True)
class Component:
    builder: str | Callable[..., nn.Module]  # "package.module:function" or the function
    section: str | None  # config section the builder reads; None = flat config (upsampler)
    layouts: tuple[Layout, ...]  # prefixed layouts, tried in order
    lenient: tuple[str, ...] = ()  # module-key prefixes whose extra file keys are ignored
    own_keys: bool = True  # a file holding the module's keys unprefixed is accepted
    own_layout: Layout = _BARE  # how such a file's keys map (the transformer skips connectors)
    # Whether a file holds this component, judged from its header alone.
    held: Callable[[CheckpointInfo, str], bool] = _holds_prefixed_keys
    # Config / builder options the tensors decide (after the layout is chosen).
    from_keys: Callable[[KeyEvidence], tuple[dict[str, Any], dict[str, Any]]] | None = None

    @property
    def all_layouts(self) -> tuple[Layout, ...]:
        return (*self.layouts, self.own_layout) if self.own_keys else self.layouts


_SKIP_CONNECTORS: Layout = (
    (_P + "video_embeddings_connector.", None),
    (_P + "audio_embeddings_connector.", None),
)

COMPONENTS: dict[str, Component] = {
    "transformer": Component(
        "ltx2cli.models.transformer:build_transformer",
        "transformer",
        ((*_SKIP_CONNECTORS, (_P, "")),),
        own_layout=(
            ("video_embeddings_connector.", None),
            ("audio_embeddings_connector.", None),
            *_BARE,
        ),
    ),
    "video_connector": Component(
        "ltx2cli.models.text_connectors:build_video_connector",
        "transformer",
        (((_P + "video_embeddings_connector.", ""),),),
    ),
    "audio_connector": Component(
        "ltx2cli.models.text_connectors:build_audio_connector",
        "transformer",
        (((_P + "audio_embeddings_connector.", ""),),),
    ),
    "text_projection": Component(
        "ltx2cli.models.text_connectors:build_text_projection",
        "transformer",
        ((("text_embedding_projection.", ""),),),
        from_keys=_gemma_depth,
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
        from_keys=_decoder_timestep_conditioning,
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
    "vocoder": Component("ltx2cli.models.vocoder:build_vocoder", "vocoder", ((("vocoder.", ""),),)),
    # A separate file with a flat config and no key prefix.
    "upsampler": Component(
        "ltx2cli.models.upsampler:build_upsampler", None, (), held=_is_upsampler_file
    ),
}


def get_component(name: str) -> Component:
    try:
        return COMPONENTS[name]
    except KeyError:
        raise UsageError(
            f"unknown model component {name!r}", f"use one of: {', '.join(COMPONENTS)}"
        ) from None


# ---------------------------------------------------------------------------------------------
# Sources and key mapping


@dataclass(frozen=True)
class ModelSource:
    """One checkpoint file, or the split files of one model; each component lives in one file."""

    files: tuple[Path, ...]

    @classmethod
    def of(
        cls, source: str | os.PathLike[str] | ModelSource | Iterable[str | os.PathLike[str]]
    ) -> ModelSource:
        if isinstance(source, ModelSource):
            return source
        if isinstance(source, str | os.PathLike):
            return cls((Path(source),))
        files = tuple(Path(p) for p in source)
        if not files:
            raise UsageError("a model source needs at least one checkpoint file")
        return cls(files)

    def infos(self) -> list[CheckpointInfo]:
        return [read_checkpoint(p) for p in self.files]


Source = str | os.PathLike[str] | ModelSource | CheckpointInfo | Sequence[str | os.PathLike[str]]


def _infos(source: Source) -> list[CheckpointInfo]:
    if isinstance(source, CheckpointInfo):
        return [source]
    return ModelSource.of(source).infos()


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
    """`{module key: raw key}` for `component` without building it: the first prefixed layout
    that selects anything (a file's own bare keys only for a component without prefixes)."""
    spec = get_component(component)
    for layout in spec.layouts or spec.all_layouts:
        mapping = _map_keys(info.tensors, layout)
        if mapping:
            return mapping
    return {}


def available_components(source: Source) -> list[str]:
    """The components a source holds tensors for (by the official raw prefixes)."""
    infos = _infos(source)
    return [c for c, spec in COMPONENTS.items() if any(spec.held(i, c) for i in infos)]


def component_nbytes(source: Source, component: str) -> int:
    """Stored bytes of one component's tensors (for memory estimates before loading)."""
    for info in _infos(source):
        if get_component(component).held(info, component):
            return info.nbytes(component_keys(info, component).values())
    return 0


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


def _choose_layout(
    info: CheckpointInfo, spec: Component, expected: Iterable[str]
) -> tuple[tuple[int, int], dict[str, str]]:
    """The layout explaining most expected keys (fewest extras on ties), with its score."""
    expected = set(expected)
    best: tuple[tuple[int, int], dict[str, str]] | None = None
    for layout in spec.all_layouts:
        mapping = _map_keys(info.tensors, layout)
        score = (len(expected & mapping.keys()), -len(mapping.keys() - expected))
        if best is None or score > best[0]:
            best = (score, mapping)
    assert best is not None
    return best


def component_builder(spec: Component) -> Callable[..., nn.Module]:
    if callable(spec.builder):
        return spec.builder
    module_name, _, fn_name = spec.builder.partition(":")
    return getattr(importlib.import_module(module_name), fn_name)


def _listing(keys: Iterable[str], limit: int = 5) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > limit else ''})"


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


def _match_file(
    infos: list[CheckpointInfo],
    spec: Component,
    component: str,
    config: Mapping[str, Any] | None,
    options: dict[str, Any],
) -> tuple[CheckpointInfo, dict[str, Any], dict[str, str]]:
    """The file of the source that holds `component`: `(info, config, key mapping)`."""
    candidates = [i for i in infos if spec.held(i, component)] or infos
    best: tuple[tuple[int, int], CheckpointInfo, dict[str, Any], dict[str, str]] | None = None
    problem: CheckpointError | None = None
    for info in candidates:
        if info.kind == "lora":
            raise CheckpointError(
                f"{info.path.name} is a LoRA file, not a model checkpoint",
                "pass it in `loras`, not as the model",
            )
        check_supported(info.tensors, info.config, info.metadata)
        try:
            cfg = _component_config(info, spec, config)
        except CheckpointError as e:
            problem = problem or e
            continue
        with torch.device("meta"):
            expected = component_builder(spec)(cfg, **options).state_dict().keys()
        score, mapping = _choose_layout(info, spec, expected)
        if best is None or score > best[0]:
            best = (score, info, cfg, mapping)
    if best is None:
        assert problem is not None
        raise problem
    if best[0][0] == 0:
        held = sorted({c for i in infos for c in COMPONENTS if COMPONENTS[c].held(i, c)})
        names = ", ".join(i.path.name for i in infos)
        raise CheckpointError(
            f"{names} holds no '{component}' weights",
            f"it holds: {', '.join(held) or 'none of them'}",
        )
    return best[1], best[2], best[3]


def plan_component(
    source: Source,
    component: str,
    *,
    quantization: str | None = None,
    config: Mapping[str, Any] | None = None,
    **options: Any,
) -> ComponentPlan:
    """Build `component` on the meta device and match it against the source's keys and shapes.

    Reads only headers; raises CheckpointError naming the key or metadata for files this tool
    cannot run (LTX-2.5, video-only layouts) and listing missing, unexpected or mis-shaped
    keys. `load_component` is this plus reading the tensors.
    """
    spec = get_component(component)
    quantization = check_quantization(quantization)
    if quantization and component != "transformer":
        raise UsageError(
            f"quantization {quantization!r} applies to the transformer only, not {component!r}"
        )
    info, cfg, mapping = _match_file(_infos(source), spec, component, config, options)
    builder = component_builder(spec)
    if spec.from_keys is not None:
        cfg, options = spec.from_keys(KeyEvidence(info, mapping, cfg, options))
    with torch.device("meta"):
        module = builder(cfg, **options)

    # 1. Quantisation changes which modules exist before anything is read.
    # As the reference: only F8_E4M3 weights with a weight_scale sibling run scaled matmuls.
    fp8_in_file = [k for k, raw in mapping.items() if info.tensors[raw].dtype == "F8_E4M3"]
    fp8_layers: set[str] = set()
    if quantization == "fp8-scaled-mm":
        layers = scaled_mm_layers(mapping, fp8_in_file)
        if not layers:
            raise CheckpointError(
                f"{info.path.name} is not pre-quantised (no float8 weights with weight_scale)",
                "fp8-scaled-mm needs an -fp8 checkpoint; use quantization 'fp8-cast' for this file",
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


# ---------------------------------------------------------------------------------------------
# Per-tensor steps


@dataclass
class TensorWork:
    """What the per-tensor steps need, decided once per load."""

    dtype: torch.dtype | None  # build dtype; None keeps each tensor's stored dtype
    fuse_on: torch.device  # where LoRA deltas are computed and added
    fuse_dtype: torch.dtype  # the dtype LoRA deltas are aggregated in
    scales: dict[str, torch.Tensor] = field(default_factory=dict)  # folded `_scale` siblings
    cast_fp8: set[str] = field(default_factory=set)  # fp8-cast layer tensors
    kept_fp8: set[str] = field(default_factory=set)  # tensors that stay float8
    fusing: dict[str, list[Any]] = field(default_factory=dict)  # weight key → LoRA terms
    weight_scales: dict[str, torch.Tensor] = field(default_factory=dict)  # fp8-scaled-mm


def fold_scale(key: str, t: torch.Tensor, work: TensorWork) -> torch.Tensor:
    """Pre-quantised weights the module keeps in high precision: `bf16(w · scale)`."""
    if key not in work.scales:
        return t
    return (t.float() * work.scales[key]).to(torch.bfloat16)


def cast_fp8(key: str, t: torch.Tensor, work: TensorWork) -> torch.Tensor:
    """fp8-cast layers store float8 weights (and biases)."""
    if key in work.cast_fp8 and t.dtype != torch.float8_e4m3fn:
        return to_fp8(t)
    return t


def fuse_lora(key: str, t: torch.Tensor, work: TensorWork) -> torch.Tensor:
    """Add the LoRA delta with the helpers `fuse_loras` uses (fp8-scaled-mm re-quantises)."""
    if key not in work.fusing:
        return t
    from ltx2cli.models.lora import fuse_weight, lora_delta

    delta = lora_delta(work.fusing[key], t.shape, dtype=work.fuse_dtype, device=work.fuse_on)
    scale = work.weight_scales.get(key)
    scale = None if scale is None else scale.to(work.fuse_on)
    t, new_scale = fuse_weight(t.to(work.fuse_on), delta, scale)
    if new_scale is not None:
        work.weight_scales[key] = new_scale
    return t


def build_cast(key: str, t: torch.Tensor, work: TensorWork) -> torch.Tensor:
    """Floating tensors to the build dtype, except float8 payloads that stay float8 and 0-d
    float32 scalars (scales and multipliers keep float32, as in the reference builder)."""
    if not t.is_floating_point():
        return t
    if t.dtype in FP8_DTYPES:
        return t if key in work.kept_fp8 else t.to(work.dtype or torch.bfloat16)
    if t.dim() == 0 and t.dtype == torch.float32:
        return t
    return t.to(work.dtype or t.dtype)


TENSOR_STEPS: tuple[Callable[[str, torch.Tensor, TensorWork], torch.Tensor], ...] = (
    fold_scale,
    cast_fp8,
    fuse_lora,
    build_cast,
)


def load_component(
    source: Source,
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
    """Build `component` from a checkpoint file (or a `ModelSource` of split files) and load it.

    `dtype` None keeps each tensor's stored dtype. `quantization` is None, `"fp8-cast"` or
    `"fp8-scaled-mm"` (transformer only). `loras` are `LoraSpec`s, paths or `(path, strength)`
    pairs fused into the weights (`use_lora_alpha=False` ignores kohya `.alpha` tensors, as the
    reference does). `config` replaces the embedded config (for split files without one).
    `progress(done_bytes, total_bytes)` is called after every tensor. Other keyword `options`
    go to the builder. Returns the module in eval mode.
    """
    from ltx2cli.models.lora import aggregation_dtype, fusion_device, plan_loras

    device = torch.device(device)
    if check_quantization(quantization) == "fp8-scaled-mm":
        check_scaled_mm_device(device)
    plan = plan_component(source, component, quantization=quantization, config=config, **options)
    info, module, mapping, folds = plan.info, plan.module, plan.mapping, plan.folds

    work = TensorWork(dtype, fusion_device(device), aggregation_dtype(device))
    work.kept_fp8 = {f"{layer}.{p}" for layer in plan.fp8_layers for p in ("weight", "bias")}
    work.cast_fp8 = {
        k
        for k in work.kept_fp8
        if isinstance(module.get_submodule(k.rpartition(".")[0]), Fp8CastLinear)
    }
    if loras:
        shapes = {k: t.shape for k, t in module.state_dict(keep_vars=True).items()}
        work.fusing = plan_loras(
            shapes, loras, lora_load_device=lora_load_device, use_alpha=use_lora_alpha
        ).terms
    # fp8-scaled-mm layers fuse into their dequantised weight and get a new scale.
    scaled = {k for k in work.fusing if k in work.kept_fp8 and k not in work.cast_fp8}
    total, done = plan.nbytes, 0
    state: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(info.path), framework="pt", device="cpu") as f:
            work.scales = {owner: f.get_tensor(raw).float() for owner, raw in folds.items()}
            work.weight_scales = {k: f.get_tensor(mapping[f"{k}_scale"]) for k in scaled}
        # 4. Read one tensor at a time through the steps. The map is reopened every READ_WINDOW
        # bytes: pages read only to be cast are released when their mapping closes, so a
        # casting load peaks near the result's size.
        for chunk in _windows(mapping.items(), info, READ_WINDOW):
            with safe_open(str(info.path), framework="pt", device="cpu") as f:
                for key, raw in chunk:
                    t = f.get_tensor(raw)
                    for step in TENSOR_STEPS:
                        t = step(key, t, work)
                    state[key] = t.to(device)
                    done += info.tensors[raw].nbytes
                    if progress is not None:
                        progress(done, total)
    except (OSError, SafetensorError) as e:
        raise CheckpointError(f"cannot read {info.path.name}: {e}", _REDOWNLOAD) from None
    for key, new_scale in work.weight_scales.items():  # re-quantised fp8-scaled-mm weights
        state[f"{key}_scale"] = new_scale.to(device)
    module.load_state_dict(state, strict=True, assign=True)
    del state
    for name, p in module.named_parameters():
        if p.dtype in FP8_DTYPES:
            p.requires_grad_(False)
        if p.is_meta:  # pragma: no cover - guarded by the strict check above
            raise CheckpointError(f"{info.path.name}: parameter {name} was not loaded")
    if work.fusing:
        logger.info("fused %d LoRA(s) into %d weights", len(loras), len(work.fusing))
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
