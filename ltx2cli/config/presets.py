"""Presets: named YAML files of generation settings.

Built-in presets ship inside the package (`ltx2cli/presets/*.yaml`, found through
`importlib.resources`); user presets in `<data dir>/presets/*.yaml` shadow a built-in of the same
name; a path to a YAML file works wherever a name does. Each file holds a `description:` and any
subset of the settings' keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from ltx2cli.config.loader import check, read_yaml
from ltx2cli.errors import ConfigError
from ltx2cli.text import did_you_mean

PresetSource = Literal["built-in", "user", "file"]
SUFFIXES = (".yaml", ".yml")
DESCRIPTION_KEY = "description"


@dataclass(frozen=True)
class Preset:
    name: str
    source: PresetSource
    path: Path
    description: str = ""
    values: dict[str, Any] = field(default_factory=dict)  # raw, not yet checked
    shadows_builtin: bool = False
    error: str | None = None  # set by list_presets() for a file it could not read

    def checked(self, schema: type) -> dict[str, Any]:
        """The preset's values converted against `schema` (errors name the preset file)."""
        return check(schema, self.values, source=str(self.path))


def builtin_dir() -> Path:
    """The folder of built-in presets inside the installed package."""
    return Path(str(resources.files("ltx2cli") / "presets"))


def user_dir() -> Path:
    from ltx2cli.hub.paths import user_presets_dir

    return user_presets_dir()


def list_presets() -> list[Preset]:
    """Every preset by name, user presets in place of the built-ins they shadow, sorted."""
    builtin = _scan(builtin_dir())
    user = _scan(user_dir())
    found = {name: _read_or_report(name, path, "built-in") for name, path in builtin.items()}
    for name, path in user.items():
        found[name] = _read_or_report(name, path, "user", shadows_builtin=name in builtin)
    return [found[name] for name in sorted(found)]


def preset_names() -> list[str]:
    """Names only, without reading the files (for shell completion)."""
    return sorted({*_scan(builtin_dir()), *_scan(user_dir())})


def find_preset(name_or_path: str | Path) -> Preset:
    """A preset by name (user first, then built-in) or by path to a YAML file."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    looks_like_path = path.suffix in SUFFIXES or "/" in text or "\\" in text
    if looks_like_path or (path.is_file() and not _is_name(text)):
        if not path.is_file():
            raise ConfigError(f"preset file not found: {path}", "check the path")
        return _read(path.stem, path, "file")
    user = _scan(user_dir())
    builtin = _scan(builtin_dir())
    if text in user:
        return _read(text, user[text], "user", shadows_builtin=text in builtin)
    if text in builtin:
        return _read(text, builtin[text], "built-in")
    names = sorted({*user, *builtin})
    raise ConfigError(
        f"unknown preset '{text}'" + did_you_mean(text, names),
        f"`ltx2 presets list` shows them all ({', '.join(names)}); a path to a YAML file works too",
    )


def _is_name(text: str) -> bool:
    return bool(text) and all(c.isalnum() or c in "-_." for c in text)


def _scan(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix in SUFFIXES and path.is_file():
            found.setdefault(path.stem, path)
    return found


def _read_or_report(
    name: str, path: Path, source: PresetSource, *, shadows_builtin: bool = False
) -> Preset:
    """One broken user file must not hide the other presets from the listing; a preset that
    reads but would not resolve (unknown key, bad value) is reported with its first problem."""
    from ltx2cli.config.generation import GenerationSettings
    from ltx2cli.config.resolve import resolve

    try:
        preset = _read(name, path, source, shadows_builtin=shadows_builtin)
        resolve(GenerationSettings, preset=preset)
        return preset
    except ConfigError as exc:
        return Preset(name, source, path, shadows_builtin=shadows_builtin, error=exc.message)


def _read(name: str, path: Path, source: PresetSource, *, shadows_builtin: bool = False) -> Preset:
    data = read_yaml(path)
    description = data.pop(DESCRIPTION_KEY, "")
    if not isinstance(description, str):
        raise ConfigError(f"{path}: description: expected a string, got {description!r}")
    return Preset(
        name=name,
        source=source,
        path=path,
        description=description.strip(),
        values=data,
        shadows_builtin=shadows_builtin,
    )
