"""Tiny model files in the official layouts, and an independent PyAV reader for the outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from ltx2cli.models.tiny import (
    tiny_config,
    write_tiny_checkpoint,
    write_tiny_gemma,
    write_tiny_upsampler,
)

# The tiny transformer has two blocks; STG perturbs the last one.
TINY_STG_BLOCK = 1
LORA_RANK = 2


@dataclass(frozen=True)
class TinyModels:
    checkpoint: Path
    upsampler: Path
    distilled_lora: Path
    text_encoder: Path
    audio_rate: int  # the tiny vocoder's output rate, from its config


def write_lora(path: Path, checkpoint: Path, seed: int = 1) -> Path:
    """A rank-2 LoRA (official key style) on every q projection of the checkpoint."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    with safe_open(str(checkpoint), "pt") as f:
        names = f.keys()  # safe_open is not iterable
        for key in names:
            if key.startswith("model.diffusion_model.transformer_blocks.") and key.endswith(
                "to_q.weight"
            ):
                out_f, in_f = f.get_slice(key).get_shape()
                module = key.removeprefix("model.").removesuffix(".weight")
                tensors[f"{module}.lora_A.weight"] = torch.randn(
                    LORA_RANK, in_f, generator=generator
                ).to(torch.bfloat16)
                tensors[f"{module}.lora_B.weight"] = (
                    0.1 * torch.randn(out_f, LORA_RANK, generator=generator)
                ).to(torch.bfloat16)
    save_file(tensors, str(path))
    return path


@dataclass(frozen=True)
class Written:
    frames: np.ndarray  # (F, H, W, 3) uint8
    fps: float
    audio_rate: int | None
    audio_channels: int | None
    audio_seconds: float | None
    comment: str | None


def read_back(path: Path) -> Written:
    """Decode every frame and every audio sample of `path` with PyAV."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        fps = float(video.average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        comment = container.metadata.get("comment")
    rate = channels = seconds = None
    with av.open(str(path)) as container:
        if container.streams.audio:
            stream = container.streams.audio[0]
            rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
            samples = sum(f.samples for f in container.decode(audio=0))
            seconds = samples / rate
    return Written(frames, fps, rate, channels, seconds, comment)


def write_tiny_models(root: Path) -> TinyModels:
    checkpoint = write_tiny_checkpoint(root / "tiny-2.3.safetensors")
    return TinyModels(
        checkpoint=checkpoint,
        upsampler=write_tiny_upsampler(root / "upsampler.safetensors"),
        distilled_lora=write_lora(root / "distilled-lora.safetensors", checkpoint),
        text_encoder=write_tiny_gemma(root / "gemma"),
        audio_rate=tiny_config()["vocoder"]["bwe"]["output_sampling_rate"],
    )
