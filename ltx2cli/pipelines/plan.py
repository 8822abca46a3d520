"""The plan of a run and its estimated peak memory, from checkpoint headers and shapes only.

`make_plan` reads no tensor data. Per stage it lists the components resident on the compute
device (following the ledger's timeline), the tokens the transformer sees and the number of
transformer calls; the peak estimate is the largest stage: resident weights (their element
counts at the run's dtype; fp8-cast stores the block linears in one byte) plus activations.

Activation model (deliberately simple, documented, and on the high side): a transformer call
holds `ACTIVATION_WIDTHS` tensors of `tokens x width` per stream at once (the residual, the
normalised copy, q/k/v, the attention output and the 4x wide feed-forward hidden state), for
each batched pass; the VAE decode uses the decoder's own estimate for the (tiled) output.
With `offload=model` the host keeps every component loaded so far; otherwise the host peaks
near the largest component (safetensors' memory map is read one window at a time). With
`offload=block` the device holds the transformer's non-block weights and two blocks.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ltx2cli.compat import Compat
from ltx2cli.pipelines.files import ModelFiles
from ltx2cli.pipelines.job import Job
from ltx2cli.pipelines.ledger import CHECKPOINT_COMPONENTS
from ltx2cli.pipelines.runtime import Runtime

ACTIVATION_WIDTHS = 12
TEXT_TOKENS = 1024  # Gemma pads every prompt to 1024 tokens
DISTILLED_STEPS = (8, 3)
RES2S_EXTRA = 1  # one final evaluation after the full steps


@dataclass(frozen=True)
class StagePlan:
    name: str
    resident: tuple[str, ...]
    video_tokens: int = 0
    audio_tokens: int = 0
    text_tokens: int = 0
    transformer_calls: int = 0
    device_bytes: int = 0


@dataclass
class Plan:
    pipeline: str
    compat: str
    device: str
    dtype: str
    offload: str
    quantization: str
    files: dict[str, dict[str, Any]]
    stages: list[StagePlan] = field(default_factory=list)
    peak_device_bytes: int = 0
    peak_host_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _element_size(dtype: Any) -> int:
    return dtype.itemsize if hasattr(dtype, "itemsize") else 2


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def component_bytes(files: ModelFiles, runtime: Runtime) -> dict[str, int]:
    """Bytes each component occupies once loaded at the run's dtype (and quantization)."""
    from ltx2cli.models.checkpoint import DTYPE_SIZES, read_checkpoint
    from ltx2cli.models.fp8 import is_fp8_cast_layer
    from ltx2cli.models.loading import component_keys

    element = _element_size(runtime.dtype)
    info = read_checkpoint(files.checkpoint)
    out: dict[str, int] = {}
    for component in CHECKPOINT_COMPONENTS:
        total = 0
        blocks: dict[str, int] = {}
        for key, raw in component_keys(info, component).items():
            tensor = info.tensors[raw]
            layer = key.rpartition(".")[0]
            quantized = (
                component == "transformer"
                and runtime.quantization is not None
                and is_fp8_cast_layer(layer)
            )
            floating = tensor.dtype.startswith(("F", "BF"))
            size = 1 if quantized else element if floating else DTYPE_SIZES[tensor.dtype]
            total += tensor.numel * size
            if key.startswith("transformer_blocks."):
                index = key.split(".")[1]
                blocks[index] = blocks.get(index, 0) + tensor.numel * size
        out[component] = total
        if component == "transformer" and runtime.offload == "block" and blocks:
            # Streamed: the non-block weights plus the running and the prefetched block.
            streamed = 2 * max(blocks.values())
            out["transformer"] = total - sum(blocks.values()) + min(streamed, sum(blocks.values()))
            out["transformer_host"] = total
    if files.upsampler is not None:
        up = read_checkpoint(files.upsampler)
        out["upsampler"] = sum(t.numel for t in up.tensors.values()) * element
    gemma = files.text_encoder.rglob("*.safetensors") if files.text_encoder.is_dir() else ()
    numel = sum(t.numel for p in gemma for t in read_checkpoint(p).tensors.values())
    out["text_encoder"] = numel * element
    return out


def _transformer_calls(job: Job, stage: int) -> int:
    """Forward passes of one stage: evaluations x passes per evaluation."""
    from ltx2cli.diffusion.denoisers import plan_passes
    from ltx2cli.diffusion.guidance import GuiderParams
    from ltx2cli.pipelines.stages import guider

    s = job.settings
    pipeline = s.pipeline
    if pipeline == "distilled":
        return DISTILLED_STEPS[stage - 1]
    if stage == 2:
        steps, passes = DISTILLED_STEPS[1], 1
    else:
        steps = s.steps
        audio = guider(s, "audio") if s.audio else GuiderParams()
        passes = len(plan_passes(guider(s, "video"), audio))
    evaluations = 2 * steps + RES2S_EXTRA if pipeline == "two-stage-hq" else steps
    return evaluations * passes


def make_plan(job: Job, files: ModelFiles, runtime: Runtime, compat: Compat) -> Plan:
    """The stages, files, tokens, calls and peak memory of `job` (no weights are read)."""
    from ltx2cli.diffusion.patchify import audio_latent_frames_for_video, video_latent_shape
    from ltx2cli.models.checkpoint import read_checkpoint
    from ltx2cli.models.video_vae import VideoVAEConfig, estimate_decode_bytes
    from ltx2cli.pipelines.stages import TILE_ABOVE_FRAMES, TILE_ABOVE_PIXELS

    s = job.settings
    config = read_checkpoint(files.checkpoint).require_config()
    t = config["transformer"]
    video_width = t.get("num_attention_heads", 32) * t.get("attention_head_dim", 128)
    audio_width = t.get("audio_num_attention_heads", 32) * t.get("audio_attention_head_dim", 64)
    channels = int(config["vae"].get("latent_channels", 128))
    element = _element_size(runtime.dtype)
    sizes = component_bytes(files, runtime)

    def shape(divisor: int):
        h, w = s.height // divisor, s.width // divisor
        return video_latent_shape(s.num_frames, h, w, channels=channels)

    audio_tokens = audio_latent_frames_for_video(s.num_frames, s.frame_rate) if s.audio else 0
    keyframes = sum(1 for image in job.images if image.frame > 0)  # appended, not replaced

    def diffusion(name: str, divisor: int, stage: int, extra: tuple[str, ...] = ()) -> StagePlan:
        video = shape(divisor).token_count
        image_tokens = keyframes * shape(divisor).tokens_per_frame
        calls = _transformer_calls(job, stage)
        activation = (
            ACTIVATION_WIDTHS
            * element
            * ((video + image_tokens) * video_width + audio_tokens * audio_width)
        )
        resident = ("transformer", *extra)
        weights = sum(sizes.get(c, 0) for c in resident)
        video += image_tokens
        return StagePlan(
            name, resident, video, audio_tokens, TEXT_TOKENS, calls, weights + activation
        )

    def weights_only(name: str, resident: tuple[str, ...], activation: int = 0) -> StagePlan:
        weights = sum(sizes.get(c, 0) for c in resident)
        return StagePlan(name, resident, device_bytes=weights + activation)

    frames, height, width = s.num_frames, s.height, s.width
    tiled = max(height, width) > TILE_ABOVE_PIXELS or frames > TILE_ABOVE_FRAMES
    if tiled:  # one tile at a time
        frames = min(frames, TILE_ABOVE_FRAMES)
        height, width = min(height, TILE_ABOVE_PIXELS), min(width, TILE_ABOVE_PIXELS)
    vae = VideoVAEConfig.from_checkpoint_config(config)
    decode_activation = estimate_decode_bytes(vae, frames, height, width, element_size=element)
    text_activation = TEXT_TOKENS * element * ACTIVATION_WIDTHS * 4096

    stages = [weights_only("prompt", ("text_encoder",), text_activation)]
    keep_encoder = ("video_encoder",) if s.pipeline == "distilled" else ()
    if s.pipeline == "one-stage":
        stages.append(diffusion("stage 1", 1, 1))
    else:
        stages.append(diffusion("stage 1", 2, 1, keep_encoder))
        kept = ("transformer",) if keep_encoder else ()
        stages.append(weights_only("upsample", ("video_encoder", "upsampler", *kept)))
        stages.append(diffusion("stage 2", 1, 2))
    stages.append(weights_only("decode", ("video_decoder",), decode_activation))

    peak_device = max(stage.device_bytes for stage in stages)
    if runtime.offload == "model" and runtime.device.type != "cpu":
        peak_host = sum(v for k, v in sizes.items() if k != "transformer_host")
    else:
        peak_host = max(sizes.values())
    if runtime.device.type == "cpu":
        peak_host = max(peak_host, peak_device)
    file_rows = {
        role: {"path": str(path), "bytes": _size(path)} for role, path in files.all_files().items()
    }
    return Plan(
        pipeline=s.pipeline,
        compat=compat.name,
        device=str(runtime.device),
        dtype=s.dtype,
        offload=runtime.offload,
        quantization=s.quantization,
        files=file_rows,
        stages=stages,
        peak_device_bytes=int(peak_device),
        peak_host_bytes=int(peak_host),
    )


def available_memory(device: Any) -> int | None:
    """Free bytes on the compute device (host RAM for the CPU), or None when unknown."""
    import torch

    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as handle:
                for line in handle:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def check_fits(job: Job, files: ModelFiles, runtime: Runtime, compat: Compat) -> Plan:
    """The plan, or a one-line error when its peak exceeds the free memory, naming the offload
    mode or quantization that would fit (or a smaller size)."""
    from dataclasses import replace

    from ltx2cli.errors import UsageError

    plan = make_plan(job, files, runtime, compat)
    free = available_memory(runtime.device)
    if free is None or plan.peak_device_bytes <= free:
        return plan
    need = _gib(plan.peak_device_bytes)
    candidates = [(o, runtime.quantization) for o in ("model", "block")]
    candidates += [(o, "fp8-cast") for o in ("model", "block")]
    for offload, quantization in candidates:
        other = replace(runtime, offload=offload, quantization=quantization)
        if make_plan(job, files, other, compat).peak_device_bytes <= free:
            flags = f"--offload {offload}"
            flags += f" --quantization {quantization}" if quantization else ""
            raise UsageError(
                f"this run needs about {need} on {runtime.device}, {_gib(free)} is free",
                f"it fits with {flags}",
            )
    scale = math.sqrt(free / plan.peak_device_bytes)
    height = max(64, int(job.settings.height * scale) // 64 * 64)
    width = max(64, int(job.settings.width * scale) // 64 * 64)
    raise UsageError(
        f"this run needs about {need} on {runtime.device}, {_gib(free)} is free",
        f"try a smaller size, e.g. --height {height} --width {width}, or fewer --num-frames",
    )


def _gib(n: int) -> str:
    """Bytes in GiB, or MiB below one GiB."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def describe(plan: Plan) -> str:
    """The plan as lines for a terminal."""
    lines = [
        f"pipeline {plan.pipeline} (compat {plan.compat}) on {plan.device}, {plan.dtype}, "
        f"offload {plan.offload}, quantization {plan.quantization}",
        "files:",
        *(f"  {k}: {v['path']} ({v['bytes'] / 2**20:.1f} MiB)" for k, v in plan.files.items()),
        "stages:",
    ]
    for stage in plan.stages:
        detail = f"  {stage.name}: {', '.join(stage.resident)}"
        if stage.transformer_calls:
            detail += (
                f"; {stage.transformer_calls} transformer calls on {stage.video_tokens} video + "
                f"{stage.audio_tokens} audio tokens ({stage.text_tokens} text)"
            )
        lines.append(detail + f"; ~{_gib(stage.device_bytes)}")
    lines.append(
        f"estimated peak: {_gib(plan.peak_device_bytes)} device, {_gib(plan.peak_host_bytes)} host"
    )
    return os.linesep.join(lines)
