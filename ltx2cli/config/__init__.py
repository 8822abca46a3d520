"""User-facing settings: dataclasses, strict YAML loading, preset merging. Torch-free.

- `loader`: the one strict loader for user YAML (any dataclass schema).
- `generation`: `GenerationSettings`, the common generation options and their defaults.
- `presets`: built-in and user presets.
- `resolve`: precedence, defaults < preset < `LTX2_*` environment < flags.
"""

from ltx2cli.config.generation import GenerationSettings, adapt_to_model_version
from ltx2cli.config.loader import FieldError, build, check, load, read_yaml, to_plain
from ltx2cli.config.presets import Preset, find_preset, list_presets
from ltx2cli.config.resolve import Resolved, resolve

__all__ = [
    "FieldError",
    "GenerationSettings",
    "Preset",
    "Resolved",
    "adapt_to_model_version",
    "build",
    "check",
    "find_preset",
    "list_presets",
    "load",
    "read_yaml",
    "resolve",
    "to_plain",
]
