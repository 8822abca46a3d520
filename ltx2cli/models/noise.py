"""Where noise is drawn: one rule for every model and sampling loop.

Noise is drawn on the CPU from a `torch.Generator` that the pipeline owns, directly in the
target dtype (the reference draws `randn` in bf16 for bf16 latents, a different stream from
float32 `randn` rounded to bf16), then moved to the compute device. So a seed gives the same
noise on CPU, CUDA and MPS. No loop or model seeds or creates a generator of its own: a sampler
with noise streams of its own (the res_2s SDE noise, `diffusion.steppers.Res2sNoise`) is handed
its generators by the pipeline too.
"""

from __future__ import annotations

import torch


def make_generator(seed: int) -> torch.Generator:
    """The pipeline's CPU generator (negative seeds are valid, as in the reference)."""
    return torch.Generator(device="cpu").manual_seed(seed)


def gaussian(
    shape: tuple[int, ...] | torch.Size,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Standard normal noise drawn on the CPU directly in `dtype`, then moved to `device`."""
    noise = torch.randn(tuple(shape), generator=generator, dtype=dtype, device="cpu")
    return noise.to(device=device)


def require_generator(generator: torch.Generator | None, what: str) -> torch.Generator:
    """The generator a noise-drawing model was given; drawing from global RNG state is refused."""
    if generator is None:
        raise ValueError(f"{what} draws noise: pass the pipeline's `generator`")
    return generator
