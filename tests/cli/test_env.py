"""`ltx2 env`: versions, torch build and devices, data dir and free space; tokens never shown."""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys

import pytest

from ltx2cli import __version__
from ltx2cli.cli.app import main
from ltx2cli.cli.output import out

SECRET = "hf_do_not_print_me_123"
GIB = 2**30
FREE_SPACE_SLACK_GIB = 2.0  # other processes write to the same disk meanwhile


@pytest.fixture(autouse=True)
def _fresh_output(monkeypatch):
    for name, value in {"json": False, "quiet": False, "verbose": 0}.items():
        monkeypatch.setattr(out, name, value)


def run(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code or 0, capsys.readouterr().out


def test_env_json_is_one_object_with_versions_devices_and_data_dir(_isolated_home, monkeypatch):
    import torch

    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("LTX2_DEVICE", "cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "ltx2cli", "--json", "env"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1
    info = json.loads(proc.stdout)
    assert info["packages"]["ltx2cli"] == __version__
    assert info["packages"]["torch"] == torch.__version__
    assert info["python"]["version"] == platform.python_version()
    assert info["torch"]["cuda_available"] == torch.cuda.is_available()
    assert len(info["torch"]["cuda_devices"]) == (
        torch.cuda.device_count() if torch.cuda.is_available() else 0
    )
    assert (info["torch"]["build"] == "CPU") == (torch.version.cuda is None)
    assert info["data_dir"]["path"] == str(_isolated_home)
    assert info["data_dir"]["from_env"] is True
    free = shutil.disk_usage(_isolated_home).free / GIB
    assert abs(info["data_dir"]["free_gib"] - free) < FREE_SPACE_SLACK_GIB
    assert info["environment"]["variables"]["LTX2_DEVICE"] == "cpu"
    assert info["environment"]["tokens"]["HF_TOKEN"] == "set"
    assert SECRET not in proc.stdout + proc.stderr


def test_env_table_shows_sections_and_hides_tokens(capsys, _isolated_home, monkeypatch):
    import torch

    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", SECRET)
    code, stdout = run(capsys, "env")
    assert code == 0
    assert SECRET not in stdout
    lines = stdout.splitlines()
    sections = [line for line in lines if line and not line.startswith(" ")]
    assert sections == ["system", "packages", "torch", "data", "environment"]
    # Rows are "  label   value"; piped, none of them wraps.
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in lines if line[:2] == "  ")
    assert rows["ltx2cli"] == __version__
    assert rows["python"].startswith(platform.python_version())
    assert rows["build"].startswith(torch.__version__)
    assert (rows["cuda"] == "not available") is not torch.cuda.is_available()
    assert rows["data dir"] == f"{_isolated_home} (LTX2_HOME)"  # exists: no "not created yet"
    assert re.fullmatch(r"[\d.]+ GiB of [\d.]+ GiB", rows["free space"])
    assert rows["HUGGING_FACE_HUB_TOKEN"] == "set"
