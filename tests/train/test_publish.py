"""Hub push and W&B of `ltx2 train`: the upload goes to a local server that records it."""

from __future__ import annotations

import base64
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from train_helpers import run_ltx2, train_config, validating_config, write_yaml

REPO = "someone/fox-lora"


class _Hub(BaseHTTPRequestHandler):
    """The few Hub API routes create_repo + upload_folder use; every request is recorded."""

    def _send(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.requests.append((self.path, body))
        base = f"http://127.0.0.1:{self.server.server_port}"
        if self.path == "/api/repos/create":
            request = json.loads(body)
            return self._send(200, {"url": f"{base}/{request['organization']}/{request['name']}"})
        if self.path == "/api/validate-yaml":
            return self._send(200, {"errors": [], "warnings": []})
        if self.path.endswith("/preupload/main"):
            files = json.loads(body)["files"]
            modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                     for f in files]  # fmt: skip
            return self._send(200, {"files": modes})
        if self.path.endswith("/commit/main"):
            oid = "a" * 40
            return self._send(200, {"commitUrl": f"{base}/{REPO}/commit/{oid}", "commitOid": oid})
        return self._send(404, {"error": "not here"})

    def do_GET(self) -> None:
        self.server.requests.append((self.path, b""))
        self._send(404, {"error": "not here"})

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_push_to_hub_uploads_weights_card_and_last_samples(tmp_path, dataset, tiny_model, hub):
    run_dir = tmp_path / "run"
    hub_section = {"push_to_hub": True, "hub_model_id": REPO}
    config = validating_config(dataset, tiny_model, run_dir, hub=hub_section)
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{hub.server_port}", "HF_TOKEN": "hf_test"}
    result = run_ltx2("train", str(write_yaml(tmp_path / "c.yaml", config)), env=env)
    assert result.returncode == 0, result.stderr

    paths = [p for p, _ in hub.requests]
    assert "/api/repos/create" in paths
    created = json.loads(dict(hub.requests)["/api/repos/create"])
    assert (created["organization"], created["name"]) == tuple(REPO.split("/"))
    weights = run_dir / "checkpoints" / "lora_weights_step_00002.safetensors"
    pre = json.loads(dict(hub.requests)[f"/api/models/{REPO}/preupload/main"])
    assert sorted(f["path"] for f in pre["files"]) == sorted(
        ["README.md", weights.name, "samples/step_000002_1.mp4"]  # step 0's samples stay local
    )
    commit = dict(hub.requests)[f"/api/models/{REPO}/commit/main"]
    files = {
        line["value"]["path"]: base64.b64decode(line["value"]["content"])
        for line in map(json.loads, commit.decode().splitlines())
        if line["key"] == "file"
    }
    assert files[weights.name] == weights.read_bytes()
    card = files["README.md"].decode()
    assert weights.name in card and "a red fox runs" in card and "rank 4" in card
    assert (
        files["samples/step_000002_1.mp4"] == (run_dir / "samples/step_000002_1.mp4").read_bytes()
    )


def test_wandb_without_the_package_is_a_one_line_error(tmp_path, dataset, tiny_model):
    try:  # the error is for a machine without wandb (an optional install)
        import wandb  # noqa: F401

        pytest.skip("wandb is installed here")
    except ImportError:
        pass
    config = train_config(dataset, tiny_model[0], tmp_path / "run", wandb={"enabled": True})
    result = run_ltx2("train", str(write_yaml(tmp_path / "c.yaml", config)))
    assert result.returncode == 2
    assert "wandb" in result.stderr and "pip install wandb" in result.stderr
    assert not (tmp_path / "run").exists()


# A stand-in `wandb` package put on the subprocess's path: it records each call as JSON lines.
FAKE_WANDB = """
import json, os

def _record(kind, **data):
    with open(os.environ["FAKE_WANDB_LOG"], "a") as f:
        f.write(json.dumps({"call": kind, **data}, default=str) + "\\n")

class Video:
    def __init__(self, path):
        self.path = path
    def __repr__(self):
        return "video:" + self.path

class Audio(Video):
    pass

class _Run:
    id = "run-123"
    def log(self, data, step=None):
        _record("log", data={k: repr(v) if isinstance(v, list) else v for k, v in data.items()},
                step=step)
    def finish(self):
        _record("finish")

def init(**kwargs):
    _record("init", **kwargs)
    return _Run()
"""


def test_wandb_logs_the_config_every_step_and_the_samples(tmp_path, dataset, tiny_model):
    (tmp_path / "fake" / "wandb").mkdir(parents=True)
    (tmp_path / "fake" / "wandb" / "__init__.py").write_text(FAKE_WANDB)
    calls_file = tmp_path / "calls.jsonl"
    config = validating_config(
        dataset, tiny_model, tmp_path / "myrun", {"skip_initial_validation": True},
        wandb={"enabled": True, "project": "foxes", "tags": ["t1"]},
    )  # fmt: skip
    env = {"PYTHONPATH": str(tmp_path / "fake"), "FAKE_WANDB_LOG": str(calls_file)}
    result = run_ltx2("train", str(write_yaml(tmp_path / "c.yaml", config)), env=env)
    assert result.returncode == 0, result.stderr

    calls = [json.loads(line) for line in calls_file.read_text().splitlines()]
    assert calls[0]["call"] == "init"
    assert calls[0]["project"] == "foxes" and calls[0]["tags"] == ["t1"]
    assert calls[0]["name"] == "myrun" and calls[0]["config"]["optimization"]["steps"] == 2
    steps = [c for c in calls if c["call"] == "log" and "train/loss" in c["data"]]
    assert [c["step"] for c in steps] == [1, 2]
    assert [c["data"]["train/global_step"] for c in steps] == [1, 2]
    samples = [c for c in calls if c["call"] == "log" and "validation/samples" in c["data"]]
    assert len(samples) == 1 and samples[0]["step"] == 2
    assert "step_000002_1.mp4" in samples[0]["data"]["validation/samples"]
    assert calls[-1]["call"] == "finish"
