"""The README's `ltx2 lora` / `ltx2 quantize` examples run as shown, on tiny files named as
there (the generic README test only parses them: they need files)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ltx2cli.models.checkpoint import TRANSFORMER_PREFIX
from ltx2cli.models.tiny import write_tiny_checkpoint

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## LoRA files and fp8 checkpoints"
RANK = 4


def section_commands() -> list[str]:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    blocks = re.findall(r"```shell\n(.*?)```", text[start:end], flags=re.DOTALL)
    lines = (line.split("  #")[0].strip() for block in blocks for line in block.splitlines())
    return [line for line in lines if line.startswith(("ltx2 lora ", "ltx2 quantize "))]


def test_the_section_shows_every_command():
    verbs = {tuple(shlex.split(c)[1:3]) for c in section_commands()}
    assert {v if v[0] == "lora" else v[:1] for v in verbs} == {
        ("lora", "inspect"),
        ("lora", "convert"),
        ("lora", "fuse"),
        ("quantize",),
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    base = write_tiny_checkpoint(root / "base.safetensors", "2.3")
    g = torch.Generator().manual_seed(0)
    tensors = {}
    with safe_open(str(base), "pt") as f:
        names = f.keys()
        keys = [k for k in names if k.endswith(("attn1.to_q.weight", "attn1.to_v.weight"))]
        for key in keys:
            out_f, in_f = f.get_slice(key).get_shape()
            module = "diffusion_model." + key.removeprefix(TRANSFORMER_PREFIX).removesuffix(
                ".weight"
            )
            tensors[f"{module}.lora_A.weight"] = torch.randn(RANK, in_f, generator=g)
            tensors[f"{module}.lora_B.weight"] = torch.randn(out_f, RANK, generator=g)
    save_file(tensors, str(root / "style.safetensors"))
    return root


@pytest.mark.parametrize("command", section_commands())
def test_readme_lora_command_runs(command, workdir):
    proc = subprocess.run(
        [sys.executable, "-m", "ltx2cli", *shlex.split(command)[1:]],
        capture_output=True, text=True, cwd=workdir, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "Traceback" not in proc.stderr
