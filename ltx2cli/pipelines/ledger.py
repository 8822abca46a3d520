"""The model ledger: what is resident when.

A stage asks the ledger for a component (`get`) and says when it is done (`free`); the ledger
loads it from the job's files with the run's device, dtype, quantization and compat switches,
and reports every load and free. The pipelines free in the reference's order (pipelines.md
§12.2): the text encoder is gone before the connectors load, the VAE encoder before the
transformer, each stage's transformer before the next component.

Offload modes (`Runtime.offload`):
- `none`: components load straight onto the compute device and are dropped when freed;
- `block`: as `none`, except that the transformer's blocks stay in host memory and stream to
  the device one at a time with one prefetched (`offload.BlockStreamer`);
- `model`: components load into host memory and move to the device only while a stage uses
  them; freeing moves them back to the host, where a later stage finds them again without
  re-reading the file (the VAE encoder serves both stages, the distilled transformer too).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ltx2cli.compat import Compat
from ltx2cli.pipelines.events import Event, Reporter, silent
from ltx2cli.pipelines.files import ModelFiles, ResolvedLora
from ltx2cli.pipelines.runtime import Runtime, quiet_third_party

logger = logging.getLogger(__name__)

HOST = torch.device("cpu")
TEXT_ENCODER = "text_encoder"
UPSAMPLER = "upsampler"
#: Components read from the main checkpoint.
CHECKPOINT_COMPONENTS = (
    "transformer",
    "text_projection",
    "video_connector",
    "audio_connector",
    "video_encoder",
    "video_decoder",
    "audio_encoder",
    "audio_decoder",
    "vocoder",
)


# Freeing a component at least this large also runs the cycle collector, so that weights held
# in reference cycles go now rather than at some later collection.
COLLECT_BYTES = 64 * 2**20


@dataclass
class _Entry:
    key: tuple[Any, ...]
    module: Any  # nn.Module or GemmaTextEncoder
    on_device: bool
    nbytes: int


class ModelLedger:
    def __init__(
        self,
        files: ModelFiles,
        runtime: Runtime,
        compat: Compat,
        report: Reporter = silent,
    ) -> None:
        self.files, self.runtime, self.compat, self.report = files, runtime, compat, report
        self._entries: dict[str, _Entry] = {}
        self.loads: list[str] = []  # every load in order (what the tests and timings read)

    # -- access ---------------------------------------------------------------------------------
    def get(self, component: str, loras: Sequence[ResolvedLora] = ()) -> Any:
        """The component on the compute device, loaded (with `loras` fused) if needed."""
        key = (component, tuple((lora.path, lora.strength) for lora in loras))
        entry = self._entries.get(component)
        if entry is not None and entry.key != key:
            self._drop(component)
            entry = None
        if entry is None:
            entry = self._load(component, key, loras)
        if not entry.on_device:
            _move(entry.module, self.runtime.device)
            entry.on_device = True
        return entry.module

    def free(self, *components: str) -> None:
        """Done with `components` for now: dropped, or back to the host with offload `model`."""
        for component in components:
            entry = self._entries.get(component)
            if entry is None:
                continue
            if self.runtime.offload == "model" and self.runtime.device != HOST:
                _move(entry.module, HOST)
                entry.on_device = False
                _release_device_cache(self.runtime.device)
            elif self.runtime.offload != "model":
                self._drop(component)

    def close(self) -> None:
        for component in list(self._entries):
            self._drop(component)

    @property
    def resident(self) -> list[str]:
        return list(self._entries)

    # -- loading --------------------------------------------------------------------------------
    def _load(self, component: str, key: tuple[Any, ...], loras: Sequence[ResolvedLora]) -> _Entry:
        start = time.perf_counter()
        streamed = component == "transformer" and self.runtime.offload == "block"
        host_first = self.runtime.offload == "model" or streamed
        target = HOST if host_first else self.runtime.device
        module = self._build(component, loras, target)
        if streamed:
            from ltx2cli.pipelines.offload import BlockStreamer

            module.block_streamer = BlockStreamer(module, self.runtime.device)
            target = self.runtime.device  # what is not streamed is on the device now
        seconds = time.perf_counter() - start
        nbytes = _module_bytes(module)
        self.loads.append(component)
        self.report(Event("load", component, detail={"bytes": nbytes, "seconds": seconds}))
        logger.debug("loaded %s (%d bytes) in %.2f s", component, nbytes, seconds)
        entry = _Entry(key, module, on_device=target == self.runtime.device, nbytes=nbytes)
        self._entries[component] = entry
        return entry

    def _build(self, component: str, loras: Sequence[ResolvedLora], device: torch.device) -> Any:
        from ltx2cli.models.loading import load_component

        rt = self.runtime
        if component == TEXT_ENCODER:
            from ltx2cli.models.text_encoder import GemmaTextEncoder

            quiet_third_party()
            return GemmaTextEncoder.from_pretrained(
                self.files.text_encoder, dtype=rt.dtype, device=device
            )
        if component == UPSAMPLER:
            if self.files.upsampler is None:
                raise ValueError("this pipeline has no upsampler file")
            return load_component(self.files.upsampler, "upsampler", dtype=rt.dtype, device=device)
        if component not in CHECKPOINT_COMPONENTS:
            raise ValueError(f"unknown component {component!r}")
        options: dict[str, Any] = {}
        if component == "transformer":
            options = {
                "quantization": rt.quantization,
                "loras": [(lora.path, lora.strength) for lora in loras],
                "use_lora_alpha": self.compat.lora_alpha,
                "av_adaln": self.compat.av_adaln,
            }
        module = load_component(
            self.files.checkpoint, component, dtype=rt.dtype, device=device, **options
        )
        if component == "transformer" and rt.compile:
            for i, block in enumerate(module.transformer_blocks):
                module.transformer_blocks[i] = torch.compile(block)
        return module

    def _drop(self, component: str) -> None:
        entry = self._entries.pop(component)
        if entry.nbytes >= COLLECT_BYTES:  # a full collection costs ~0.2 s once transformers is in
            del entry
            gc.collect()
        _release_device_cache(self.runtime.device)
        self.report(Event("free", component))


def _module_of(obj: Any) -> nn.Module:
    return obj.model if hasattr(obj, "tokenizer") else obj


def _move(obj: Any, device: torch.device) -> None:
    _module_of(obj).to(device)


def _module_bytes(obj: Any) -> int:
    module = _module_of(obj)
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _release_device_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
