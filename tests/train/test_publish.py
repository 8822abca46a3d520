"""Hub push and W&B of `ltx2 train`: the upload goes to a local server that records it."""

from __future__ import annotations

import base64
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from train_helpers import run_ltx2, train_config, write_yaml

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
    checkpoint, gemma = tiny_model
    run_dir = tmp_path / "run"
    config = train_config(
        dataset, checkpoint, run_dir,
        model={"model_path": str(checkpoint), "text_encoder_path": str(gemma)},
        optimization={"steps": 2},
        checkpoints={"interval": None},
        validation={
            "samples": [{"prompt": "a red fox runs"}], "video_dims": [64, 32, 9],
            "frame_rate": 8.0, "inference_steps": 1, "interval": 2, "stg_blocks": [0],
        },
        hub={"push_to_hub": True, "hub_model_id": REPO},
    )  # fmt: skip
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
