"""The README tells the truth: every `ltx2` command it shows parses, and the ones that need no
download run cleanly on an empty, offline data dir."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
# These act on downloads or installed files; on an empty offline data dir they must fail with a
# runtime error (exit 1: offline, not installed), never with a usage error (exit 2).
NEEDS_MODELS = {"pull", "path", "rm", "import"}
USAGE_ERROR = 2


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            command = line.split("  #")[0].strip()
            if command.startswith("ltx2 ") and not command.endswith("\\"):
                commands.append(command)
    return list(dict.fromkeys(commands))


def test_readme_shows_commands():
    assert len(readme_commands()) >= 10


def test_set_up_is_two_commands_after_the_cpu_torch_instruction():
    text = README.read_text()
    before, _, rest = text.partition("```bash\n")
    first_block = rest.split("```")[0].splitlines()
    assert first_block == ['pip install -e ".[dev]"', "pytest"]
    assert "--index-url https://download.pytorch.org/whl/cpu" in before
    assert re.search(r"Python 3\.\d+", before)


def test_readme_names_every_pipeline_and_the_catalog_variable():
    from ltx2cli.pipelines.registry import NAMES

    text = README.read_text()
    for name in NAMES:
        assert f"`{name}`" in text, name
    assert "LTX2_CATALOG" in text


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs(command, _isolated_home, request):
    args = shlex.split(command)[1:]
    if "demo" in args:  # the demo's Gemma conversion is shared across the session
        request.getfixturevalue("demo_home")
    env = {**os.environ, "LTX2_HOME": str(_isolated_home), "LTX2_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "ltx2cli", *args], capture_output=True, text=True, env=env
    )
    if NEEDS_MODELS & set(args[:2]) and "--dry-run" not in args:
        assert proc.returncode == 1, proc.stderr
        assert any(line.startswith("Error: ") for line in proc.stderr.splitlines())
    else:
        assert proc.returncode == 0, proc.stderr
        assert (proc.stdout + proc.stderr).strip()  # a result, or "nothing installed"
    assert proc.returncode != USAGE_ERROR
    assert "Traceback" not in proc.stderr
