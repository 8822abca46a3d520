"""Which device and dtype a run uses, and what this machine offers: one place for the
pipelines and `ltx2 env`.

- A device is named "auto", "cpu", "mps", "cuda" or "cuda:N". "auto" picks the current CUDA
  device when CUDA is available, else MPS, else the CPU. Asking for a device this machine
  does not have is a one-line `DeviceError` naming it, raised before anything loads.
- Default dtype: bfloat16 on CUDA (the reference pipelines' dtype; GPUs older than Ampere
  emulate it) and on MPS where the system supports it (float32 otherwise: float16's range is
  too narrow for these models' activations); float32 on the CPU, where bfloat16 matmuls are
  slow on most processors and only the small demo model is practical anyway.
- torch is imported inside the functions: `ltx2 env` calls them and `ltx2 --help` must not
  import torch.
"""

from __future__ import annotations

import platform
import re
from typing import TYPE_CHECKING, Any

from ltx2cli.errors import DeviceError, UsageError

if TYPE_CHECKING:
    import torch

DEVICE_NAMES = ("auto", "cpu", "mps", "cuda", "cuda:N")
DTYPE_NAMES = ("bfloat16", "float16", "float32")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")
GIB = 2**30


def resolve_device(spec: str = "auto") -> torch.device:
    """The device `spec` names, checked against this machine."""
    import torch

    match = _DEVICE_PATTERN.match(spec.strip().lower())
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise UsageError(f"device {spec!r} is not a device", f"use {', '.join(DEVICE_NAMES)}")
    kind, index = match.group(1), match.group(2)
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise DeviceError(f"device {spec!r} is not available on this machine", "use cpu")
        return torch.device("mps")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "no CUDA GPU visible"
        raise DeviceError(
            f"device {spec!r} was asked for but CUDA is not available (torch "
            f"{torch.__version__}: {build})",
            "install a CUDA build of torch, check CUDA_VISIBLE_DEVICES, or use cpu",
        )
    count = torch.cuda.device_count()
    number = torch.cuda.current_device() if index is None else int(index)
    if number >= count:
        raise DeviceError(
            f"device {spec!r} does not exist: {count} CUDA device(s) visible",
            f"use cuda:0 to cuda:{count - 1}",
        )
    return torch.device("cuda", number)


def default_dtype(device: torch.device | str) -> torch.dtype:
    """The dtype a run on `device` uses unless one is asked for (see the module docstring)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16
    if device.type == "mps":
        return torch.bfloat16 if _mps_bf16() else torch.float32
    return torch.float32


def resolve_dtype(name: str | None, device: torch.device | str) -> torch.dtype:
    """The dtype `name` names ("auto" or None: `default_dtype(device)`), checked against
    `device` (MPS runs bfloat16 only from macOS 14 on)."""
    import torch

    device = torch.device(device)
    if name is None or name == "auto":
        return default_dtype(device)
    if name not in DTYPE_NAMES:
        raise UsageError(f"dtype {name!r} is not a dtype", f"use auto, {', '.join(DTYPE_NAMES)}")
    dtype = getattr(torch, name)
    if dtype == torch.bfloat16 and device.type == "mps" and not _mps_bf16():
        raise DeviceError("dtype bfloat16 is not supported on mps before macOS 14", "use float32")
    return dtype


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def _mps_bf16() -> bool:
    """MPS runs bfloat16 from macOS 14 on; older systems raise when a tensor is made."""
    import torch

    try:
        torch.zeros(1, dtype=torch.bfloat16, device="mps")
    except (RuntimeError, TypeError):
        return False
    return True


def device_report() -> dict[str, Any]:
    """What `ltx2 env` shows about torch: build, CUDA devices with memory, MPS, the device
    "auto" picks and its default dtype. Plain JSON-able data; `available` False without torch.
    """
    try:
        import torch
    except ImportError as exc:
        return {"available": False, "error": str(exc)}
    cuda_ok = torch.cuda.is_available()
    count = torch.cuda.device_count() if cuda_ok else 0
    mps_backend = getattr(torch.backends, "mps", None)
    mps_ok = _mps_available()
    mps: dict[str, Any] = {
        "available": mps_ok,
        "built": bool(mps_backend and mps_backend.is_built()),
    }
    if mps_ok:
        mps["name"] = platform.processor() or "Apple GPU"
        limit = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
        if callable(limit):
            mps["memory_gib"] = round(limit() / GIB, 1)
    auto = resolve_device("auto")
    return {
        "available": True,
        "version": torch.__version__,
        "build": _torch_build(torch),
        "cuda_available": cuda_ok,
        "cudnn": torch.backends.cudnn.version() if cuda_ok else None,
        "cuda_devices": [_cuda_device(torch, index) for index in range(count)],
        "mps": mps,
        "threads": torch.get_num_threads(),
        "auto_device": str(auto),
        "default_dtype": str(default_dtype(auto)).removeprefix("torch."),
    }


def _cuda_device(torch: Any, index: int) -> dict[str, Any]:
    props = torch.cuda.get_device_properties(index)
    device: dict[str, Any] = {
        "index": index,
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / GIB, 1),
    }
    try:
        free, _ = torch.cuda.mem_get_info(index)
        device["free_gib"] = round(free / GIB, 1)
    except RuntimeError:
        pass
    return device


def _torch_build(torch: Any) -> str:
    if torch.version.cuda:
        return f"CUDA {torch.version.cuda}"
    if getattr(torch.version, "hip", None):
        return f"ROCm {torch.version.hip}"
    return "CPU"
