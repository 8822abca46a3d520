"""`ltx2 models ...` as a real subprocess against the fake hub; every exit code is asserted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import (
    BIG_BYTES,
    CKPT_BYTES,
    GATED_REPO,
    LORA_BYTES,
    TINY_REPO,
    blob_path,
    run_ltx2,
    sha256,
)

from ltx2cli.hub.catalog import BUILTIN, KINDS

HUGE = 10**18
SLOW_CHUNK_S = 0.01
NARROW_COLUMNS = "80"
EXIT_INTERRUPTED = 130  # README: exit codes
START_TIMEOUT_S = 60
POLL_S = 0.05


def test_pull_shows_plan_licence_and_free_space_then_prints_paths(hub_env):
    proc = run_ltx2("models", "pull", "--for", "distilled", "-y")
    assert proc.returncode == 0, proc.stderr
    assert "Total" in proc.stderr and "free in" in proc.stderr
    assert proc.stderr.count("Licence:") == 1 and "Tiny Terms" in proc.stderr
    lines = dict(line.split("\t")[:2] for line in proc.stdout.splitlines())
    assert set(lines) == {"tiny-ckpt", "tiny-upsampler", "tiny-encoder"}
    with open(lines["tiny-ckpt"], "rb") as f:
        assert f.read() == CKPT_BYTES


def test_pull_progress_bars_on_a_terminal(hub_env):
    proc = run_ltx2("models", "pull", "tiny-lora", "-y", TTY_COMPATIBLE="1", COLUMNS="120")
    assert proc.returncode == 0, proc.stderr
    # One bar per file with the transfer column: 13 bytes x 2000 = 26.0 kB of 26.0 kB.
    assert "lora.safetensors" in proc.stderr and "26.0/26.0 kB" in proc.stderr


def test_pull_off_a_terminal_has_no_bars(hub_env):
    proc = run_ltx2("models", "pull", "tiny-lora", "-y")
    assert proc.returncode == 0
    assert "26.0/26.0 kB" not in proc.stderr and "\x1b[" not in proc.stderr


def test_pull_asks_before_downloading(hub_env, _isolated_home):
    declined = run_ltx2("models", "pull", "tiny-lora", stdin="n\n")
    assert declined.returncode == 1
    assert "Download?" in declined.stderr and hub_env.gets("/cdn/") == []
    accepted = run_ltx2("models", "pull", "tiny-lora", stdin="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert blob_path(_isolated_home, TINY_REPO, LORA_BYTES).read_bytes() == LORA_BYTES


def test_pull_refuses_when_disk_space_is_short(hub_env):
    hub_env.announced_size["huge.safetensors"] = HUGE
    proc = run_ltx2("models", "pull", "huge-ckpt", "-y")
    assert proc.returncode == 1
    assert "not enough disk space" in proc.stderr and hub_env.gets("/cdn/") == []


def test_concurrent_pulls_of_one_file_produce_one_good_blob(hub_env, _isolated_home):
    hub_env.chunk_delay = SLOW_CHUNK_S  # keep the first transfer running while the second starts
    cmd = [sys.executable, "-m", "ltx2cli", "models", "pull", "tiny-ckpt", "-y"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in "ab"]
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0, 0], [p.stderr.read() for p in procs]
    blob = blob_path(_isolated_home, TINY_REPO, CKPT_BYTES)
    assert sha256(blob.read_bytes()) == sha256(CKPT_BYTES)
    assert [p.name for p in blob.parent.iterdir()] == [blob.name]  # no stray partials
    assert len(hub_env.gets("/cdn/")) == 1  # the second pull waited and reused the blob


def test_rejected_token_is_reported_without_leaking_it(hub_env):
    secret = "hf_badSECRETtoken"
    proc = run_ltx2("--debug", "models", "pull", "tiny-lora", "-y", HF_TOKEN=secret)
    assert proc.returncode == 1
    assert "rejected your Hugging Face token" in proc.stderr
    assert "Traceback" in proc.stderr  # --debug shows it, and still no token in it
    assert secret not in proc.stderr + proc.stdout


def test_gated_repo_says_how_to_get_access(hub_env):
    proc = run_ltx2("models", "pull", "gated-encoder", "-y")
    assert proc.returncode == 1
    assert f"{GATED_REPO} is gated" in proc.stderr
    assert "accept the licence" in proc.stderr and "hf auth login" in proc.stderr


def test_offline_pull_sends_no_request(hub_env):
    proc = run_ltx2("models", "pull", "tiny-ckpt", "-y", LTX2_OFFLINE="1")
    assert proc.returncode == 1 and "offline mode is on" in proc.stderr
    assert hub_env.requests == []


def test_path_and_list_output_and_json(hub_env):
    missing = run_ltx2("models", "path", "tiny-ckpt")
    assert missing.returncode == 1 and missing.stdout == ""
    assert "ltx2 models pull tiny-ckpt" in missing.stderr and "1.0 MB" in missing.stderr
    assert run_ltx2("models", "pull", "tiny-ckpt", "tiny-encoder", "-y").returncode == 0
    path = run_ltx2("models", "path", "tiny-ckpt")
    assert path.returncode == 0
    with open(path.stdout.strip(), "rb") as f:
        assert f.read() == CKPT_BYTES
    path_json = run_ltx2("models", "path", "tiny-ckpt", "--json")
    assert json.loads(path_json.stdout) == {"name": "tiny-ckpt", "path": path.stdout.strip()}
    listed = run_ltx2("models", "list", "--json")
    assert listed.returncode == 0
    rows = {r["name"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert set(rows) == {"tiny-ckpt", "tiny-encoder"}
    assert rows["tiny-ckpt"]["size"] == len(CKPT_BYTES)
    assert rows["tiny-encoder"]["kind"] == "text-encoder"
    plain = run_ltx2("models", "list")
    assert plain.returncode == 0 and path.stdout.strip() in plain.stdout
    available = run_ltx2("--json", "models", "available")
    assert available.returncode == 0
    marks = {r["name"]: r["installed"] for r in map(json.loads, available.stdout.splitlines())}
    assert marks["tiny-ckpt"] is True and marks["tiny-lora"] is False


def test_unknown_name_is_a_usage_error(hub_env):
    proc = run_ltx2("models", "path", "tiny-ckp")
    assert proc.returncode == 2 and "did you mean 'tiny-ckpt'" in proc.stderr


def test_verify_catches_a_flipped_byte(hub_env, _isolated_home):
    assert run_ltx2("models", "pull", "tiny-ckpt", "tiny-encoder", "-y").returncode == 0
    clean = run_ltx2("models", "verify")
    assert clean.returncode == 0 and clean.stdout.count("ok\t") == 3
    blob = blob_path(_isolated_home, TINY_REPO, CKPT_BYTES)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    proc = run_ltx2("models", "verify", "--json")
    assert proc.returncode == 1
    status = {
        (r["artifact"], r["file"]): r["status"] for r in map(json.loads, proc.stdout.splitlines())
    }
    assert status[("tiny-ckpt", "tiny.safetensors")] == "corrupt"
    assert status[("tiny-encoder", "enc/config.json")] == "ok"
    assert "ltx2 models rm -y tiny-ckpt" in proc.stderr


def test_rm_reports_bytes_freed_and_deletes(hub_env, _isolated_home):
    assert run_ltx2("models", "pull", "tiny-ckpt", "tiny-lora", "-y").returncode == 0
    declined = run_ltx2("models", "rm", "tiny-ckpt", stdin="n\n")
    assert declined.returncode == 1
    proc = run_ltx2("models", "rm", "tiny-ckpt", "-y", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"name": "tiny-ckpt", "freed": len(CKPT_BYTES)}
    assert not blob_path(_isolated_home, TINY_REPO, CKPT_BYTES).exists()
    assert run_ltx2("models", "path", "tiny-ckpt").returncode == 1
    assert run_ltx2("models", "path", "tiny-lora").returncode == 0
    again = run_ltx2("models", "rm", "tiny-ckpt", "-y")
    assert again.returncode == 1 and "not installed" in again.stderr


def test_import_uses_the_file_in_place(hub_env, tmp_path):
    own = tmp_path / "ComfyUI" / "my.safetensors"
    own.parent.mkdir()
    own.write_bytes(LORA_BYTES)
    proc = run_ltx2("models", "import", str(own), "--as", "my-style", "--kind", "lora")
    assert proc.returncode == 0, proc.stderr
    path = run_ltx2("models", "path", "my-style")
    assert path.returncode == 0 and path.stdout.strip() == str(own)
    no_kind = run_ltx2("models", "import", str(own), "--as", "other-name")
    assert no_kind.returncode == 2 and "--kind" in no_kind.stderr
    absent = run_ltx2("models", "import", str(tmp_path / "nope"), "--as", "x", "--kind", "lora")
    assert absent.returncode == 2
    forgotten = run_ltx2("models", "rm", "my-style", "-y")
    assert forgotten.returncode == 0 and own.read_bytes() == LORA_BYTES
    assert run_ltx2("models", "path", "my-style").returncode == 2


def test_available_piped_shows_every_artifact_on_one_line(monkeypatch):
    monkeypatch.delenv("LTX2_CATALOG", raising=False)  # the built-in catalog
    proc = run_ltx2("models", "available", COLUMNS=NARROW_COLUMNS)
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split() == ["name", "kind", "gen", "size", "gated", "installed", "description"]
    by_name = {row.split()[0]: row for row in rows}
    assert list(by_name) == list(BUILTIN.artifacts)
    for name, artifact in BUILTIN.artifacts.items():
        superseded = f" (superseded by {artifact.superseded_by})" if artifact.superseded_by else ""
        assert by_name[name].endswith(f"  {artifact.description}{superseded}")
    assert all(line == line.rstrip() for line in proc.stdout.splitlines())


@pytest.mark.parametrize(
    ("args", "code", "stderr_fragment"),
    [
        (("available", "--kind", "lroa"), 2, "unknown kind 'lroa' (did you mean 'lora'?)"),
        (("available", "--generation", "3"), 2, "unknown generation '3'"),
        (("verify",), 0, "No models installed: nothing to verify."),
        (("verify", "tiny-ckpt"), 1, "model 'tiny-ckpt' is not installed"),
        (("rm", "tiny-ckpt", "-y"), 1, "model 'tiny-ckpt' is not installed"),
        (("pull",), 2, "nothing to pull"),
        (("pull", "--for", "distiled"), 2, "did you mean 'distilled'"),
    ],
)
def test_bad_or_empty_requests_say_why_on_stderr(hub_env, args, code, stderr_fragment):
    proc = run_ltx2("models", *args)
    assert proc.returncode == code
    assert proc.stdout == ""
    assert stderr_fragment in proc.stderr
    assert hub_env.requests == []


def test_kinds_in_the_error_are_the_catalog_kinds(hub_env):
    proc = run_ltx2("models", "available", "--kind", "vae")
    assert proc.returncode == 2
    assert f"choose one of: {', '.join(KINDS)}" in proc.stderr


def test_end_of_input_at_the_prompt_aborts_without_downloading(hub_env):
    proc = run_ltx2("models", "pull", "tiny-lora", stdin="")
    assert proc.returncode == 1
    assert "Error: aborted" in proc.stderr
    assert hub_env.gets("/cdn/") == []


def test_a_file_named_like_a_model_in_the_working_dir_is_not_installed(hub_env, tmp_path):
    (tmp_path / "tiny-ckpt").write_bytes(b"not the model")
    proc = subprocess.run(
        [sys.executable, "-m", "ltx2cli", "--json", "models", "available"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    marks = {r["name"]: r["installed"] for r in map(json.loads, proc.stdout.splitlines())}
    assert marks["tiny-ckpt"] is False


def test_ctrl_c_during_a_pull_exits_130_and_keeps_the_partial_for_resume(hub_env, _isolated_home):
    hub_env.chunk_delay = SLOW_CHUNK_S  # the transfer outlasts the wait below
    cmd = [sys.executable, "-m", "ltx2cli", "models", "pull", "big-ckpt", "-y"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not hub_env.gets("/cdn/") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(POLL_S)  # wait until the download itself has started
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=START_TIMEOUT_S)
    assert proc.returncode == EXIT_INTERRUPTED
    assert stdout == "" and stderr.splitlines()[-2:] == [
        "Error: interrupted",
        "Hint: run the command again",
    ]
    blob = blob_path(_isolated_home, TINY_REPO, BIG_BYTES)
    assert not blob.exists()
    assert blob.with_name(blob.name + ".incomplete").exists()


@pytest.mark.parametrize("flag", ["-q", "--json"])
def test_quiet_and_json_pulls_print_only_results(hub_env, flag):
    proc = run_ltx2(flag, "models", "pull", "tiny-lora", "-y")
    assert proc.returncode == 0
    assert proc.stderr == ""  # no plan, licence or bars
    (line,) = proc.stdout.splitlines()
    if flag == "--json":
        result = json.loads(line)
        assert (result["name"], result["downloaded"]) == ("tiny-lora", len(LORA_BYTES))
        line = result["path"]
    else:
        line = line.split("\t")[1]
    with open(line, "rb") as f:
        assert f.read() == LORA_BYTES
