"""Test-wide isolation: every test gets its own data dir and never reaches a real hub."""

from __future__ import annotations

import logging

import pytest

from ltx2cli.text import env_flag


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test fails (except `gpu` tests on a machine without CUDA), so a
    missing tool or data file cannot quietly shrink the suite."""
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and env_flag("CI")) or hasattr(report, "wasxfail"):
        return
    if item.get_closest_marker("gpu") is not None:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, where every test must run: {reason}"
