"""Where ltx2 keeps its data: `LTX2_HOME` (an empty value counts as unset), else the platform's
user data dir. Writers call `usable_data_dir()` first, so a bad `LTX2_HOME` is one line naming
the variable, the path and the fix rather than an OS error from deep inside a download."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

from ltx2cli.errors import ConfigError

HOME_VARIABLE = "LTX2_HOME"


def home_from_env() -> str | None:
    """`LTX2_HOME` when the user set it to something; None when unset or empty."""
    return os.environ.get(HOME_VARIABLE, "").strip() or None


def data_dir() -> Path:
    """The root of everything ltx2 stores (models, presets, demo weights); not created here."""
    home = home_from_env()
    return Path(home).expanduser() if home else Path(user_data_dir("ltx2", appauthor=False))


def data_dir_problem(path: Path) -> str | None:
    """Why `path` cannot hold ltx2's data (it or a parent is a file, it cannot be created or
    written), or None when it can. Creates nothing."""
    probe = path
    while not probe.exists():
        if probe == probe.parent:
            return "none of its parent folders exists"
        probe = probe.parent
    if not probe.is_dir():
        return "it is a file" if probe == path else f"{probe} is a file"
    if not os.access(probe, os.W_OK | os.X_OK):
        return "it is not writable" if probe == path else f"{probe} is not writable"
    return None


def usable_data_dir() -> Path:
    """The data dir, created if needed; a one-line error naming where it came from if not."""
    path = data_dir()
    problem = data_dir_problem(path)
    if problem is None:
        try:
            path.mkdir(parents=True, exist_ok=True)
            return path
        except OSError as exc:
            problem = exc.strerror or str(exc)
    where = f"{HOME_VARIABLE}={path}" if home_from_env() else f"the data dir {path}"
    raise ConfigError(
        f"{where} cannot hold ltx2's data: {problem}",
        f"set {HOME_VARIABLE} to a folder you can write (or unset it for the default)",
    )


def user_presets_dir() -> Path:
    return data_dir() / "presets"


def hub_cache_dir() -> Path:
    """The huggingface_hub cache (its own layout: models--org--name/{blobs,snapshots,refs})."""
    return data_dir() / "hub"


def model_registry_path() -> Path:
    """JSON record of files registered with `ltx2 models import` (never copied)."""
    return data_dir() / "models.json"
