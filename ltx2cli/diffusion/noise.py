"""The flow-matching noiser and the res_2s SDE noise, drawn by the one rule of `models.noise`.

- Every draw comes from a `torch.Generator` the pipeline owns, on the CPU, in the latent's own
  dtype (float64 for the res_2s SDE noise), then moved to the latent's device. Nothing here
  seeds or creates a generator.
- `noise_state` mixes a state with noise according to its per-token denoise mask m and the
  noise scale s. The current reference lerps: x = lerp(clean, lerp(latent, ε, s), m), in
  float32. 1.0.0 mixes x = ε·m·s + latent·(1 − m·s) (float32 mask, so float32 arithmetic).
  Both give (1 − m·s)·clean + m·s·ε where latent == clean; they differ on appended tokens with
  partial strength, which hold zeros in `latent` under the current release, and (1 − m)·clean
  + m·s·ε there, against clean·(1 − m·s) + ε·m·s in 1.0.0 (whose items write clean values
  into `latent`).
- One generator serves a whole run: video is noised before audio, and stage 2 continues the
  same stream (no reseeding).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ltx2cli.compat import CURRENT, Compat
from ltx2cli.diffusion.state import AV, LatentState
from ltx2cli.models.noise import gaussian, make_generator

__all__ = [
    "gaussian",
    "high_precision",
    "make_generator",
    "noise_state",
    "noise_states",
    "standardized_noise",
]


def noise_state(
    state: LatentState,
    generator: torch.Generator,
    noise_scale: float = 1.0,
    compat: Compat = CURRENT,
) -> LatentState:
    """Mix one modality's state with fresh noise, respecting its per-token denoise mask."""
    noise = gaussian(state.latent.shape, generator, state.latent.dtype, state.latent.device)
    if compat.lerp_noiser:
        noisy = torch.lerp(state.latent.float(), noise.float(), noise_scale)
        mixed = torch.lerp(state.clean_latent.float(), noisy, state.denoise_mask.float())
    else:
        scaled = state.denoise_mask.float() * noise_scale
        mixed = noise * scaled + state.latent * (1 - scaled)
    return replace(state, latent=mixed.to(state.latent.dtype))


def noise_states(
    states: AV[LatentState],
    generator: torch.Generator,
    noise_scale: float = 1.0,
    compat: Compat = CURRENT,
) -> AV[LatentState]:
    """Noise video then audio from the same generator (the reference's draw order)."""
    return states.map(lambda _, state: noise_state(state, generator, noise_scale, compat))


def high_precision(device: torch.device | str) -> torch.dtype:
    """The res_2s sampler's working dtype on `device`: float64, float32 on MPS (no float64)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def standardized_noise(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """res_2s SDE noise: float64 Gaussian standardized over the whole tensor, then again over
    its last two dims (per batch item for `[B, N, C]` tokens), moved to `like`'s device in
    its `high_precision` dtype."""
    noise = gaussian(like.shape, generator, torch.float64)
    noise = (noise - noise.mean()) / noise.std()
    noise = (noise - noise.mean(dim=(-2, -1), keepdim=True)) / noise.std(dim=(-2, -1), keepdim=True)
    return noise.to(device=like.device, dtype=high_precision(like.device))
