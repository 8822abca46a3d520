"""The root app: version, exit codes, and how every kind of failure is rendered."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ltx2cli import __version__
from ltx2cli.cli import app as app_module
from ltx2cli.cli.output import out
from ltx2cli.config.loader import FieldError
from ltx2cli.errors import (
    CheckpointError,
    ConfigError,
    DeviceError,
    HubError,
    MediaError,
    ModelNotInstalledError,
    ParameterError,
    UsageError,
)
from ltx2cli.hub.errors import ChecksumError, DiskSpaceError, GatedRepoAccessError

# README "Global options": 0 success, 1 runtime error, 2 bad input or flags, 130 interrupted.
EXIT_RUNTIME, EXIT_USAGE = 1, 2
FAILING_COMMAND = "fail-for-test"
#: Typer's boxed error panel; our errors are plain lines instead.
PANEL_CORNER = "╭"


def run_ltx2(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ltx2cli", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def failing_command(monkeypatch):
    """Register a hidden command that raises whatever the test sets, and remove it after."""
    monkeypatch.setattr(out, "debug", False)
    raised: list[BaseException] = []

    @app_module.app.command(FAILING_COMMAND, hidden=True)
    def fail() -> None:
        raise raised[0]

    yield raised
    app_module.app.registered_commands.remove(
        next(c for c in app_module.app.registered_commands if c.name == FAILING_COMMAND)
    )


def run_failing(capsys, raised: list, error: BaseException, *flags: str) -> tuple[int, str, str]:
    raised.append(error)
    with pytest.raises(SystemExit) as info:
        app_module.main([*flags, FAILING_COMMAND])
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def test_version_prints_package_version():
    proc = run_ltx2("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"ltx2 {__version__}"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("value 7 is odd", "use an even number"), EXIT_USAGE),
        (ConfigError("steps: expected an integer", "fix the preset"), EXIT_USAGE),
        (MediaError("clip.mp4: no such file", "check the path"), EXIT_RUNTIME),
        (CheckpointError("ckpt is truncated", "pull it again"), EXIT_RUNTIME),
        (ModelNotInstalledError("model 'x' is not installed", "ltx2 models pull x"), EXIT_RUNTIME),
        (HubError("cannot reach the hub", "check the network"), EXIT_RUNTIME),
        (DeviceError("cuda is not available", "pass --device cpu"), EXIT_RUNTIME),
        (GatedRepoAccessError("repo is gated", "accept the licence"), EXIT_RUNTIME),
        (DiskSpaceError("not enough disk space", "free some space"), EXIT_RUNTIME),
        (ChecksumError("sha256 differs", "pull again"), EXIT_RUNTIME),
    ],
)
def test_each_error_kind_is_one_line_with_its_documented_exit_code(
    capsys, failing_command, error, code
):
    exit_code, stdout, stderr = run_failing(capsys, failing_command, error)
    assert exit_code == code
    assert stdout == ""
    assert stderr.splitlines() == [f"Error: {error.message}", f"Hint: {error.hint}"]


@pytest.mark.parametrize("how", ["off", "--debug", "LTX2_DEBUG=1"])
def test_traceback_only_with_debug(capsys, monkeypatch, failing_command, how):
    flags = ["--debug"] if how == "--debug" else []
    if how == "LTX2_DEBUG=1":
        monkeypatch.setenv("LTX2_DEBUG", "1")
    code, _, stderr = run_failing(capsys, failing_command, UsageError("value 7 is odd"), *flags)
    assert code == EXIT_USAGE
    assert ("Traceback" in stderr) is (how != "off")
    error, hint = stderr.rstrip().splitlines()[-2:]
    assert error == "Error: value 7 is odd" and hint.startswith("Hint: ")


def test_unexpected_exception_is_exit_1_and_points_at_debug(capsys, failing_command):
    code, stdout, stderr = run_failing(capsys, failing_command, RuntimeError("boom"))
    assert (code, stdout) == (EXIT_RUNTIME, "")
    assert stderr.splitlines() == [
        "Error: RuntimeError: boom",
        "Hint: run with --debug for the traceback",
    ]


def test_error_text_is_not_read_as_markup(capsys, failing_command):
    message = "cannot read /data/[draft]/a.yaml: [bold]not a tag[/bold]"
    _, _, stderr = run_failing(capsys, failing_command, MediaError(message, "see [docs]"))
    assert stderr.splitlines() == [f"Error: {message}", "Hint: see [docs]"]


@pytest.mark.parametrize(
    ("args", "fragment", "hint"),
    [
        (["--no-such-flag"], "No such option: --no-such-flag", "see `ltx2 --help`"),
        (["presets", "list", "--bogus"], "No such option: --bogus", "`ltx2 presets list --help`"),
        (["presets", "show"], "Missing argument 'name'", "see `ltx2 presets show --help`"),
        (["models", "import", "x.safetensors"], "Missing option '--as'", "`ltx2 models import"),
    ],
)
def test_bad_flags_are_one_error_line_with_a_help_hint(args, fragment, hint):
    proc = run_ltx2(*args)
    assert proc.returncode == EXIT_USAGE
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("Error: ") and fragment in lines[0]
    assert len(lines) == 2 and lines[1].startswith("Hint: ") and hint in lines[1]
    assert PANEL_CORNER not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("group", [[], ["models"], ["presets"]])
def test_a_bare_group_prints_its_help_on_stdout_and_exits_2(group):
    proc = run_ltx2(*group)
    assert proc.returncode == EXIT_USAGE
    assert "Usage: ltx2" in proc.stdout and "Examples:" in proc.stdout
    assert proc.stderr == ""


def test_a_library_parameter_error_names_the_flag(capsys, failing_command):
    error = ParameterError("num_frames", "num_frames: 120 is not 8k+1", "use 113 or 121")
    code, stdout, stderr = run_failing(capsys, failing_command, error)
    assert (code, stdout) == (EXIT_USAGE, "")
    assert stderr.splitlines() == ["Error: --num-frames: 120 is not 8k+1", "Hint: use 113 or 121"]


def test_a_settings_error_keeps_naming_where_the_value_came_from(capsys, failing_command):
    message = "num_frames: 120 is not 8k+1 (from environment variable LTX2_NUM_FRAMES)"
    code, _, stderr = run_failing(capsys, failing_command, FieldError("num_frames", message, "x"))
    assert code == EXIT_USAGE
    assert stderr.splitlines()[0] == f"Error: {message}"
