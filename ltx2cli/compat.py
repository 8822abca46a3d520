"""Which release of the reference pipelines to reproduce. Torch-free.

One setting, passed down from the pipelines to every place where the official 1.0.0 and the
current (1.2.0) releases compute differently. `current` is the default; `1.0.0` reproduces the
1.0.0 pipelines bit for bit. A switch lives here, never as a loose keyword in a lower layer.

- `av_adaln`: the cross-modal AdaLN of the transformer. 1.0.0 derives the cross-attention
  scale/shift from the other stream's sigma; the current release from the scaled timestep.
- `lora_alpha`: kohya/ComfyUI `.alpha` tensors scale a LoRA by alpha/rank. 1.0.0 ignores them.
- `conditioning_writes_latent`: 1.0.0 conditioning items write their clean tokens into
  `latent` as well as `clean_latent`; the current release writes zeros into `latent`.
- `keyframe_pixel_frames`: the pixel frames a single-image keyframe spans in its positions
  (1.0.0: eight, as if it were a full latent frame; current: one).
- `lerp_noiser`: the current noiser lerps the latent toward noise by the noise scale, then
  from `clean_latent` by the mask; 1.0.0 mixes noise·m + latent·(1 − m) with m = mask·scale.
- `bf16_video_positions`: 1.0.0 rounds video target positions to bfloat16.
- `float32_guidance`: the current multimodal guider combines passes in float32.
- `stage1_audio_decode`: the current two-stage, HQ and a2v pipelines decode the stage-1 audio
  latent (the stage-2 audio result is discarded); 1.0.0 decodes the final audio.
"""

from __future__ import annotations

from dataclasses import dataclass

from ltx2cli.errors import UsageError


@dataclass(frozen=True)
class Compat:
    name: str
    av_adaln: str
    lora_alpha: bool
    conditioning_writes_latent: bool
    keyframe_pixel_frames: int
    lerp_noiser: bool
    bf16_video_positions: bool
    float32_guidance: bool
    stage1_audio_decode: bool


CURRENT = Compat(
    name="current",
    av_adaln="current",
    lora_alpha=True,
    conditioning_writes_latent=False,
    keyframe_pixel_frames=1,
    lerp_noiser=True,
    bf16_video_positions=False,
    float32_guidance=True,
    stage1_audio_decode=True,
)
V1_0_0 = Compat(
    name="1.0.0",
    av_adaln="1.0.0",
    lora_alpha=False,
    conditioning_writes_latent=True,
    keyframe_pixel_frames=8,
    lerp_noiser=False,
    bf16_video_positions=True,
    float32_guidance=False,
    stage1_audio_decode=False,
)
COMPATS = {c.name: c for c in (CURRENT, V1_0_0)}


def get_compat(name: str) -> Compat:
    """The record for a `--compat` value ("current" or "1.0.0")."""
    try:
        return COMPATS[name]
    except KeyError:
        raise UsageError(f"unknown compat '{name}'", f"use one of: {', '.join(COMPATS)}") from None
