"""`ltx2 presets list|show`, in-process through `main()` and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ltx2cli.cli.app import main
from ltx2cli.cli.output import out
from ltx2cli.config.generation import GenerationSettings
from ltx2cli.config.resolve import resolve

BUILTIN = {"fast", "balanced", "quality", "draft", "demo"}
PRESET_DIR = Path(__file__).resolve().parents[2] / "presets"
USER_STEPS = 3
NARROW_COLUMNS = 80


@pytest.fixture(autouse=True)
def _fresh_output(monkeypatch):
    # `out` is process-wide and --json is sticky: give each test a clean one.
    for name, value in {"json": False, "quiet": False, "verbose": 0}.items():
        monkeypatch.setattr(out, name, value)


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return info.value.code or 0, captured.out, captured.err


def user_preset(home: Path, name: str, text: str) -> Path:
    folder = home / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_list_json_has_every_builtin_preset(capsys):
    code, stdout, _ = run(capsys, "presets", "list", "--json")
    assert code == 0
    rows = [json.loads(line) for line in stdout.splitlines()]
    by_name = {row["name"]: row for row in rows}
    assert set(by_name) >= BUILTIN
    for name in BUILTIN:
        assert by_name[name]["source"] == "built-in"
        assert by_name[name]["description"]
        assert Path(by_name[name]["path"]).is_file()


def test_list_piped_keeps_each_preset_on_one_unwrapped_line(capsys, monkeypatch):
    # Captured stdout is not a terminal: the table must not wrap at the 80 columns Rich
    # assumes there, nor pad lines with blanks or colour them.
    monkeypatch.setenv("COLUMNS", str(NARROW_COLUMNS))
    code, stdout, _ = run(capsys, "presets", "list")
    assert code == 0
    header, *rows = stdout.splitlines()
    assert header.split() == ["name", "source", "description"]
    assert {row.split()[0] for row in rows} == BUILTIN
    for name in BUILTIN:
        description = yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())["description"]
        row = next(row for row in rows if row.split()[0] == name)
        assert row.split(maxsplit=2)[1:] == ["built-in", description]
    assert all(line == line.rstrip() for line in stdout.splitlines())
    assert "\x1b[" not in stdout


def test_user_preset_shadows_builtin_of_same_name(capsys, _isolated_home):
    user_preset(_isolated_home, "fast", f"description: my fast\nsteps: {USER_STEPS}\n")
    _, stdout, _ = run(capsys, "presets", "list", "--json")
    fast = next(json.loads(line) for line in stdout.splitlines() if '"fast"' in line)
    assert (fast["source"], fast["shadows_builtin"], fast["description"]) == (
        "user",
        True,
        "my fast",
    )
    _, stdout, _ = run(capsys, "presets", "show", "fast", "--json")
    shown = json.loads(stdout)
    assert shown["settings"]["steps"] == USER_STEPS
    assert shown["settings"]["pipeline"] == "two-stage"  # the user file does not set it


def test_broken_user_preset_does_not_hide_the_others(capsys, _isolated_home):
    user_preset(_isolated_home, "broken", "steps: [unclosed\n")
    code, stdout, _ = run(capsys, "presets", "list", "--json")
    assert code == 0
    rows = {row["name"]: row for row in map(json.loads, stdout.splitlines())}
    assert set(rows) >= BUILTIN | {"broken"}
    assert "invalid YAML" in rows["broken"]["error"]


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_show_prints_yaml_that_loads_back_to_the_same_settings(capsys, tmp_path, name):
    code, stdout, _ = run(capsys, "presets", "show", name)
    assert code == 0
    copy = tmp_path / "copy.yaml"
    copy.write_text(stdout)
    assert resolve(GenerationSettings, preset=copy).settings == (
        resolve(GenerationSettings, preset=name).settings
    )


def test_show_marks_where_each_value_came_from(capsys, monkeypatch):
    monkeypatch.setenv("LTX2_SEED", "7")
    _, stdout, _ = run(capsys, "presets", "show", "fast")
    lines = stdout.splitlines()
    assert "pipeline: distilled  # preset:fast" in lines
    assert "seed: 7  # env:LTX2_SEED" in lines
    assert "steps: 8" in lines  # the distilled pipeline's own default: no comment


def test_show_json_has_settings_and_sources(capsys):
    code, stdout, _ = run(capsys, "presets", "show", "quality", "--json")
    assert code == 0
    shown = json.loads(stdout)
    assert shown["name"] == "quality"
    assert shown["settings"]["pipeline"] == "two-stage-hq"
    assert shown["settings"]["video_stg_blocks"] == []
    assert shown["sources"]["pipeline"] == "preset:quality"
    assert shown["sources"]["seed"] == "default"


def test_show_accepts_a_path(capsys, tmp_path):
    path = tmp_path / "custom.yaml"
    path.write_text("description: mine\npipeline: one-stage\nheight: 96\nwidth: 128\n")
    _, stdout, _ = run(capsys, "presets", "show", str(path), "--json")
    shown = json.loads(stdout)
    assert (shown["source"], shown["settings"]["height"]) == ("file", 96)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("stpes: 3\n", "unknown key 'stpes' (did you mean 'steps'?)"),
        ("steps: lots\n", "steps: expected an integer, got 'lots'"),
        ("num_frames: 100\n", "num_frames: 100 is not 8k+1"),
    ],
)
def test_bad_user_preset_is_a_one_line_usage_error(capsys, _isolated_home, text, fragment):
    user_preset(_isolated_home, "bad", text)
    code, stdout, stderr = run(capsys, "presets", "show", "bad")
    assert code == 2
    assert stdout == ""
    assert fragment in " ".join(stderr.split())
    assert "Traceback" not in stderr


def test_unknown_preset_suggests_a_name_and_the_list_command():
    proc = subprocess.run(
        [sys.executable, "-m", "ltx2cli", "presets", "show", "fsat"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    stderr = " ".join(proc.stderr.split())
    assert "unknown preset 'fsat' (did you mean 'fast'?)" in stderr
    assert "ltx2 presets list" in stderr


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_silences_the_user_preset_note_but_not_the_list(capsys, _isolated_home, quiet):
    code, stdout, stderr = run(capsys, *(["-q"] if quiet else []), "presets", "list")
    assert code == 0
    assert {line.split()[0] for line in stdout.splitlines()[1:]} == BUILTIN
    assert (str(_isolated_home / "presets") in stderr) is not quiet
    assert (stderr == "") is quiet
