"""The network side of the model cache: plan a pull, then fetch it resumably.

Built on huggingface_hub's own pieces: `get_hf_file_metadata` (the HEAD on `/resolve/`, its
redirect rules and etag/size headers), `http_get` (the streaming transfer with Range retries
when a connection drops), `build_hf_headers` (HF_TOKEN or the stored `hf auth login` token),
`WeakFileLock` (the same lock file `hf_hub_download` takes) and its cache layout.

Why not `hf_hub_download` itself: since huggingface_hub 1.x it writes each download to a
process-unique temporary file and deletes it on failure, so a 46 GB pull interrupted at 45 GB
starts over. Here the partial file keeps the stable name `blobs/<etag>.incomplete` and is only
ever written under the blob's lock, so the next pull (from any process) resumes it with a
Range request; the finished file is hashed while it streams and must equal the hub's sha256.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltx2cli.errors import Ltx2Error
from ltx2cli.hub.catalog import Artifact, FileSpec, hash_matches, human_size
from ltx2cli.hub.errors import (
    ChecksumError,
    DiskSpaceError,
    GatedRepoAccessError,
    HubNetworkError,
    OfflineError,
    RemoteNotFoundError,
    TokenRejectedError,
)
from ltx2cli.hub.paths import hub_cache_dir, usable_data_dir
from ltx2cli.hub.store import ProgressCallback, cached_file, repo_storage
from ltx2cli.text import env_flag

logger = logging.getLogger(__name__)

_SHA256_LEN = 64


def is_offline() -> bool:
    """`LTX2_OFFLINE` or `HF_HUB_OFFLINE`, read at call time (not at import)."""
    return any(env_flag(v) for v in ("LTX2_OFFLINE", "HF_HUB_OFFLINE"))


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


@dataclass(frozen=True)
class RemoteFile:
    artifact: Artifact
    spec: FileSpec
    url: str  # where the bytes are (the CDN location after the hub's redirect)
    etag: str
    commit: str
    size: int
    partial: int  # bytes already on disk from an interrupted pull

    @property
    def label(self) -> str:
        return self.spec.name


@dataclass
class Plan:
    files: list[RemoteFile] = field(default_factory=list)
    installed: list[Artifact] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def to_fetch(self) -> int:
        return sum(f.size - f.partial for f in self.files)

    @property
    def licences(self) -> list[str]:
        return sorted({f.artifact.licence for f in self.files})

    def free_space(self) -> int:
        return shutil.disk_usage(_existing_parent(hub_cache_dir())).free

    def check_space(self) -> None:
        free = self.free_space()
        if self.to_fetch > free:
            raise DiskSpaceError(
                f"not enough disk space: the pull needs {human_size(self.to_fetch)}, "
                f"{hub_cache_dir()} has {human_size(free)} free",
                "free some space (`ltx2 models rm NAME`) or set LTX2_HOME to a bigger disk",
            )


def plan(artifacts: list[Artifact]) -> Plan:
    """Ask the hub (one HEAD per missing file) what a pull of `artifacts` would download."""
    result = Plan()
    wanted = [(a, s) for a in artifacts for s in a.files if cached_file(a, s) is None]
    result.installed = [a for a in artifacts if all(cached_file(a, s) for s in a.files)]
    if not wanted:
        return result
    if is_offline():
        names = ", ".join(sorted({a.name for a, _ in wanted}))
        raise OfflineError(
            f"offline mode is on, so {names} cannot be downloaded",
            "unset LTX2_OFFLINE / HF_HUB_OFFLINE to pull",
        )
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    for artifact, spec in wanted:
        url = hf_hub_url(artifact.repo, spec.name, revision=artifact.revision, endpoint=endpoint())
        try:
            meta = get_hf_file_metadata(url, headers=_headers())
        except Exception as exc:
            raise hub_error(exc, artifact, spec) from exc
        if not meta.etag or not meta.commit_hash:
            raise RemoteNotFoundError(
                f"{endpoint()} did not answer like a Hugging Face hub for {artifact.repo}",
                "check HF_ENDPOINT",
            )
        size = meta.size if meta.size is not None else (spec.size or 0)
        etag = meta.etag
        if spec.sha256 and len(etag) == _SHA256_LEN and not hash_matches(spec.sha256, etag):
            result.warnings.append(
                f"{spec.name} on the hub (sha256 {etag[:12]}…) differs from the catalog's "
                f"({spec.sha256[:12]}…); downloading the hub's file and checking its own hash"
            )
        elif spec.size and spec.exact and meta.size is not None and meta.size != spec.size:
            result.warnings.append(
                f"{spec.name} on the hub has {meta.size:,} bytes, the catalog says {spec.size:,}"
            )
        partial = _partial_path(artifact, etag)
        have = partial.stat().st_size if partial.is_file() else 0
        result.files.append(
            RemoteFile(artifact, spec, meta.location, etag, meta.commit_hash, size, min(have, size))
        )
    return result


def pull(the_plan: Plan, on_progress: ProgressCallback | None = None) -> None:
    """Fetch every file in the plan; each ends in the cache under the hub's layout."""
    if is_offline() and the_plan.files:
        raise OfflineError("offline mode is on", "unset LTX2_OFFLINE / HF_HUB_OFFLINE to pull")
    for remote in the_plan.files:
        try:
            _fetch(remote, on_progress)
        except Ltx2Error:
            raise
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise DiskSpaceError(
                    f"the disk filled up while downloading {remote.spec.name}",
                    "free some space and run the pull again: it resumes where it stopped",
                ) from exc
            partial = _partial_path(remote.artifact, remote.etag)
            kept = partial.stat().st_size if partial.is_file() else 0
            raise hub_error(exc, remote.artifact, remote.spec, kept) from exc


def _fetch(remote: RemoteFile, on_progress: ProgressCallback | None) -> None:
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import WeakFileLock

    storage = repo_storage(remote.artifact.repo)
    blob = storage / "blobs" / remote.etag
    pointer = storage / "snapshots" / remote.commit / remote.spec.name
    lock = hub_cache_dir() / ".locks" / storage.name / f"{remote.etag}.lock"
    usable_data_dir()
    for folder in (blob.parent, pointer.parent, lock.parent):
        folder.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(lock):  # a concurrent pull of the same file waits here, then finds the blob
        if not blob.is_file():
            partial = _partial_path(remote.artifact, remote.etag)
            have = partial.stat().st_size if partial.is_file() else 0
            if have > remote.size:
                logger.warning("discarding an oversized partial download of %s", remote.spec.name)
                partial.unlink()
                have = 0
            digest = _hash_prefix(partial, have)
            headers = _headers()
            if not remote.url.startswith(endpoint()):
                headers.pop("authorization", None)  # never send the token to a CDN
            progress = functools.partial(_Progress, remote.label, on_progress)
            with open(partial, "ab") as f:
                http_get(
                    remote.url,
                    _HashingWriter(f, digest, partial),
                    resume_size=have,
                    headers=headers,
                    expected_size=remote.size,
                    displayed_filename=remote.spec.name,
                    tqdm_class=progress,  # type: ignore[arg-type]
                )
            _check_digest(remote, partial, digest.hexdigest())
            os.replace(partial, blob)
        if not pointer.exists():
            rel = os.path.relpath(blob, pointer.parent)
            tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}.link")
            os.symlink(rel, tmp)
            os.replace(tmp, pointer)
        ref = storage / "refs" / remote.artifact.revision
        if remote.artifact.revision != remote.commit:
            ref.parent.mkdir(parents=True, exist_ok=True)
            ref.write_text(remote.commit)
    if on_progress:
        on_progress(remote.label, remote.size, remote.size)


def _check_digest(remote: RemoteFile, partial: Path, sha256: str) -> None:
    expected = remote.etag if len(remote.etag) == _SHA256_LEN else None
    if expected is None or sha256 == expected:
        return
    partial.unlink(missing_ok=True)
    raise ChecksumError(
        f"{remote.spec.name} downloaded with sha256 {sha256[:12]}…, but the hub recorded "
        f"{expected[:12]}…; the corrupt partial file was deleted",
        f"run `ltx2 models pull {remote.artifact.name}` again",
    )


def _partial_path(artifact: Artifact, etag: str) -> Path:
    return repo_storage(artifact.repo) / "blobs" / f"{etag}.incomplete"


def _hash_prefix(path: Path, size: int) -> Any:
    digest = hashlib.sha256()
    if size:
        with open(path, "rb") as f:
            while size > 0 and (chunk := f.read(min(size, 8 * 2**20))):
                digest.update(chunk)
                size -= len(chunk)
    return digest


class _HashingWriter:
    """The file object `http_get` writes to: appends and hashes as bytes arrive.

    `http_get` rewinds and truncates when a server ignores the Range request (answers 200),
    so seeking restarts the hash from the kept prefix.
    """

    def __init__(self, f: Any, digest: Any, path: Path) -> None:
        self._f, self.digest, self._path = f, digest, path

    def write(self, chunk: bytes) -> int:
        self.digest.update(chunk)
        return self._f.write(chunk)

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, pos: int, whence: int = 0) -> int:
        new = self._f.seek(pos, whence)
        self._f.flush()
        self.digest = _hash_prefix(self._path, new)
        return new

    def truncate(self, size: int | None = None) -> int:
        return self._f.truncate(size)

    def flush(self) -> None:
        self._f.flush()


class _Progress:
    """The tqdm stand-in huggingface_hub drives; forwards byte counts to our callback."""

    def __init__(
        self,
        label: str,
        callback: ProgressCallback | None,
        *,
        total: int | None = None,
        initial: int = 0,
        **_: Any,
    ) -> None:
        self.label, self.callback, self.total, self.n = label, callback, total, initial
        self._emit()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._emit()

    def _emit(self) -> None:
        if self.callback:
            self.callback(self.label, self.n, self.total)

    def close(self) -> None:
        pass

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _headers() -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    from ltx2cli import __version__

    return build_hf_headers(library_name="ltx2cli", library_version=__version__)


def _existing_parent(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def hub_error(
    exc: BaseException, artifact: Artifact, spec: FileSpec | None = None, kept: int = 0
) -> Exception:
    """Translate a huggingface_hub / network failure into an actionable HubError. `kept`: bytes
    of the file already on disk (a later pull resumes from them)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    what = f"{artifact.repo}/{spec.name}" if spec else artifact.repo
    status = getattr(getattr(exc, "response", None), "status_code", None)
    server_says = (getattr(exc, "response", None) or _NoResponse).headers.get("X-Error-Message", "")
    if isinstance(exc, GatedRepoError):
        from ltx2cli.hub.catalog import load_catalog

        ungated = [a.name for a in load_catalog().alternatives(artifact.name) if not a.gated]
        instead = f"; or pull the ungated copy instead: ltx2 models pull {ungated[0]}"
        return GatedRepoAccessError(
            f"{artifact.repo} is gated: your account has not been granted access to "
            f"'{artifact.name}' ({artifact.licence})",
            f"open {artifact.page}, accept the licence while logged in, then run "
            "`hf auth login` or set HF_TOKEN to a read token (fine-grained tokens need "
            "'read access to public gated repos')" + (instead if ungated else ""),
        )
    if status == 401 and "invalid credentials" in server_says.lower():
        return TokenRejectedError(
            f"the hub rejected your Hugging Face token (401) while fetching {what}",
            "create a new read token at https://huggingface.co/settings/tokens, then "
            "`hf auth login` or set HF_TOKEN",
        )
    if isinstance(exc, RevisionNotFoundError):
        return RemoteNotFoundError(
            f"revision '{artifact.revision}' of {artifact.repo} does not exist",
            "the catalog may be out of date: update ltx2",
        )
    if isinstance(exc, RemoteEntryNotFoundError):
        return RemoteNotFoundError(
            f"{what} does not exist on the hub (revision {artifact.revision})",
            "the catalog may be out of date: update ltx2, or import a file you have",
        )
    if isinstance(exc, RepositoryNotFoundError) or status == 404:
        return RemoteNotFoundError(
            f"repository {artifact.repo} was not found (or is private)",
            "check HF_ENDPOINT; for a private repository log in with `hf auth login`",
        )
    if isinstance(exc, OfflineModeIsEnabled):
        return OfflineError("offline mode is on", "unset HF_HUB_OFFLINE to pull")
    if isinstance(exc, HfHubHTTPError) and status is not None:
        return HubNetworkError(
            f"the hub answered HTTP {status} for {what}",
            "try again later; `--debug` shows the full answer",
        )
    then = (
        f"{human_size(kept)} of it is kept: run the pull again to resume"
        if kept
        else "nothing of it was downloaded"
    )
    if _is_connection_error(exc) or isinstance(exc, LocalEntryNotFoundError):
        return HubNetworkError(
            f"cannot reach {endpoint()} to fetch {what} ({type(exc).__name__}); {then}",
            "check your network connection, proxy or HF_ENDPOINT",
        )
    return HubNetworkError(
        f"download of {what} failed: {type(exc).__name__}: {exc}; {then}",
        "run the pull again" + (": it resumes where it stopped" if kept else ""),
    )


def _is_connection_error(exc: BaseException) -> bool:
    """Connection refused, DNS failure, timeout or a dropped stream, whichever HTTP client the
    installed huggingface_hub uses (httpx2 in 2.x)."""
    kinds: list[type] = [ConnectionError, TimeoutError]
    try:
        import httpx2

        kinds += [httpx2.ConnectError, httpx2.TimeoutException, httpx2.RemoteProtocolError]
    except ImportError:
        pass
    return isinstance(exc, tuple(kinds))


class _NoResponse:
    headers: dict[str, str] = {}  # noqa: RUF012
