"""Batches under `accelerate launch`: items split across processes, results gathered on the
main one. Outside a multi-process launch (`WORLD_SIZE` unset or 1) every helper is the
identity.

Each process takes every n-th item (by position) and runs it on its own device
(`cuda:LOCAL_RANK` on GPUs); `gather` collects one object per process on the main process
with accelerate's `gather_object`.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

T = TypeVar("T")


def is_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _state() -> Any:
    import torch
    from accelerate import PartialState

    if torch.cuda.is_available():
        return PartialState()
    # CPU processes (tests, `accelerate launch --multi_gpu` on a machine without GPUs) talk
    # over gloo; without it PartialState falls back to a single process.
    return PartialState(cpu=True, backend="gloo")


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def process_index() -> int:
    return _state().process_index if is_distributed() else 0


def shard(items: list[T]) -> list[T]:
    """This process's share of `items`."""
    if not is_distributed():
        return items
    state = _state()
    return items[state.process_index :: state.num_processes]


def gather(obj: Any) -> list[Any] | None:
    """Every process's `obj` on the main process (in rank order); None elsewhere."""
    if not is_distributed():
        return [obj]
    from accelerate.utils import gather_object

    state = _state()
    everything = gather_object([obj])
    return everything if state.is_main_process else None
