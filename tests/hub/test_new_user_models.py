"""What a new user hit (issue 10): role-based requirements with the ungated Gemma copy, strict
name/path resolution, checked imports, clean `--json` stdout, and the pull plan / dry run."""

from __future__ import annotations

import json

import pytest
from conftest import (
    CKPT_BYTES,
    ENC_WEIGHTS,
    GATED_REPO,
    LORA_BYTES,
    run_ltx2,
    safetensors_bytes,
)

EXIT_RUNTIME, EXIT_USAGE = 1, 2
CLOSED_PORT_ENDPOINT = "http://127.0.0.1:9"  # discard port: nothing listens


def error_and_hint(stderr: str) -> tuple[str, str]:
    lines = stderr.splitlines()
    (error,) = [line for line in lines if line.startswith("Error: ")]
    hint = lines[lines.index(error) + 1]
    assert hint.startswith("Hint: ")
    return error, hint


def pulled(stdout: str) -> dict[str, str]:
    return dict(line.split("\t")[:2] for line in stdout.splitlines())


# -- bug 1: roles, the ungated copy --------------------------------------------------------------


def test_pull_for_a_pipeline_takes_the_ungated_text_encoder_and_says_so(hub_env):
    proc = run_ltx2("models", "pull", "--for", "distilled", "-y")
    assert proc.returncode == 0, proc.stderr
    assert set(pulled(proc.stdout)) == {"tiny-ckpt", "tiny-upsampler", "tiny-encoder"}
    assert "ungated alternative to gated-encoder" in proc.stderr
    assert hub_env.gets(GATED_REPO) == []  # the gated repo was never asked


def test_an_installed_alternative_fills_the_role(hub_env):
    assert run_ltx2("models", "pull", "tiny-encoder", "-y").returncode == 0
    hub_env.requests.clear()
    proc = run_ltx2("models", "pull", "--for", "distilled", "-y")
    assert proc.returncode == 0, proc.stderr
    assert "(already installed)" in [
        line.split("\t")[-1] for line in proc.stdout.splitlines() if "tiny-encoder" in line
    ]
    assert hub_env.gets("enc/") == [] and hub_env.gets(GATED_REPO) == []
    path = run_ltx2("models", "path", "gated-encoder")
    assert path.returncode == 0
    assert path.stdout.strip() == pulled(proc.stdout)["tiny-encoder"]


def test_the_gated_error_names_the_ungated_alternative(hub_env):
    proc = run_ltx2("models", "pull", "gated-encoder", "-y")
    assert proc.returncode == EXIT_RUNTIME
    error, hint = error_and_hint(proc.stderr)
    assert "is gated" in error
    assert "ltx2 models pull tiny-encoder" in hint


# -- bug 2: `models path` and resolution ---------------------------------------------------------


def test_models_path_of_an_empty_name_is_a_usage_error(hub_env):
    proc = run_ltx2("models", "path", "")
    assert proc.returncode == EXIT_USAGE and proc.stdout == ""


def test_a_folder_named_like_a_model_does_not_shadow_it(hub_env, tmp_path):
    (tmp_path / "tiny-ckpt").mkdir()
    proc = run_ltx2("models", "path", "tiny-ckpt", cwd=str(tmp_path))
    assert proc.returncode == EXIT_RUNTIME and proc.stdout == ""
    assert "not installed" in proc.stderr
    as_path = run_ltx2("models", "path", "./tiny-ckpt", cwd=str(tmp_path))
    assert as_path.returncode == 0 and as_path.stdout.strip() == str(tmp_path / "tiny-ckpt")


# -- bug 3: import validation --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "../../etc/x", "a/b", "-dash-first", "white space"])
def test_import_refuses_names_outside_the_catalog_alphabet(hub_env, tmp_path, name):
    own = tmp_path / "lora.safetensors"
    own.write_bytes(LORA_BYTES)
    proc = run_ltx2("models", "import", str(own), "--as", name, "--kind", "lora")
    assert proc.returncode == EXIT_USAGE
    assert run_ltx2("models", "list", "--json").stdout == ""


@pytest.mark.parametrize(
    ("content", "kind", "problem"),
    [
        ("dev-null", "checkpoint", "not a .safetensors file"),
        ("text", "lora", "not a .safetensors file"),
        ("garbage", "lora", "not a valid safetensors file"),
        ("lora", "checkpoint", "does not have the tensors of an LTX-2 checkpoint"),
        ("checkpoint", "lora", "does not have the tensors of an LTX-2 lora"),
        ("folder", "checkpoint", "not a .safetensors file"),
        ("folder", "text-encoder", "no config.json"),
    ],
)
def test_import_refuses_what_is_not_a_model_of_its_kind(hub_env, tmp_path, content, kind, problem):
    path = {
        "dev-null": "/dev/null",
        "text": tmp_path / "notes.txt",
        "garbage": tmp_path / "garbage.safetensors",
        "lora": tmp_path / "lora.safetensors",
        "checkpoint": tmp_path / "ckpt.safetensors",
        "folder": tmp_path / "folder",
    }[content]
    if content == "text":
        path.write_text("hello")
    elif content == "garbage":
        path.write_bytes(b"\x00" * 64)
    elif content == "lora":
        path.write_bytes(LORA_BYTES)
    elif content == "checkpoint":
        path.write_bytes(CKPT_BYTES)
    elif content == "folder":
        path.mkdir()
        (path / "random.bin").write_bytes(ENC_WEIGHTS)
    proc = run_ltx2("models", "import", str(path), "--as", "mine", "--kind", kind)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert problem in proc.stderr
    assert run_ltx2("models", "list", "--json").stdout == ""


def test_import_accepts_a_text_encoder_folder_and_an_upsampler_file(hub_env, tmp_path):
    folder = tmp_path / "gemma"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "gemma3"}')
    (folder / "model.safetensors").write_bytes(safetensors_bytes("w", 256, b"x"))
    upsampler = tmp_path / "up.safetensors"
    upsampler.write_bytes(safetensors_bytes("initial_conv.weight", 256, b"u"))
    for path, name, kind in (
        (folder, "my-gemma", "text-encoder"),
        (upsampler, "my-up", "upsampler"),
    ):
        proc = run_ltx2("models", "import", str(path), "--as", name, "--kind", kind)
        assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in run_ltx2("models", "list", "--json").stdout.splitlines()]
    assert {r["name"]: r["kind"] for r in rows} == {
        "my-gemma": "text-encoder",
        "my-up": "upsampler",
    }


# -- bug 6: --json stdout ------------------------------------------------------------------------


def test_json_without_yes_refuses_instead_of_prompting(hub_env):
    assert run_ltx2("models", "pull", "tiny-lora", "-y").returncode == 0
    proc = run_ltx2("models", "rm", "tiny-lora", "--json", stdin="n\n")
    assert proc.returncode == EXIT_USAGE and proc.stdout == ""
    assert "-y" in error_and_hint(proc.stderr)[1]
    assert run_ltx2("models", "path", "tiny-lora").returncode == 0  # still installed


def test_answering_a_prompt_writes_nothing_to_stdout(hub_env):
    assert run_ltx2("models", "pull", "tiny-lora", "-y").returncode == 0
    proc = run_ltx2("models", "rm", "tiny-lora", stdin="n\n")
    assert proc.returncode == EXIT_RUNTIME and proc.stdout == ""
    assert "Remove tiny-lora?" in proc.stderr


# -- bug 8: the plan before the network, --dry-run, honest failure messages --------------


def test_dry_run_prints_the_plan_from_the_catalog_without_the_network(hub_env):
    proc = run_ltx2(
        "models",
        "pull",
        "--for",
        "distilled",
        "--dry-run",
        "--json",
        HF_ENDPOINT=CLOSED_PORT_ENDPOINT,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert set(rows) == {"tiny-ckpt", "tiny-upsampler", "tiny-encoder"}
    assert rows["tiny-ckpt"]["size"] == len(CKPT_BYTES)
    assert rows["tiny-ckpt"]["files"] == ["tiny.safetensors"]
    assert (
        rows["tiny-encoder"]["licence"] == "Tiny Terms" and rows["tiny-encoder"]["gated"] is False
    )
    assert not any(r["installed"] for r in rows.values())
    assert hub_env.requests == []


def test_the_plan_is_shown_before_a_connection_failure_which_says_nothing_was_downloaded(hub_env):
    proc = run_ltx2("models", "pull", "tiny-lora", "-y", HF_ENDPOINT=CLOSED_PORT_ENDPOINT)
    assert proc.returncode == EXIT_RUNTIME
    assert "tiny-lora: 1 file(s)" in proc.stderr and "not gated" in proc.stderr
    error, hint = error_and_hint(proc.stderr)
    assert "nothing of it was downloaded" in error
    assert "resume" not in error + hint
