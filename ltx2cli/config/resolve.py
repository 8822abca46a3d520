"""Precedence, implemented once: built-in defaults < preset < `LTX2_*` environment < flags.

`resolve()` works for any dataclass schema. It returns the settings and, per field, where the
value came from (`default`, `preset:NAME`, `env:LTX2_STEPS`, `flag:--steps`), which ends up in
each output's metadata sidecar and in `ltx2 presets show`. A schema may define a classmethod
`layer_defaults(chosen)` whose defaults depend on what the layers chose (generation settings take
the chosen pipeline's defaults); otherwise the dataclass field defaults are used.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from ltx2cli.config.loader import FieldError, Partial, build, check, field_types, parse_env
from ltx2cli.config.presets import Preset, find_preset
from ltx2cli.text import did_you_mean

logger = logging.getLogger(__name__)

T = TypeVar("T")

ENV_PREFIX = "LTX2_"
DEFAULT = "default"
#: `LTX2_*` variables that are not settings fields: the data dir, the catalog file, switches.
GLOBAL_VARIABLES = frozenset({"LTX2_HOME", "LTX2_CATALOG", "LTX2_DEBUG", "LTX2_OFFLINE"})


@dataclass(frozen=True)
class Resolved(Generic[T]):
    settings: T
    sources: dict[str, str]  # field -> "default" | "preset:NAME" | "env:VAR" | "flag:--name"
    preset: Preset | None = None
    environment: dict[str, str] = field(default_factory=dict)  # the LTX2_* variables used

    def explicit(self) -> dict[str, Any]:
        """Only the values that did not come from the built-in defaults."""
        return {k: _get(self.settings, k) for k, s in self.sources.items() if s != DEFAULT}


def env_var(name: str, prefix: str = ENV_PREFIX) -> str:
    """The environment variable of a field: `num_frames` -> `LTX2_NUM_FRAMES`."""
    return prefix + name.upper()


def flag_name(name: str) -> str:
    """The command-line flag of a field: `num_frames` -> `--num-frames`."""
    return "--" + name.replace("_", "-")


def resolve(
    schema: type[T],
    *,
    preset: str | Path | Preset | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    env_prefix: str = ENV_PREFIX,
    overrides: Mapping[str, Any] | None = None,
) -> Resolved[T]:
    """Merge the layers into one validated `schema` instance.

    `flags` maps field names to the values the user typed; `None` means "not given" (so Typer
    options default to None). `environ` is usually `os.environ`; only `<prefix><FIELD>` variables
    of top-level, non-dataclass fields are read. `overrides` slots between the environment and
    the flags (e.g. settings replayed from a metadata sidecar, labelled `metadata`).
    """
    types_ = field_types(schema)
    layers: list[tuple[dict[str, Any], dict[str, str]]] = []

    chosen = preset if isinstance(preset, Preset) or preset is None else find_preset(preset)
    if chosen is not None:
        values = chosen.checked(schema)
        layers.append((values, _labels(values, f"preset:{chosen.name}")))

    used_env: dict[str, str] = {}
    if environ:
        env_values: dict[str, Any] = {}
        env_labels: dict[str, str] = {}
        for name, tp in types_.items():
            var = env_var(name, env_prefix)
            if var not in environ or dataclasses.is_dataclass(tp):
                continue
            env_values[name] = parse_env(tp, environ[var], key=name, source=var)
            env_labels[name] = f"env:{var}"
            used_env[var] = environ[var]
        layers.append((env_values, env_labels))
        known = {*GLOBAL_VARIABLES, *(env_var(n, env_prefix) for n in types_)}
        for var in sorted(v for v in environ if v.startswith(env_prefix) and v not in known):
            logger.warning("ignoring the unknown variable %s%s", var, did_you_mean(var, known))

    if overrides:
        values = check(schema, overrides, source="metadata")
        layers.append((values, _labels(values, "metadata")))

    given = {k: v for k, v in (flags or {}).items() if v is not None}
    if given:
        values = check(schema, given, source="command line")
        layers.append((values, {k: f"flag:{flag_name(k)}" for k in _paths(values)}))

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for values, labels in layers:
        _deep_merge(merged, values)
        sources.update(labels)

    hook = getattr(schema, "layer_defaults", None)
    defaults = hook(merged) if callable(hook) else _field_defaults(schema)
    full = dict(defaults)
    _deep_merge(full, merged)
    for name in types_:
        sources.setdefault(name, DEFAULT)

    try:
        settings = build(schema, full)
    except FieldError as exc:
        origin = sources.get(exc.key) or sources.get(exc.key.split(".")[0], DEFAULT)
        raise FieldError(
            exc.key,
            f"{exc.message} (from {_describe_source(origin)})",
            exc.hint or f"change {_describe_source(origin)}",
        ) from None
    return Resolved(settings=settings, sources=sources, preset=chosen, environment=used_env)


def _labels(values: Mapping[str, Any], label: str) -> dict[str, str]:
    return {k: label for k in _paths(values)}


def _paths(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of every leaf, so nested fields keep their own source."""
    out: list[str] = []
    for k, v in values.items():
        key = f"{prefix}.{k}" if prefix else k
        out.extend(_paths(v, key) if isinstance(v, Partial) else [key])
    return out


def _deep_merge(into: dict[str, Any], values: Mapping[str, Any]) -> None:
    """Merge one layer into another: nested dataclass fields key by key, other values whole."""
    for k, v in values.items():
        if not isinstance(v, Partial):
            into[k] = v
            continue
        current = into.get(k)
        if dataclasses.is_dataclass(current):
            current = {f.name: getattr(current, f.name) for f in dataclasses.fields(current)}
        into[k] = merged = Partial(current) if isinstance(current, dict) else Partial()
        _deep_merge(merged, v)


def _get(settings: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        settings = getattr(settings, part)
    return settings


def _field_defaults(schema: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(schema):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _describe_source(label: str) -> str:
    kind, _, detail = label.partition(":")
    return {
        "preset": f"preset '{detail}'",
        "env": f"environment variable {detail}",
        "flag": f"flag {detail}",
    }.get(kind, "the built-in defaults" if label == DEFAULT else label)
