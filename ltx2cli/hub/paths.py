"""Where ltx2 keeps its data: `LTX2_HOME`, else the platform's user data dir."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir


def data_dir() -> Path:
    """The root of everything ltx2 stores (models, presets, demo weights); not created here."""
    home = os.environ.get("LTX2_HOME")
    return Path(home).expanduser() if home else Path(user_data_dir("ltx2", appauthor=False))


def user_presets_dir() -> Path:
    return data_dir() / "presets"


def hub_cache_dir() -> Path:
    """The huggingface_hub cache (its own layout: models--org--name/{blobs,snapshots,refs})."""
    return data_dir() / "hub"


def model_registry_path() -> Path:
    """JSON record of files registered with `ltx2 models import` (never copied)."""
    return data_dir() / "models.json"
