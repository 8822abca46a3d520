"""Shared helpers for model tests: the reference manifests of the released checkpoints."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

# The released checkpoints' manifests (keys, shapes, embedded configs), kept in the repository.
MANIFESTS = Path(__file__).resolve().parents[1] / "data" / "manifests"


@cache
def _read_manifest(name: str) -> dict:
    return json.loads((MANIFESTS / f"{name}.json").read_text())


@pytest.fixture
def manifest():
    """`manifest("ltx-2-19b")` → the parsed manifest; skips when the file is missing."""

    def load(name: str) -> dict:
        if not (MANIFESTS / f"{name}.json").is_file():
            pytest.skip(f"reference manifests not found at {MANIFESTS}")
        return _read_manifest(name)

    return load
