"""The local side of the model cache: what is installed, where, and whether its bytes are intact.

Nothing here touches the network. Pulled files live in huggingface_hub's cache layout under
`hub_cache_dir()` (`models--org--name/blobs/<etag>`, `snapshots/<commit>/<file>` links,
`refs/<revision>`), so the hub's own tools (`hf cache ls`) see them too. Files the user already
had are registered by `import_model` in a small JSON registry and never copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ltx2cli.errors import UsageError
from ltx2cli.hub.catalog import KINDS, Artifact, Catalog, FileSpec, hash_matches, human_size
from ltx2cli.hub.paths import hub_cache_dir, model_registry_path, usable_data_dir

ProgressCallback = Callable[[str, int, "int | None"], None]
"""`(label, bytes_done, bytes_total)`, called as work advances (downloads, hashing)."""

_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Names a model may be imported under: the catalog's alphabet, no separators.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: What `read_checkpoint(...).kind` says for a file of each catalog kind.
_LAYOUT_OF_KIND = {"checkpoint": "monolithic", "upsampler": "upsampler", "lora": "lora"}
_SHA1 = re.compile(r"[0-9a-f]{40}")
_HASH_CHUNK = 8 * 2**20
#: How far a file may be from a catalog size that is only quoted approximately (`exact=False`).
APPROX_SIZE_TOLERANCE = 0.1


# -- cache layout -------------------------------------------------------------------------------


def repo_storage(repo: str) -> Path:
    return hub_cache_dir() / ("models--" + repo.replace("/", "--"))


def resolved_commit(artifact: Artifact) -> str | None:
    """The commit a pull recorded for the artifact's revision (a full hash is used as is)."""
    if _SHA1.fullmatch(artifact.revision):
        return artifact.revision
    ref = repo_storage(artifact.repo) / "refs" / artifact.revision
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


def cached_file(artifact: Artifact, spec: FileSpec) -> Path | None:
    commit = resolved_commit(artifact)
    if commit is None:
        return None
    path = repo_storage(artifact.repo) / "snapshots" / commit / spec.name
    return path if path.is_file() else None


def missing_files(artifact: Artifact) -> list[FileSpec]:
    """The artifact's files not yet in the cache."""
    return [spec for spec in artifact.files if cached_file(artifact, spec) is None]


def cache_path(artifact: Artifact) -> Path | None:
    """The pulled file (or folder, for whole-repo artifacts) if every file is present."""
    paths = [cached_file(artifact, spec) for spec in artifact.files]
    if not paths or any(p is None for p in paths):
        return None
    if artifact.is_directory:
        return repo_storage(artifact.repo) / "snapshots" / str(resolved_commit(artifact))
    return paths[0]


# -- the import registry ------------------------------------------------------------------------


def read_registry() -> dict[str, dict]:
    path = model_registry_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}
    return data.get("imports", {}) if isinstance(data, dict) else {}


def _write_registry(imports: dict[str, dict]) -> None:
    usable_data_dir()
    path = model_registry_path()
    fd, tmp = tempfile.mkstemp(prefix=".models-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"imports": imports}, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def import_model(catalog: Catalog, path: Path, name: str, kind: str | None = None) -> dict:
    """Register an existing file or folder under `name` (a catalog name or one of the user's),
    after checking the name and that the file is a model of its kind (header only)."""
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"cannot import under the name {name!r}",
            "use letters, digits, '.', '_' and '-' (no separators), e.g. --as my-style",
        )
    path = path.expanduser().resolve()
    if not path.exists():
        raise UsageError(f"no such file or folder: {path}", "check the PATH argument")
    artifact = catalog.artifacts.get(name)
    if artifact is not None:
        if kind and kind != artifact.kind:
            raise UsageError(
                f"'{name}' is a {artifact.kind} in the catalog, not a {kind}",
                "drop --kind, or import under a name of your own",
            )
        kind = artifact.kind
        _check_matches_catalog(artifact, path)
    elif kind is None:
        raise UsageError(
            f"'{name}' is not a catalog name, so its kind is unknown",
            f"add --kind ({'|'.join(KINDS)})",
        )
    elif kind not in KINDS:
        raise UsageError(f"unknown kind '{kind}'", f"choose one of: {', '.join(KINDS)}")
    if name == "demo":
        raise UsageError("'demo' is reserved for the built-in demo model", "choose another --as")
    check_layout(path, kind)
    record = {
        "path": str(path),
        "kind": kind,
        "size": _disk_size(path),
        "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    imports = read_registry()
    imports[name] = record
    _write_registry(imports)
    return {"name": name, **record}


def check_layout(path: Path, kind: str) -> None:
    """Refuse what is not a model of `kind`: a text encoder is a folder with `config.json` and
    safetensors weights; anything else one readable safetensors file whose tensor names have
    the LTX-2 layout of that kind."""
    if kind == "text-encoder":
        if not path.is_dir() or not (path / "config.json").is_file():
            raise UsageError(
                f"{path} is not a text-encoder folder (no config.json in it)",
                "pass the Gemma folder that holds config.json, the tokenizer and the weights",
            )
        if not any(path.glob("*.safetensors")):
            raise UsageError(f"{path} holds no .safetensors weights", "pass the complete folder")
        return
    if not path.is_file() or path.suffix != ".safetensors":
        raise UsageError(f"{path} is not a .safetensors file", f"a {kind} is one .safetensors file")
    from ltx2cli.errors import CheckpointError
    from ltx2cli.models.checkpoint import read_checkpoint  # header only, torch-free

    try:
        layout = read_checkpoint(path).kind
    except CheckpointError as exc:
        raise UsageError(exc.message, f"import a complete {kind} file") from None
    if layout != _LAYOUT_OF_KIND[kind]:
        raise UsageError(
            f"{path.name} does not have the tensors of an LTX-2 {kind}",
            "check the file, or pass the --kind it is",
        )


def _check_matches_catalog(artifact: Artifact, path: Path) -> None:
    if artifact.is_directory:
        if not path.is_dir():
            raise UsageError(
                f"'{artifact.name}' is a folder of {len(artifact.files)} files; {path} is a file",
                "pass the folder that holds config.json and the weights",
            )
        missing = [f.name for f in artifact.files if not (path / f.name).is_file()]
        if missing:
            raise UsageError(
                f"{path} lacks {len(missing)} file(s) of '{artifact.name}': "
                + ", ".join(missing[:3]),
                "pass the complete model folder",
            )
        return
    if not path.is_file():
        raise UsageError(f"'{artifact.name}' is a single file; {path} is a folder")
    spec = artifact.files[0]
    size = path.stat().st_size
    if spec.size is None:
        return
    if spec.exact and size != spec.size:
        expected = f"{spec.size:,} bytes"
    elif not spec.exact and abs(size - spec.size) > APPROX_SIZE_TOLERANCE * spec.size:
        expected = f"about {human_size(spec.size)}"
    else:
        return
    raise UsageError(
        f"{path.name} has {size:,} bytes, but '{artifact.name}' ({spec.name}) has "
        f"{expected}: it is a different file",
        "import it under a name of your own with --as NAME --kind KIND",
    )


def forget_import(name: str) -> dict | None:
    imports = read_registry()
    record = imports.pop(name, None)
    if record is not None:
        _write_registry(imports)
    return record


# -- listing, removal, verification -------------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    name: str
    kind: str
    path: Path
    size: int
    source: str  # "hub" or "import"


def installed(catalog: Catalog) -> list[Installed]:
    found = []
    for artifact in catalog.artifacts.values():
        path = cache_path(artifact)
        if path is not None:
            size = sum(_size(cached_file(artifact, spec)) for spec in artifact.files)
            found.append(Installed(artifact.name, artifact.kind, path, size, "hub"))
    for name, record in sorted(read_registry().items()):
        path = Path(record["path"])
        size = _disk_size(path) if path.exists() else 0
        found.append(Installed(name, record.get("kind", "?"), path, size, "import"))
    return found


def _size(path: Path | None) -> int:
    return path.stat().st_size if path is not None else 0


def remove(artifact: Artifact) -> int:
    """Delete the artifact's files from every cached snapshot; returns the bytes freed.

    A blob is deleted only when no other snapshot link (another artifact of the same
    repository, another commit) still points at it.
    """
    storage = repo_storage(artifact.repo)
    snapshots = storage / "snapshots"
    if not snapshots.is_dir():
        return 0
    names = {spec.name for spec in artifact.files}
    blobs: set[Path] = set()
    for commit_dir in snapshots.iterdir():
        for name in names:
            link = commit_dir / name
            if link.is_symlink() or link.is_file():
                target = link.resolve()
                link.unlink()
                if target != link:
                    blobs.add(target)
        _prune_empty(commit_dir)
    still_used = {p.resolve() for p in snapshots.rglob("*") if p.is_symlink()}
    freed = 0
    for blob in blobs - still_used:
        if blob.is_file():
            freed += blob.stat().st_size
            blob.unlink()
    return freed


def _prune_empty(folder: Path) -> None:
    for sub in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


@dataclass(frozen=True)
class FileCheck:
    artifact: str
    file: str
    status: str  # ok | corrupt | missing | unverified
    detail: str = ""


def verify(artifact: Artifact, on_progress: ProgressCallback | None = None) -> list[FileCheck]:
    """Re-hash the artifact's cached files against the hub's recorded hashes.

    A cached blob is named after the hub's etag: the sha256 for LFS files, the git blob
    sha1 for small files; both are recomputed. A full catalog sha256 is checked as well.
    """
    checks = []
    for spec in artifact.files:
        path = cached_file(artifact, spec)
        if path is None:
            checks.append(FileCheck(artifact.name, spec.name, "missing", "not in the cache"))
            continue
        etag = path.resolve().name
        sha256, sha1 = file_hashes(
            path, spec.name, on_progress, git_sha1=bool(_SHA1.fullmatch(etag))
        )
        expected = etag if _SHA256.fullmatch(etag) else None
        if expected and sha256 != expected:
            detail = f"sha256 {sha256[:12]}… but the hub recorded {expected[:12]}…"
            checks.append(FileCheck(artifact.name, spec.name, "corrupt", detail))
        elif sha1 is not None and sha1 != etag:
            detail = f"git sha1 {sha1[:12]}… but the hub recorded {etag[:12]}…"
            checks.append(FileCheck(artifact.name, spec.name, "corrupt", detail))
        elif spec.sha256 and not hash_matches(spec.sha256, sha256):
            detail = f"sha256 {sha256[:12]}… differs from the catalog's {spec.sha256[:12]}…"
            checks.append(FileCheck(artifact.name, spec.name, "corrupt", detail))
        else:
            checks.append(
                FileCheck(artifact.name, spec.name, "ok", human_size(path.stat().st_size))
            )
    return checks


def verify_import(
    name: str, record: dict, catalog: Catalog, on_progress: ProgressCallback | None = None
) -> list[FileCheck]:
    """Imported files are checked against the catalog (size, sha256) when the name is known."""
    path = Path(record["path"])
    if not path.exists():
        return [FileCheck(name, str(path), "missing", "the imported file is gone")]
    artifact = catalog.artifacts.get(name)
    if artifact is None:
        return [FileCheck(name, path.name, "unverified", "not a catalog name: nothing to compare")]
    checks = []
    for spec in artifact.files:
        file = path / spec.name if artifact.is_directory else path
        if not file.is_file():
            checks.append(FileCheck(name, spec.name, "missing", f"{file} is gone"))
            continue
        if spec.exact and spec.size is not None and file.stat().st_size != spec.size:
            detail = f"{file.stat().st_size:,} bytes, catalog says {spec.size:,}"
            checks.append(FileCheck(name, spec.name, "corrupt", detail))
            continue
        if not spec.sha256:
            checks.append(FileCheck(name, spec.name, "unverified", "no catalog hash; size only"))
            continue
        sha256, _ = file_hashes(file, spec.name, on_progress)
        ok = hash_matches(spec.sha256, sha256)
        detail = "" if ok else f"sha256 {sha256[:12]}… differs from the catalog's"
        checks.append(FileCheck(name, spec.name, "ok" if ok else "corrupt", detail))
    return checks


def file_hashes(
    path: Path, label: str, on_progress: ProgressCallback | None = None, *, git_sha1: bool = False
) -> tuple[str, str | None]:
    """sha256 of the file, and (for git-stored files) its git blob sha1."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(b"blob %d\0" % size) if git_sha1 else None
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            sha256.update(chunk)
            if sha1 is not None:
                sha1.update(chunk)
            done += len(chunk)
            if on_progress:
                on_progress(label, done, size)
    return sha256.hexdigest(), (sha1.hexdigest() if sha1 is not None else None)


def _disk_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
