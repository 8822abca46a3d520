"""Where and how a pipeline computes: device, dtype, quantization, offload, compile."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ltx2cli.config.generation import GenerationSettings
from ltx2cli.errors import UsageError

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype
    quantization: str | None = None  # None, "fp8-cast" or "fp8-scaled-mm"
    offload: str = "none"
    compile: bool = False


def pick_device(name: str) -> torch.device:
    """`models.device`'s choice; under `accelerate launch` an automatic CUDA device is the
    process's own GPU."""
    from ltx2cli.models.device import resolve_device
    from ltx2cli.pipelines.distributed import is_distributed, local_rank

    device = resolve_device(name)
    if name == "auto" and device.type == "cuda" and is_distributed():
        return torch.device("cuda", local_rank())
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
