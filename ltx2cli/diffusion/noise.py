"""Seeded noise and the flow-matching noiser.

- Noise is always drawn on the CPU from a seeded `torch.Generator`, in the latent's own dtype
  (the reference draws `randn` directly in bf16 for bf16 latents, which is a different stream
  from float32 `randn` rounded to bf16), or in float64 for the res_2s SDE noise, and moved
  afterwards. So a seed gives the same latents on CPU, CUDA and MPS, and on the CPU the exact
  noise of the reference. (The reference draws on the CUDA generator on GPUs; bit-equality
  with that stream is not a goal, determinism across devices is.)
- `noise_state` is the current reference's noiser: x = lerp(clean, lerp(latent, ε, s), mask)
  with s the noise scale, computed in float32. Target tokens (latent == clean) get
  (1−m·s)·clean + m·s·ε, i.e. a flow-matching state at σ = m·s; appended conditioning tokens
  hold zeros in `latent`, so with partial strength they get (1−m)·clean + m·s·ε.
- One generator serves a whole run: video is noised before audio, and stage 2 continues the
  same stream (no reseeding).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ltx2cli.diffusion.state import AV, LatentState
from ltx2cli.models.noise import gaussian, make_generator

__all__ = ["gaussian", "make_generator", "noise_state", "noise_states", "standardized_noise"]


def noise_state(
    state: LatentState, generator: torch.Generator, noise_scale: float = 1.0
) -> LatentState:
    """Mix one modality's state with fresh noise, respecting its per-token denoise mask."""
    noise = gaussian(state.latent.shape, generator, state.latent.dtype, state.latent.device)
    noisy = torch.lerp(state.latent.float(), noise.float(), noise_scale)
    mixed = torch.lerp(state.clean_latent.float(), noisy, state.denoise_mask.float())
    return replace(state, latent=mixed.to(state.latent.dtype))


def noise_states(
    states: AV[LatentState], generator: torch.Generator, noise_scale: float = 1.0
) -> AV[LatentState]:
    """Noise video then audio from the same generator (the reference's draw order)."""
    return states.map(lambda _, state: noise_state(state, generator, noise_scale))


def standardized_noise(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """res_2s SDE noise: float64 Gaussian standardized over the whole tensor, then again over
    its last two dims (per batch item for `[B, N, C]` tokens). float32 on MPS (no float64)."""
    noise = torch.randn(tuple(like.shape), generator=generator, dtype=torch.float64)
    noise = (noise - noise.mean()) / noise.std()
    noise = (noise - noise.mean(dim=(-2, -1), keepdim=True)) / noise.std(dim=(-2, -1), keepdim=True)
    dtype = torch.float32 if like.device.type == "mps" else torch.float64
    return noise.to(device=like.device, dtype=dtype)
