"""The training configs shipped in `presets/train/` (torch-free: `ltx2 presets list` reads it).

Each file is a plain ltx-trainer config; its first comment line is the description, because
the schema itself has no room for one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ltx2cli.config.presets import builtin_dir
from ltx2cli.errors import ConfigError
from ltx2cli.text import did_you_mean

TRAIN_DIR = "train"


@dataclass(frozen=True)
class TrainPreset:
    name: str
    path: Path
    description: str


def train_dir() -> Path:
    return builtin_dir() / TRAIN_DIR


def list_train_presets() -> list[TrainPreset]:
    return [_read(p) for p in sorted(train_dir().glob("*.yaml"))]


def _read(path: Path) -> TrainPreset:
    first = path.read_text(encoding="utf-8").splitlines()[:1]
    description = first[0].lstrip("#").strip() if first and first[0].startswith("#") else ""
    return TrainPreset(path.stem, path, description)


def find_train_config(name_or_path: str) -> Path:
    """A config path, or the path of a shipped config named `name_or_path`."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped = {p.name: p.path for p in list_train_presets()}
    if name_or_path in shipped:
        return shipped[name_or_path]
    raise ConfigError(
        f"no such training config: {name_or_path}" + did_you_mean(name_or_path, list(shipped)),
        "pass a YAML file, or a shipped config name (`ltx2 presets list --train`)",
    )
