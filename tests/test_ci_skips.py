"""Under CI=true a skipped test fails (a fresh clone must run the whole suite); `gpu` tests
may still skip on a machine without CUDA."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parent / "conftest.py"
SAMPLE = """
import pytest

def test_needs_a_missing_tool():
    pytest.skip("tool not installed")

@pytest.mark.gpu
def test_needs_cuda():
    pytest.skip("no CUDA device")
"""


@pytest.mark.parametrize(("ci", "failed"), [("true", 1), ("", 0)])
def test_skips_fail_only_under_ci(tmp_path, ci, failed):
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs CUDA\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "CI": ci},
    )
    summary = proc.stdout.splitlines()[-1]
    assert (f"{failed} failed" in summary) == bool(failed), proc.stdout
    assert f"{2 - failed} skipped" in summary
    assert proc.returncode == (1 if failed else 0)
