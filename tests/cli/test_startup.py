"""Every `ltx2 ... --help`: free of the heavy libraries (fast start) and showing 2-4 examples.

Commands are discovered from the Typer app, so commands registered later are covered too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import typer

from ltx2cli.cli.app import app
from ltx2cli.cli.options import EXAMPLES_HEADING

HEAVY = ("torch", "numpy", "transformers", "safetensors", "av", "PIL")
# STYLE.md: 2-4 examples in each help, each on one line of an 80-column terminal.
MIN_EXAMPLES, MAX_EXAMPLES = 2, 4
HELP_COLUMNS = 80


def command_paths() -> list[tuple[str, ...]]:
    """Every visible command and sub-command path, the root first."""
    paths: list[tuple[str, ...]] = [()]

    def walk(command, prefix: tuple[str, ...]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if sub.hidden:
                continue
            paths.append((*prefix, name))
            walk(sub, (*prefix, name))

    walk(typer.main.get_command(app), ())
    return paths


# One fresh interpreter runs the real entry point for every path in turn and records, per path,
# the exit code, whether help was printed and which heavy modules appeared during that run (the
# first run also pays for importing the app and every command module).
PROBE = """
import contextlib, io, json, os, sys
heavy = json.loads(os.environ["PROBE_HEAVY"])
from ltx2cli.cli.app import main
seen, report = set(), []
for args in json.loads(os.environ["PROBE_ARGS"]):
    buffer, code = io.StringIO(), 0
    with contextlib.redirect_stdout(buffer):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code or 0
    new = sorted(m for m in heavy if m in sys.modules and m not in seen)
    seen.update(new)
    report.append({"args": args, "code": code, "stdout": buffer.getvalue(), "heavy": new})
with open(os.environ["PROBE_REPORT"], "w") as fh:
    json.dump(report, fh)
"""
RUNS = [[*path, "--help"] for path in command_paths()] + [
    ["presets", "list"],
    ["presets", "show", "fast"],
    ["models", "available"],
    ["models", "list"],
]


@pytest.fixture(scope="module")
def probe_report(tmp_path_factory) -> dict[str, dict]:
    report = tmp_path_factory.mktemp("probe") / "report.json"
    env = {
        **os.environ,
        "PROBE_REPORT": str(report),
        "PROBE_HEAVY": json.dumps(HEAVY),
        "PROBE_ARGS": json.dumps(RUNS),
        "LTX2_HOME": str(report.parent),
        "COLUMNS": str(HELP_COLUMNS),
    }
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env)
    assert report.is_file(), proc.stderr
    return {" ".join(run["args"]): run for run in json.loads(report.read_text())}


@pytest.mark.parametrize("args", RUNS, ids=" ".join)
def test_commands_do_not_import_heavy_libraries(args, probe_report):
    run = probe_report[" ".join(args)]
    assert run["code"] == 0, run["stdout"]
    if "--help" in args:
        assert "Usage" in run["stdout"]
    assert run["heavy"] == [], f"`ltx2 {' '.join(args)}` imported {run['heavy']}"


def examples_in(help_text: str) -> list[str]:
    """The lines under the help's examples heading, up to the next blank line."""
    lines = [line.strip() for line in help_text.splitlines()]
    if EXAMPLES_HEADING not in lines:
        return []
    start = lines.index(EXAMPLES_HEADING) + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


@pytest.mark.parametrize("args", [r for r in RUNS if "--help" in r], ids=" ".join)
def test_every_help_shows_two_to_four_one_line_examples(args, probe_report):
    shown = examples_in(probe_report[" ".join(args)]["stdout"])
    assert MIN_EXAMPLES <= len(shown) <= MAX_EXAMPLES, shown
    command = " ".join(("ltx2", *args[:-1]))
    for example in shown:
        # A wrapped example would leave a continuation line without the command in it.
        assert f"{command} " in f"{example} ", f"`{example}` is not a `{command}` example"


def test_discovery_sees_the_registered_commands():
    paths = command_paths()
    assert ("presets", "list") in paths
    assert ["presets", "show", "--help"] in RUNS
    assert ("env",) in paths


# Not needed to print the root help: Rich's help renderer (markdown, syntax highlighting), the
# hub and catalog modules, YAML, the hub client. Each costs tens of milliseconds.
NOT_FOR_ROOT_HELP = (
    "rich.markdown",
    "rich.console",
    "ltx2cli.hub.catalog",
    "ltx2cli.hub.store",
    "yaml",
    "huggingface_hub",
)


def test_root_help_imports_only_what_it_prints():
    program = (
        "import contextlib, io, sys\n"
        "from ltx2cli.cli.app import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        f"print(sorted(m for m in {NOT_FOR_ROOT_HELP!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
