"""Test-wide isolation: every test gets its own data dir and never reaches a real hub."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("ltx2-home")
    monkeypatch.setenv("LTX2_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("LTX2_DEBUG", raising=False)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(autouse=True)
def _fresh_logging():
    """In-process CLI runs configure the `ltx2cli` logger (level, handler); undo it after."""
    logger = logging.getLogger("ltx2cli")
    saved = logger.level, list(logger.handlers), logger.propagate
    yield
    logger.setLevel(saved[0])  # setLevel also clears the logger's enabled-for cache
    logger.handlers[:], logger.propagate = saved[1], saved[2]
