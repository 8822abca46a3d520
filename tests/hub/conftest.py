"""A local stand-in for the Hugging Face hub's file endpoints, and a catalog that points at it.

The server answers like huggingface.co does for `HEAD`/`GET /{repo}/resolve/{rev}/{file}`:
small files directly with `ETag` (git blob sha1) and `X-Repo-Commit`; LFS-style files with a
302 to a different host name ("localhost" instead of 127.0.0.1, like the hub's CDN) carrying
`X-Linked-Etag` (sha256) and `X-Linked-Size`; the CDN honours `Range` with 206. Errors carry
the hub's `X-Error-Code` (`GatedRepo`, `RepoNotFound`, `EntryNotFound`, `RevisionNotFound`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"
GOOD_TOKEN = "hf_goodtokenvalue1234567890"
LFS_SUFFIX = ".safetensors"


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class FakeHub:
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    gated: set[str] = field(default_factory=set)
    granted_tokens: set[str] = field(default_factory=lambda: {GOOD_TOKEN})
    announced_size: dict[str, int] = field(default_factory=dict)  # HEAD lies (disk-space tests)
    cut_after: dict[str, int] = field(default_factory=dict)  # first GET of a file stops here
    chunk_delay: float = 0.0
    requests: list[tuple[str, str, dict]] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def blob(self, sha: str) -> tuple[str, bytes] | None:
        for files in self.repos.values():
            for name, data in files.items():
                if sha256(data) == sha:
                    return name, data
        return None

    def gets(self, path_part: str = "") -> list[dict]:
        return [h for m, p, h in self.requests if m == "GET" and path_part in p]


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            with hub.lock:
                hub.requests.append(
                    (self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
                )
            if self.path.startswith("/cdn/"):
                return self._cdn(self.path.removeprefix("/cdn/"), body)
            parts = self.path.lstrip("/").split("/", 4)
            if len(parts) < 5 or parts[2] != "resolve":
                return self._error(404, "RepoNotFound")
            repo, revision, filename = f"{parts[0]}/{parts[1]}", parts[3], parts[4]
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ").strip() or None
            if token is not None and token not in hub.granted_tokens:
                return self._error(401, None, "Invalid credentials in Authorization header")
            if repo not in hub.repos:
                return self._error(404, "RepoNotFound")
            if repo in hub.gated and token is None:
                return self._error(401, "GatedRepo", "Access to this model is restricted.")
            if revision not in ("main", COMMIT):
                return self._error(404, "RevisionNotFound")
            data = hub.repos[repo].get(filename)
            if data is None:
                return self._error(404, "EntryNotFound", commit=True)
            if filename.endswith(LFS_SUFFIX):
                digest = sha256(data)
                self.send_response(302)
                self.send_header("Location", f"http://localhost:{hub.port}/cdn/{digest}")
                self.send_header("X-Linked-Etag", f'"{digest}"')
                self.send_header("X-Linked-Size", str(hub.announced_size.get(filename, len(data))))
                self.send_header("ETag", f'"{git_sha1(b"pointer " + data[:16])}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", f'"{git_sha1(data)}"')
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _cdn(self, digest: str, body: bool) -> None:
            found = hub.blob(digest)
            if found is None:
                return self._error(404, None)
            name, data = found
            start = 0
            rng = self.headers.get("Range")
            if rng:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{digest}"')
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if not body:
                return
            with hub.lock:
                cut = hub.cut_after.pop(name, None) if body else None
            payload = data[start:] if cut is None else data[start:cut]
            step = 64 * 1024
            for i in range(0, len(payload), step):
                if hub.chunk_delay:
                    time.sleep(hub.chunk_delay)
                self.wfile.write(payload[i : i + step])
            if cut is not None:
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)

        def _error(
            self, status: int, code: str | None, message: str = "", commit: bool = False
        ) -> None:
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            if message:
                self.send_header("X-Error-Message", message)
            if commit:
                self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@pytest.fixture
def fake_hub():
    hub = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield hub
    server.shutdown()
    server.server_close()


# -- test catalog -------------------------------------------------------------------------------


def safetensors_header(key: str, total: int) -> bytes:
    """The first bytes of a `total`-byte safetensors file holding one U8 tensor `key` that
    fills the rest (the header is sized so the whole file is exactly `total` bytes)."""
    data = total
    while True:
        entry = {key: {"dtype": "U8", "shape": [data], "data_offsets": [0, data]}}
        header = json.dumps(entry).encode()
        if 8 + len(header) + data == total:
            return len(header).to_bytes(8, "little") + header
        data = total - 8 - len(header)


def safetensors_bytes(key: str, total: int, pattern: bytes) -> bytes:
    header = safetensors_header(key, total)
    body = pattern * (total // len(pattern) + 1)
    return header + body[: total - len(header)]


TINY_REPO = "test-org/Tiny-LTX"
GATED_REPO = "test-org/Gated-Encoder"
# Real safetensors files (headers are checked on import) of round sizes, LFS-style.
CKPT_BYTES = safetensors_bytes("model.diffusion_model.proj_out.weight", 2**20, bytes(range(256)))
BIG_BYTES = bytes(reversed(range(256))) * 4096 * 12  # 12 MiB: more than one hub read chunk
LORA_BYTES = safetensors_bytes("diffusion_model.proj_out.lora_A.weight", 26_000, b"lora-")
UP_BYTES = safetensors_bytes("initial_conv.weight", 18_000, b"upsampler-")
ENC_CONFIG = b'{"model_type": "gemma3"}\n'
ENC_WEIGHTS = b"encoder-weights" * 3000


def _file(name: str, data: bytes, *, with_hash: bool = True) -> dict:
    return {"name": name, "size": len(data), "sha256": sha256(data) if with_hash else None}


def catalog_dict() -> dict:
    def art(name, kind, repo, files, **kw):
        return {"name": name, "kind": kind, "generation": "2.3", "repo": repo, "files": files,
                "description": f"test {kind}", **kw}  # fmt: skip

    return {
        "artifacts": [
            art("tiny-ckpt", "checkpoint", TINY_REPO, [_file("tiny.safetensors", CKPT_BYTES)]),
            art("big-ckpt", "checkpoint", TINY_REPO, [_file("big.safetensors", BIG_BYTES)]),
            art("tiny-lora", "lora", TINY_REPO, [_file("lora.safetensors", LORA_BYTES)]),
            art("tiny-upsampler", "upsampler", TINY_REPO, [_file("up.safetensors", UP_BYTES)]),
            art(
                "tiny-encoder",
                "text-encoder",
                TINY_REPO,
                [_file("enc/config.json", ENC_CONFIG), _file("enc/model.safetensors", ENC_WEIGHTS)],
                licence="Tiny Terms",
                provides="gated-encoder",
            ),
            art(
                "gated-encoder",
                "text-encoder",
                GATED_REPO,
                [_file("model.safetensors", ENC_WEIGHTS)],
                licence="Gated Terms",
                gated=True,
            ),
            art(
                "huge-ckpt",
                "checkpoint",
                TINY_REPO,
                [_file("huge.safetensors", LORA_BYTES, with_hash=False)],
            ),
            art("missing-file", "lora", TINY_REPO, [_file("nope.safetensors", b"x")]),
        ],
        "roles": {
            "2.3": {
                "distilled-checkpoint": ["tiny-ckpt"],
                "spatial-upsampler": ["tiny-upsampler"],
                "text-encoder": ["gated-encoder", "tiny-encoder"],
            }
        },
    }


@pytest.fixture
def hub_env(fake_hub, tmp_path, monkeypatch, _isolated_home):
    """The fake hub filled with the test repos, and the env that points ltx2 at it."""
    fake_hub.repos[TINY_REPO] = {
        "tiny.safetensors": CKPT_BYTES,
        "lora.safetensors": LORA_BYTES,
        "up.safetensors": UP_BYTES,
        "enc/config.json": ENC_CONFIG,
        "enc/model.safetensors": ENC_WEIGHTS,
        "huge.safetensors": LORA_BYTES,
        "big.safetensors": BIG_BYTES,
    }
    fake_hub.repos[GATED_REPO] = {"model.safetensors": ENC_WEIGHTS}
    fake_hub.gated.add(GATED_REPO)
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(catalog_dict()))
    env = {
        "HF_ENDPOINT": fake_hub.endpoint,
        "LTX2_CATALOG": str(catalog),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": str(tmp_path / "hf-home"),  # no stored login from the machine
        "NO_PROXY": "*",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_HUB_OFFLINE", "LTX2_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    return fake_hub


def run_ltx2(
    *args: str, stdin: str | None = None, cwd: str | None = None, **extra_env: str
) -> subprocess.CompletedProcess:
    """The real CLI as a subprocess, with the test's environment (plus `extra_env`)."""
    # Wide COLUMNS: Rich wraps stderr at 80 columns off a terminal, which splits messages.
    env = {**os.environ, "COLUMNS": "250", **extra_env}
    return subprocess.run(
        [sys.executable, "-m", "ltx2cli", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        cwd=cwd,
        timeout=120,
    )


def blob_path(home: Path, repo: str, data: bytes) -> Path:
    return home / "hub" / ("models--" + repo.replace("/", "--")) / "blobs" / sha256(data)
