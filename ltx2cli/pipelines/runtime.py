"""Where and how a pipeline computes: device, dtype, quantization, offload, compile."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ltx2cli.config.generation import GenerationSettings
from ltx2cli.errors import DeviceError, UsageError

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype
    quantization: str | None = None  # None, "fp8-cast" or "fp8-scaled-mm"
    offload: str = "none"
    compile: bool = False


def pick_device(name: str) -> torch.device:
    """`auto` is CUDA, then Apple MPS, then the CPU; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            from ltx2cli.pipelines.distributed import is_distributed, local_rank

            # Under `accelerate launch` each process takes its own GPU.
            return torch.device("cuda", local_rank() if is_distributed() else 0)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {name}: no CUDA device here", "use --device cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise DeviceError(f"--device {name}: this machine has {count} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"--device {name}: Apple MPS is not available", "use --device cpu")
    return device


#: Offload modes the ledger implements.
OFFLOADS = ("none", "model", "block")


def make_runtime(settings: GenerationSettings, compile: bool = False) -> Runtime:
    if settings.offload not in OFFLOADS:
        raise UsageError(
            f"--offload {settings.offload} is not available in this version",
            "use --offload block (transformer blocks stream to the device) or model",
        )
    quantization = None if settings.quantization == "none" else settings.quantization
    return Runtime(
        device=pick_device(settings.device),
        dtype=DTYPES[settings.dtype],
        quantization=quantization,
        offload=settings.offload,
        compile=compile,
    )


def quiet_third_party() -> None:
    """transformers and huggingface_hub draw their own progress bars and warnings on stderr;
    library code must not print, and the CLI reports progress itself."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    disable_progress_bars()
