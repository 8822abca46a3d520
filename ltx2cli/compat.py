"""Which release of the reference pipelines to reproduce. Torch-free.

One setting, passed down from the pipelines to every place where the official 1.0.0 and the
current (1.2.0) releases compute differently. `current` is the default; `1.0.0` reproduces the
1.0.0 pipelines bit for bit. A switch lives here, never as a loose keyword in a lower layer.

- `av_adaln`: the input of the transformer's cross-modal (A↔V) scale/shift AdaLN. 1.0.0 feeds
  the other stream's sigma (per sample); the current release feeds the stream's own per-token
  timesteps. The cross-modal gate uses the other stream's sigma in both.
- `lora_alpha`: scale a LoRA by alpha/rank when its file carries kohya/ComfyUI `.alpha`
  tensors. Both reference releases ignore `.alpha` (the official trainer saves none, so its
  LoRAs fuse identically either way); applying it is ltx2's choice for files made elsewhere,
  and `1.0.0` turns it off to match the reference bit for bit.
- `conditioning_writes_latent`: 1.0.0 conditioning items write their clean tokens into
  `latent` as well as `clean_latent` (in place and appended); the current release writes only
  `clean_latent` and puts zeros into `latent` for appended tokens.
- `keyframe_pixel_frames`: how many pixel frames the time position of a single-image keyframe
  (one latent frame) spans at frame k > 0: 1.0.0 keeps the whole latent frame's span
  [k, k + 8); the current release narrows it to [k, k + 1). At frame 0 the causal fix gives
  [0, 1) in both.
- `lerp_noiser`: the current noiser lerps the latent toward noise by the noise scale, then
  from `clean_latent` by the denoise mask; 1.0.0 mixes noise·m + latent·(1 − m) with
  m = mask·scale.
- `bf16_video_positions`: 1.0.0 casts the video target positions to the latent dtype
  (bfloat16 in every pipeline) when it builds the initial state; the current release keeps
  them float32. Positions appended by conditioning are float32 in both.
- `float32_guidance`: the current multimodal guider combines its passes in float32 and casts
  back; 1.0.0 combines them in the latent dtype.
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
