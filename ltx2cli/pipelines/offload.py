"""`--offload block`: the transformer's blocks live in host memory and stream to the device.

The non-block weights (projections, AdaLN, output heads) stay on the compute device. Each
block's weights are kept as host tensors (pinned on CUDA, so copies overlap compute) and its
parameters hold empty stand-ins until the block runs: a forward pre-hook puts block i on
the device and starts copying block i+1 (one block prefetched ahead), a forward hook drops
block i's device copy again. So at most two blocks are resident on the device during a forward,
whatever the model's depth.
"""

from __future__ import annotations

import torch
from torch import nn

_EMPTY = torch.empty(0)


class BlockStreamer:
    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.device = device
        self.blocks: nn.ModuleList = model.transformer_blocks
        pin = device.type == "cuda" and torch.cuda.is_available()
        # 1. Everything outside the blocks goes to the device once.
        for name, module in model.named_children():
            if name != "transformer_blocks":
                module.to(device)
        for tensor in [*model.parameters(recurse=False), *model.buffers(recurse=False)]:
            tensor.data = tensor.data.to(device)
        # 2. Host copies of every block; parameters become empty stand-ins.
        self.host: list[dict[str, torch.Tensor]] = []
        for block in self.blocks:
            tensors = {}
            for name, tensor in _tensors(block):
                host = tensor.data.to("cpu")
                tensors[name] = host.pin_memory() if pin else host
                tensor.data = _EMPTY
            self.host.append(tensors)
        self.resident: dict[int, dict[str, torch.Tensor]] = {}
        self.handles = []
        for i, block in enumerate(self.blocks):
            self.handles.append(block.register_forward_pre_hook(self._before(i)))
            self.handles.append(block.register_forward_hook(self._after(i)))

    def _fetch(self, i: int) -> None:
        if i not in self.resident and i < len(self.blocks):
            self.resident[i] = {
                name: t.to(self.device, non_blocking=True) for name, t in self.host[i].items()
            }

    def _before(self, i: int):
        def hook(block: nn.Module, _args) -> None:
            self._fetch(i)
            for name, tensor in _tensors(block):
                tensor.data = self.resident[i][name]
            self._fetch(i + 1)  # prefetch the next block while this one computes

        return hook

    def _after(self, i: int):
        def hook(block: nn.Module, _args, _output) -> None:
            for _, tensor in _tensors(block):
                tensor.data = _EMPTY
            self.resident.pop(i, None)

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        self.resident.clear()


def _tensors(module: nn.Module):
    """(name, tensor) of a module's parameters and buffers."""
    yield from module.named_parameters()
    yield from module.named_buffers()


def resident_bytes(model: nn.Module, device: torch.device) -> int:
    """Bytes of the model's parameters and buffers that are on `device` right now."""
    return sum(
        t.numel() * t.element_size()
        for _, t in _tensors(model)
        if t.device.type == device.type and t.numel()
    )
