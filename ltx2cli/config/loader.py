"""One strict loader for every YAML file a user hands to ltx2 (presets now, training configs later).

- The schema is any stdlib dataclass; nested dataclass fields take nested mappings.
- `yaml.safe_load` only: YAML never builds Python objects.
- Unknown keys are errors with a did-you-mean; values must already have the field's type
  (YAML `8` is not a string, `"8"` is not an integer), so a typo never turns into a default.
- The same conversion serves YAML values, command-line flags and `LTX2_*` environment strings
  (`parse_env`), so every layer fails the same way: naming the key, the value and the type.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Hashable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from ltx2cli.errors import ConfigError, ParameterError
from ltx2cli.text import FALSE_WORDS, TRUE_WORDS, did_you_mean

T = TypeVar("T")

_NONE_WORDS = frozenset({"", "none", "null"})


class Partial(dict):
    """A nested dataclass field's values from one layer (merged key by key, unlike dict fields)."""


class FieldError(ConfigError, ParameterError):
    """A value that does not fit its field; `key` is the dotted field name."""


# -- reading ---------------------------------------------------------------------------------


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file; an empty file is an empty mapping. A key written
    twice in one mapping is an error (plain YAML loaders keep the last one silently)."""
    import yaml

    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {file}", "check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{file} is a directory, not a YAML file", "name a .yaml file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file} is not UTF-8 text", "save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read {file}: {exc.strerror or exc}", "check the file's permissions"
        ) from None
    try:
        data = yaml.load(text, Loader=_strict_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}", "fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{file}: expected a mapping of keys to values, got {_kind(data)}",
            "write one `key: value` per line",
        )
    return data


@lru_cache(maxsize=1)
def _strict_loader() -> type:
    """yaml.SafeLoader that refuses a key written twice in one mapping."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, Hashable) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key '{key}'", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep)

    StrictLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, StrictLoader.construct_mapping
    )
    return StrictLoader


def load(schema: type[T], path: str | Path) -> T:
    """Read a YAML file and build `schema` from it, strictly."""
    return build(schema, read_yaml(path), source=str(path))


# -- checking --------------------------------------------------------------------------------


def build(schema: type[T], data: Mapping[str, Any], *, source: str = "") -> T:
    """An instance of `schema` from a mapping: unknown keys, wrong types and missing keys fail."""
    return _convert(schema, data, key="", source=source)


def check(schema: type, data: Mapping[str, Any], *, source: str = "") -> dict[str, Any]:
    """Convert a partial mapping (one layer: a preset, flags): every given key is checked and
    converted, missing keys are fine. Nested dataclass fields stay `Partial` dicts."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_where(source)}expected a mapping, got {_kind(data)}")
    return _check_mapping(schema, data, prefix="", source=source, partial=True)


def field_types(schema: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of a dataclass schema."""
    hints = typing.get_type_hints(schema)
    return {f.name: hints[f.name] for f in dataclasses.fields(schema) if f.init}


def parse_env(tp: Any, text: str, *, key: str, source: str) -> Any:
    """An environment string parsed to `tp`: numbers, true/false words, comma or space
    separated lists, `none` for optional fields; then checked like any other value."""
    try:
        return _convert(tp, _parse_text(tp, text.strip(), key=key, source=source), key, source)
    except FieldError as exc:
        raise FieldError(key, exc.message, exc.hint or f"fix {source} or unset it") from None


def check_choice(key: str, value: Any, choices: Sequence[Any], *, source: str = "") -> None:
    """Raise a FieldError unless `value` is one of `choices`."""
    if value in choices:
        return
    names = [str(c) for c in choices]
    raise FieldError(
        key,
        f"{_where(source)}{key}: {value!r} is not one of {', '.join(names)}"
        + did_you_mean(str(value), names),
    )


def to_plain(value: Any) -> Any:
    """Dataclasses, tuples and paths as plain dicts, lists and strings (for YAML and JSON)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# -- internals -------------------------------------------------------------------------------


def _where(source: str) -> str:
    return f"{source}: " if source else ""


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        type(None): "nothing (null)",
    }.get(type(value), type(value).__name__)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is bool:
        return "a boolean (true/false)"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is Path:
        return "a path"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (list, tuple, Sequence):
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin in (dict, Mapping):
        return "a mapping"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None)) + " or null"
    return getattr(tp, "__name__", str(tp))


def _type_error(tp: Any, value: Any, key: str, source: str) -> FieldError:
    shown = repr(value) if not isinstance(value, (dict, list)) else _kind(value)
    return FieldError(key, f"{_where(source)}{key}: expected {_describe(tp)}, got {shown}")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_mapping(
    schema: type, data: Mapping[str, Any], *, prefix: str, source: str, partial: bool
) -> dict[str, Any]:
    types_ = field_types(schema)
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        name = str(raw_key)
        key = _join(prefix, name)
        if name not in types_:
            raise FieldError(
                key,
                f"{_where(source)}unknown key '{key}'" + did_you_mean(name, types_),
                "valid keys: " + ", ".join(types_),
            )
        tp = types_[name]
        if partial and dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
            out[name] = Partial(_check_mapping(tp, value, prefix=key, source=source, partial=True))
        else:
            out[name] = _convert(tp, value, key, source)
    if not partial:
        required = [
            f.name
            for f in dataclasses.fields(schema)
            if f.init
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in out]
        if missing:
            raise FieldError(
                _join(prefix, missing[0]),
                f"{_where(source)}missing required key '{_join(prefix, missing[0])}'",
            )
    return out


def _convert(tp: Any, value: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise _type_error(tp, value, key, source)
        values = _check_mapping(tp, value, prefix=key, source=source, partial=False)
        try:
            return tp(**values)
        except FieldError as exc:
            if source and not exc.message.startswith(_where(source)):
                raise FieldError(exc.key, _where(source) + exc.message, exc.hint) from None
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{_where(source)}{key or tp.__name__}: {exc}") from None
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key, source)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise _type_error(tp, value, key, source)
    if origin is Literal:
        if isinstance(value, bool) != any(isinstance(a, bool) for a in args):
            raise _type_error(tp, value, key, source)
        check_choice(key, value, args, source=source)
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(tp, value, key, source)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(tp, value, key, source)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise FieldError(key, f"{_where(source)}{key}: {value!r} is not a finite number")
            return float(value)
        raise _type_error(tp, value, key, source)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(tp, value, key, source)
    if tp is Path:
        if isinstance(value, (str, Path)) and str(value):
            return Path(value).expanduser()
        raise _type_error(tp, value, key, source)
    if origin in (list, tuple, Sequence):
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            raise _type_error(tp, value, key, source)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise FieldError(
                    key,
                    f"{_where(source)}{key}: expected {len(args)} values, got {len(value)}",
                )
            return tuple(
                _convert(a, v, f"{key}[{i}]", source)
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item = args[0] if args else Any
        items = [_convert(item, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _type_error(tp, value, key, source)
        key_tp, value_tp = args if args else (Any, Any)
        return {
            _convert(key_tp, k, key, source): _convert(value_tp, v, f"{key}.{k}", source)
            for k, v in value.items()
        }
    raise ConfigError(f"{_where(source)}{key}: unsupported field type {tp!r}")


def _parse_text(tp: Any, text: str, *, key: str, source: str) -> Any:
    """The Python value an environment string spells for type `tp` (checked afterwards)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if type(None) in args and text.lower() in _NONE_WORDS:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                value = _parse_text(arg, text, key=key, source=source)
                return _convert(arg, value, key, source)
            except ConfigError:
                continue
        return text
    if origin is Literal:
        for choice in args:
            if str(choice) == text:
                return choice
        return text
    if tp is bool:
        word = text.lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise FieldError(key, f"{source}={text!r}: expected a boolean (1/0, true/false, yes/no)")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise FieldError(key, f"{source}={text!r}: expected an integer") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise FieldError(key, f"{source}={text!r}: expected a number") from None
    if origin in (list, tuple, Sequence):
        parts = [p for p in text.replace(",", " ").split() if p]
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(parts) != len(args):
                return parts  # the conversion reports the count
            return [
                _parse_text(a, p, key=key, source=source) for a, p in zip(args, parts, strict=True)
            ]
        item = args[0] if args else str
        return [_parse_text(item, p, key=key, source=source) for p in parts]
    if dataclasses.is_dataclass(tp) or origin in (dict, Mapping):
        raise FieldError(key, f"{source}: {key} cannot be set from the environment")
    return text
