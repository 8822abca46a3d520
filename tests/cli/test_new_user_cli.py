"""What a new user hit (issue 10), outside the hub: a bad LTX2_HOME, errors without a hint,
`-v` usage, silent typos (duplicate preset keys, unknown LTX2_* variables, invalid presets).
Every case runs the real `ltx2` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXIT_RUNTIME, EXIT_USAGE = 1, 2


def run_ltx2(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ltx2cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250", **env},
    )


def error_lines(stderr: str) -> list[str]:
    """The `Error:` line and the line after it (which must be the hint)."""
    lines = stderr.splitlines()
    (error,) = [line for line in lines if line.startswith("Error: ")]
    return lines[lines.index(error) : lines.index(error) + 2]


def tiny_lora_bytes() -> bytes:
    """A one-byte LoRA tensor in safetensors framing (8-byte header length, JSON, data)."""
    entry = {"blocks.0.attn.lora_A.weight": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}
    header = json.dumps(entry).encode()
    return len(header).to_bytes(8, "little") + header + b"\x01"


def user_preset(home: Path, name: str, text: str) -> None:
    folder = home / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)


# -- bug 4: a bad LTX2_HOME ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["file", "under-a-file"])
def test_a_bad_data_dir_is_one_line_naming_the_variable_the_path_and_the_fix(tmp_path, bad):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    home = blocker if bad == "file" else blocker / "home"
    lora = tmp_path / "x.safetensors"
    lora.write_bytes(tiny_lora_bytes())
    proc = run_ltx2(
        "models", "import", str(lora), "--as", "x", "--kind", "lora", LTX2_HOME=str(home)
    )
    assert proc.returncode in (EXIT_RUNTIME, EXIT_USAGE)
    error, hint = error_lines(proc.stderr)
    assert f"LTX2_HOME={home}" in error and "is a file" in error
    assert "LTX2_HOME" in hint and hint.startswith("Hint: ")
    assert "Errno" not in proc.stderr and "Traceback" not in proc.stderr


def test_env_flags_an_unusable_data_dir(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    proc = run_ltx2("--json", "env", LTX2_HOME=str(blocker))
    assert proc.returncode == 0, proc.stderr
    data_dir = json.loads(proc.stdout)["data_dir"]
    assert data_dir["problem"] == "it is a file" and data_dir["exists"] is False
    table = run_ltx2("env", LTX2_HOME=str(blocker))
    assert "unusable: it is a file" in table.stdout


def test_an_empty_ltx2_home_means_unset(tmp_path):
    proc = run_ltx2("--json", "env", LTX2_HOME="", XDG_DATA_HOME=str(tmp_path / "xdg"))
    assert proc.returncode == 0, proc.stderr
    data_dir = json.loads(proc.stdout)["data_dir"]
    assert data_dir["from_env"] is False
    assert data_dir["path"] == str(tmp_path / "xdg" / "ltx2")


# -- bug 5: every Error has a Hint; -v usage -------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("models", "available", "--kind"),  # a flag missing its value
        ("--verbose=2", "env"),  # a value for a flag that takes none
        ("models", "pull", "--for", "distilled", "--generation", "3.1", "--dry-run"),
        ("presets", "show", "broken"),  # YAML error
        ("presets", "show", "typed"),  # type error
        ("presets", "show", "ranged"),  # value error without a hint of its own
    ],
)
def test_every_error_line_has_a_hint(_isolated_home, args):
    user_preset(_isolated_home, "broken", "steps: [1\n")
    user_preset(_isolated_home, "typed", "steps: many\n")
    user_preset(_isolated_home, "ranged", "steps: 0\n")
    proc = run_ltx2(*args)
    assert proc.returncode in (EXIT_RUNTIME, EXIT_USAGE)
    _error, hint = error_lines(proc.stderr)
    assert hint.startswith("Hint: ") and len(hint) > len("Hint: ")


def test_an_os_error_is_one_line_with_a_hint(_isolated_home):
    (_isolated_home / "presets").mkdir()
    unreadable = _isolated_home / "presets" / "locked.yaml"
    unreadable.write_text("steps: 3\n")
    unreadable.chmod(0)
    if os.access(unreadable, os.R_OK):  # root reads anything
        unreadable.chmod(0o644)
        unreadable.unlink()
        unreadable.mkdir()  # a folder named like a preset: reading it fails as well
    proc = run_ltx2("presets", "show", str(unreadable))
    assert proc.returncode in (EXIT_RUNTIME, EXIT_USAGE)
    _error, hint = error_lines(proc.stderr)
    assert hint.startswith("Hint: ")


def test_help_shows_the_real_verbose_usage():
    proc = run_ltx2("--help")
    line = next(x for x in proc.stdout.splitlines() if "--verbose" in x)
    assert "-vv" in line and "INTEGER" not in line and "<int>" not in line
    assert run_ltx2("-vv", "presets", "list").returncode == 0


# -- bug 7: silent typos ---------------------------------------------------------------------------


def test_a_preset_with_a_duplicated_key_is_an_error(_isolated_home):
    user_preset(_isolated_home, "twice", "steps: 3\nseed: 1\nsteps: 4\n")
    proc = run_ltx2("presets", "show", "twice")
    assert proc.returncode == EXIT_USAGE
    error, _ = error_lines(proc.stderr)
    assert "duplicate key 'steps'" in error and "twice.yaml:3" in error


def test_an_unknown_ltx2_variable_is_warned_about_with_a_suggestion():
    proc = run_ltx2("presets", "show", "fast", LTX2_STEPZ="12")
    assert proc.returncode == 0, proc.stderr
    assert "LTX2_STEPZ" in proc.stderr and "did you mean 'LTX2_STEPS'" in proc.stderr


def test_presets_list_marks_an_invalid_user_preset_with_its_first_problem(_isolated_home):
    user_preset(_isolated_home, "typo", "stepz: 3\n")
    user_preset(_isolated_home, "fine", "steps: 3\n")
    proc = run_ltx2("--json", "presets", "list")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert "unknown key 'stepz'" in rows["typo"]["error"]
    assert rows["fine"]["error"] is None
    table = run_ltx2("presets", "list")
    line = next(x for x in table.stdout.splitlines() if x.startswith("typo"))
    assert "invalid:" in line
