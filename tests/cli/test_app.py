"""The root app: version, help, exit codes, error rendering, fast start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ltx2cli import __version__


def run_ltx2(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ltx2cli", *args], capture_output=True, text=True, env=env
    )


def test_version_prints_package_version():
    proc = run_ltx2("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"ltx2 {__version__}"


def test_bad_flag_is_usage_error_exit_2():
    proc = run_ltx2("--no-such-flag")
    assert proc.returncode == 2
    assert "no-such-flag" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("debug", [False, True])
def test_ltx2error_is_one_line_without_traceback_unless_debug(debug, monkeypatch):
    from ltx2cli.cli import app as app_module
    from ltx2cli.errors import UsageError

    @app_module.app.command("explode-for-test", hidden=True)
    def explode() -> None:
        raise UsageError("value 7 is odd", "use an even number")

    argv = ["--debug", "explode-for-test"] if debug else ["explode-for-test"]
    with pytest.raises(SystemExit) as exc_info:
        app_module.main(argv)
    assert exc_info.value.code == 2
    app_module.app.registered_commands.pop()
