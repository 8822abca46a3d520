"""The patchified latent state the sampling loops work on, and the grids that build it.

- `LatentState` holds one modality's tokens: the noisy `latent`, the `clean_latent` it is pulled
  toward where conditioned, a per-token `denoise_mask` (1 = generate, 0 = keep clean), RoPE
  `positions`, an optional soft self-attention mask, and `target_tokens`: how many leading tokens
  are the generated target. Conditioning items may append tokens after them; `clear_conditioning`
  drops those again.
- `VideoGrid` / `AudioGrid` know the target shape (and fps) and build initial states, positions
  and the dense latent back. `VideoGrid.compat` is the reference release whose behaviour the
  grid and the conditioning items applied with it follow (see `ltx2cli.compat`).
- `AV` pairs a value per modality (states, predictions, contexts); either side may be absent.
- Flow matching: x_σ = (1−σ)·x0 + σ·ε, the model predicts v = ε − x0, so x0 = x − σ·v with
  the per-token σ (`timesteps` = denoise_mask·σ).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

import torch

from ltx2cli.compat import CURRENT, Compat
from ltx2cli.diffusion.patchify import (
    VIDEO_SCALE_FACTORS,
    AudioLatentShape,
    ScaleFactors,
    VideoLatentShape,
    audio_positions,
    patchify_audio,
    patchify_video,
    unpatchify_audio,
    unpatchify_video,
    video_positions,
)

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class AV(Generic[T]):
    """One value per modality; `None` where the modality is absent."""

    video: T | None = None
    audio: T | None = None

    def items(self) -> Iterator[tuple[str, T]]:
        """The present modalities as (name, value), video first (the reference's draw order)."""
        for name in ("video", "audio"):
            value = getattr(self, name)
            if value is not None:
                yield name, value

    def map(self, fn: Callable[[str, T], U | None]) -> AV[U]:
        """Apply `fn(name, value)` to each present modality."""
        return AV(**{name: fn(name, value) for name, value in self.items()})


@dataclass(frozen=True)
class LatentState:
    """One modality's patchified state. Tensors: latent/clean_latent `[B, N, C]`,
    denoise_mask `[B, N, 1]` float32, positions `[B, axes, N, 2]`, attention_mask `[B, N, N]`.

    `frozen` marks a stream that is pure conditioning (audio in audio-to-video): its model
    sigma is reported as 0, as the current reference does.
    """

    latent: torch.Tensor
    clean_latent: torch.Tensor
    denoise_mask: torch.Tensor
    positions: torch.Tensor
    target_tokens: int
    attention_mask: torch.Tensor | None = None
    frozen: bool = False

    def __post_init__(self) -> None:
        b, n = self.latent.shape[:2]
        if self.clean_latent.shape != self.latent.shape:
            clean, latent = tuple(self.clean_latent.shape), tuple(self.latent.shape)
            raise ValueError(f"clean_latent {clean} != latent {latent}")
        if tuple(self.denoise_mask.shape) != (b, n, 1):
            raise ValueError(f"denoise_mask {tuple(self.denoise_mask.shape)} != {(b, n, 1)}")
        if self.positions.shape[2] != n:
            raise ValueError(f"positions cover {self.positions.shape[2]} tokens, latent has {n}")
        if not 0 < self.target_tokens <= n:
            raise ValueError(f"target_tokens {self.target_tokens} outside 1..{n}")
        if self.attention_mask is not None and tuple(self.attention_mask.shape) != (b, n, n):
            raise ValueError(f"attention_mask {tuple(self.attention_mask.shape)} != {(b, n, n)}")

    @property
    def token_count(self) -> int:
        return self.latent.shape[1]

    def with_latent(self, latent: torch.Tensor) -> LatentState:
        return replace(self, latent=latent.to(self.latent.dtype))

    def timesteps(self, sigma: float | torch.Tensor) -> torch.Tensor:
        """Per-token noise level `[B, N, 1]` = denoise_mask · σ (0 on clean conditioning)."""
        return timesteps_from_mask(self.denoise_mask, sigma)

    def post_process(self, denoised: torch.Tensor) -> torch.Tensor:
        """Re-impose the conditioning on an x0 estimate: x0·m + clean·(1−m), in x0's dtype.

        Promotion as in the reference: x0·m runs in the wider of x0's dtype and the float32
        mask, clean·(1−m) always in float32 (so a float64 res_2s update rounds that term to
        float32 before the sum).
        """
        m = self.denoise_mask
        return (denoised * m + self.clean_latent.float() * (1 - m)).to(denoised.dtype)


def timesteps_from_mask(mask: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """mask · σ; a `[B]` σ is aligned with the batch dimension."""
    if isinstance(sigma, torch.Tensor) and sigma.dim() == 1:
        sigma = sigma.view(-1, *([1] * (mask.dim() - 1)))
    return mask * sigma


def clear_conditioning(state: LatentState) -> LatentState:
    """Drop appended conditioning tokens, reset the mask to ones and drop the attention mask."""
    n = state.target_tokens
    return LatentState(
        latent=state.latent[:, :n],
        clean_latent=state.clean_latent[:, :n],
        denoise_mask=torch.ones_like(state.denoise_mask[:, :n]),
        positions=state.positions[:, :, :n],
        target_tokens=n,
        frozen=state.frozen,
    )


def freeze(state: LatentState) -> LatentState:
    """Make every token clean conditioning (denoise mask 0, model sigma 0)."""
    return replace(state, denoise_mask=torch.zeros_like(state.denoise_mask), frozen=True)


def to_velocity(x: torch.Tensor, sigma: float | torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """v = (x − x0)/σ, computed in float32 and returned in x's dtype."""
    scalar = not isinstance(sigma, torch.Tensor) or sigma.numel() == 1
    if scalar and float(sigma) == 0:
        raise ValueError("velocity is undefined at sigma 0")
    sigma = sigma.float() if isinstance(sigma, torch.Tensor) else float(sigma)
    return ((x.float() - x0.float()) / sigma).to(x.dtype)


def to_denoised(x: torch.Tensor, v: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """x0 = x − σ·v in float32 (σ may be per token), returned in x's dtype."""
    sigma = sigma.float() if isinstance(sigma, torch.Tensor) else float(sigma)
    return (x.float() - v.float() * sigma).to(x.dtype)


def _dense(
    size: tuple[int, ...],
    initial_latent: torch.Tensor | None,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> torch.Tensor:
    """`initial_latent` checked against the grid's `size`, or zeros of that size."""
    if initial_latent is None:
        return torch.zeros(size, dtype=dtype, device=device)
    if tuple(initial_latent.shape) != size:
        raise ValueError(f"initial latent {tuple(initial_latent.shape)} != {size}")
    return initial_latent


def _make_state(latent: torch.Tensor, positions: torch.Tensor, target_tokens: int) -> LatentState:
    return LatentState(
        latent=latent,
        clean_latent=latent.clone(),
        denoise_mask=torch.ones(*latent.shape[:2], 1, device=latent.device, dtype=torch.float32),
        positions=positions,
        target_tokens=target_tokens,
    )


@dataclass(frozen=True)
class VideoGrid:
    """The generated video's latent shape and frame rate; builds and unbuilds its state."""

    shape: VideoLatentShape
    fps: float
    causal_fix: bool = True
    scale: ScaleFactors = VIDEO_SCALE_FACTORS
    compat: Compat = CURRENT

    def positions(self, device: torch.device | str | None = None) -> torch.Tensor:
        return video_positions(self.shape, self.fps, self.causal_fix, self.scale, device)

    def initial_state(
        self,
        initial_latent: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> LatentState:
        """State over the target grid: zeros (or `initial_latent`), clean copy, mask all ones.

        Positions are float32, or cast to the latent dtype under `compat.bf16_video_positions`
        (1.0.0: bfloat16 in the pipelines, so 1/24 s becomes 0.041748046875).
        """
        tokens = patchify_video(_dense(self.shape.size, initial_latent, dtype, device))
        positions = self.positions(tokens.device)
        if self.compat.bf16_video_positions:
            positions = positions.to(tokens.dtype)
        return _make_state(tokens, positions, self.shape.token_count)

    def unpatchify(self, state: LatentState) -> torch.Tensor:
        """The dense `[B, C, F, H, W]` target latent (appended tokens ignored)."""
        return unpatchify_video(state.latent[:, : self.shape.token_count], self.shape)


@dataclass(frozen=True)
class AudioGrid:
    """The generated audio's latent shape; `shift` offsets its time positions in latents."""

    shape: AudioLatentShape
    shift: int = 0

    def positions(self, device: torch.device | str | None = None) -> torch.Tensor:
        return audio_positions(self.shape, self.shift, device)

    def initial_state(
        self,
        initial_latent: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> LatentState:
        """State over the target grid: zeros (or `initial_latent`), clean copy, mask all ones."""
        tokens = patchify_audio(_dense(self.shape.size, initial_latent, dtype, device))
        return _make_state(tokens, self.positions(tokens.device), self.shape.token_count)

    def unpatchify(self, state: LatentState) -> torch.Tensor:
        return unpatchify_audio(state.latent[:, : self.shape.token_count], self.shape)
