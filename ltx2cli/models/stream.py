"""Rewriting safetensors files one tensor at a time, so memory stays near the largest tensor.

- Reading uses plain positional reads into a fresh buffer per tensor, not the memory map:
  pages of a mapped file count toward the process's resident memory while the map is open,
  so a long rewrite through a map would end up holding the whole checkpoint.
- Writing lays out the header first from each output tensor's dtype and shape (known before
  any data is computed), checks the free space for the whole file, then computes and writes
  the tensors in order into a temporary file beside the target, which replaces the target
  only once complete (`atomic_output`). Tensors follow each other without padding, as the
  format specifies; readers do not require alignment.
- Metadata values are kept as the strings they were read as (`TensorReader.metadata`), so an
  embedded config round-trips byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.hub.catalog import human_size
from ltx2cli.hub.errors import DiskSpaceError
from ltx2cli.media._files import atomic_output
from ltx2cli.models.checkpoint import DTYPE_SIZES, CheckpointInfo

ProgressFn = Callable[[int, int], None]

TORCH_DTYPES: dict[str, torch.dtype] = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "I16": torch.int16, "F16": torch.float16, "BF16": torch.bfloat16,
    "I32": torch.int32, "F32": torch.float32, "I64": torch.int64, "F64": torch.float64,
}  # fmt: skip
DTYPE_NAMES = {v: k for k, v in TORCH_DTYPES.items()}
_HEADER_ALIGN = 8  # the header is padded with spaces so tensor data starts 8-aligned


def dtype_name(dtype: torch.dtype) -> str:
    return DTYPE_NAMES[dtype]


class TensorReader:
    """Reads single tensors of a checkpoint whose header `read_checkpoint` validated."""

    def __init__(self, info: CheckpointInfo) -> None:
        self.info = info
        with info.path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        self._start = 8 + length
        # The `__metadata__` strings as stored (CheckpointInfo holds them JSON-decoded).
        self.metadata: dict[str, str] = dict(header.pop("__metadata__", None) or {})
        self._offsets = {k: v["data_offsets"][0] for k, v in header.items()}

    def read_bytes(self, key: str) -> bytearray:
        nbytes = self.info.tensors[key].nbytes
        buffer = bytearray(nbytes)
        with self.info.path.open("rb") as f:  # one open per tensor: nothing held in between
            f.seek(self._start + self._offsets[key])
            got = f.readinto(buffer)
        if got != nbytes:
            raise CheckpointError(
                f"{self.info.path.name}: tensor {key!r} ends early ({got} of {nbytes} bytes)",
                "the file is damaged; download it again (ltx2 models verify)",
            )
        return buffer

    def read(self, key: str) -> torch.Tensor:
        t = self.info.tensors[key]
        data = self.read_bytes(key)
        flat = (
            torch.frombuffer(data, dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
        )
        return flat.view(TORCH_DTYPES[t.dtype]).reshape(t.shape)


@dataclass(frozen=True)
class Entry:
    """One output tensor: its key, dtype and shape up front, its data when `make()` runs."""

    key: str
    dtype: str  # safetensors dtype name
    shape: tuple[int, ...]
    make: Callable[[], torch.Tensor | bytes | bytearray]

    @property
    def nbytes(self) -> int:
        n = DTYPE_SIZES[self.dtype]
        for d in self.shape:
            n *= d
        return n


def copy_entry(reader: TensorReader, key: str, out_key: str | None = None) -> Entry:
    """An entry that copies a tensor's bytes unchanged."""
    t = reader.info.tensors[key]
    return Entry(out_key or key, t.dtype, tuple(t.shape), lambda: reader.read_bytes(key))


def _header(entries: Sequence[Entry], metadata: Mapping[str, str]) -> bytes:
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for e in entries:
        if e.key in header:
            raise ValueError(f"duplicate output tensor {e.key!r}")
        header[e.key] = {
            "dtype": e.dtype,
            "shape": list(e.shape),
            "data_offsets": [offset, offset + e.nbytes],
        }
        offset += e.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    return raw + b" " * (-len(raw) % _HEADER_ALIGN)


def file_size(entries: Sequence[Entry], metadata: Mapping[str, str]) -> int:
    """Bytes the file written from `entries` will take."""
    return 8 + len(_header(entries, metadata)) + sum(e.nbytes for e in entries)


def check_output(out: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]]) -> Path:
    """The output path, or a one-line error if it is an input, a folder or not writable."""
    target = Path(out).expanduser()
    for source in inputs:
        if target.exists() and Path(source).exists() and target.samefile(source):
            raise UsageError(
                f"the output {target} is an input of this command",
                "write to a new file with -o; the input is never overwritten",
            )
    if target.is_dir():
        raise UsageError(f"the output {target} is a folder", "pass a file name with -o")
    parent = _existing_parent(target)
    if not parent.is_dir():
        raise UsageError(f"cannot write {target}: {parent} is not a folder", "choose another -o")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {target}: {parent} is not writable", "choose another -o")
    return target


def _existing_parent(path: Path) -> Path:
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    return parent


def check_space(out: Path, nbytes: int) -> None:
    free = shutil.disk_usage(_existing_parent(out)).free
    if nbytes > free:
        raise DiskSpaceError(
            f"not enough disk space: {out.name} needs {human_size(nbytes)}, "
            f"{_existing_parent(out)} has {human_size(free)} free",
            "free some space or write to another disk with -o",
        )


def write_entries(
    out: str | os.PathLike[str],
    entries: Sequence[Entry],
    metadata: Mapping[str, str],
    progress: ProgressFn | None = None,
) -> int:
    """Write a safetensors file from `entries`, atomically; returns its size in bytes."""
    target = Path(out)
    header = _header(entries, metadata)
    size = 8 + len(header) + sum(e.nbytes for e in entries)
    check_space(target, size)
    total, done = size - 8 - len(header), 0
    try:
        with atomic_output(target) as tmp, open(tmp, "xb") as f:
            f.write(struct.pack("<Q", len(header)))
            f.write(header)
            for e in entries:
                f.write(_checked_bytes(e))
                done += e.nbytes
                if progress is not None:
                    progress(done, total)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC: the disk filled up while writing
            raise DiskSpaceError(
                f"the disk filled up while writing {target}", "free some space"
            ) from None
        raise UsageError(
            f"cannot write {target}: {exc.strerror or exc}", "choose another -o"
        ) from None
    return size


def _checked_bytes(e: Entry) -> memoryview | bytes | bytearray:
    data = e.make()
    if isinstance(data, torch.Tensor):
        if DTYPE_NAMES.get(data.dtype) != e.dtype or tuple(data.shape) != e.shape:
            raise AssertionError(
                f"{e.key}: made {data.dtype} {list(data.shape)}, planned {e.dtype} {list(e.shape)}"
            )  # a planning bug, never the user's input
        flat = data.detach().to("cpu").contiguous().reshape(-1)
        data = memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else b""
    if len(data) != e.nbytes:
        raise AssertionError(f"{e.key}: made {len(data)} bytes, planned {e.nbytes}")
    return data
