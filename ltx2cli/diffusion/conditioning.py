"""Conditioning items: each turns a patchified state into a conditioned one.

In place (the target tokens keep their positions):
- `ReplaceLatent` — image conditioning: the tokens of one latent frame take a given latent as
  their clean value with denoise mask 1 − strength (strength 1: clean all the way, timestep 0).
- `MaskedLatent` — inpainting: where `keep` is 1 the clean value comes from a latent and the
  mask is 1 − strength; where it is 0 the token is generated.
- `TemporalRegionMask` — retake: the target's denoise mask becomes 1 on tokens whose time
  interval overlaps [start, end) seconds and 0 elsewhere (video or audio).

Appended after the target (removed by `state.clear_conditioning` once denoised):
- `KeyframeGuide` — a keyframe latent with its own positions placed at a pixel frame index.
- `ReferenceVideo` — IC-LoRA reference tokens; spatial positions × `downscale_factor`.
- `AttentionStrength` — wraps an appending item and builds the soft self-attention mask.

The grid's `compat` decides what the items write (see `ltx2cli.compat`):
- `conditioning_writes_latent`: the current release writes a clean value only into
  `clean_latent` (appended tokens hold zeros in `latent`) and relies on the lerp noiser to mix
  from it; 1.0.0 writes it into `latent` as well, as its noiser mixes from `latent`.
- `keyframe_pixel_frames`: the time span of a single-image keyframe (1 current, 8 in 1.0.0).

Dtypes follow the reference: an appended item's denoise mask is built in its latent's dtype
(so 1 − strength is rounded to bf16 for bf16 latents) and widened to float32 by the
concatenation; self-attention masks are built in the latent dtype, since the model takes the
log of the mask in the dtype it arrives in.

`pixel_mask_to_latent` turns an IC-LoRA attention mask video into the per-token weights of
the reference's tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

import torch

from ltx2cli.diffusion.patchify import (
    VideoLatentShape,
    patchify_mask,
    patchify_video,
    video_pixel_bounds,
)
from ltx2cli.diffusion.state import AudioGrid, LatentState, VideoGrid
from ltx2cli.errors import UsageError

Grid = VideoGrid | AudioGrid


class ConditioningItem(Protocol):
    def apply(self, state: LatentState, grid: Grid) -> LatentState: ...


def apply_conditioning(
    state: LatentState, items: Iterable[ConditioningItem], grid: Grid
) -> LatentState:
    """Apply items in order (appending items add their tokens at the end)."""
    for item in items:
        state = item.apply(state, grid)
    return state


def _check_strength(strength: float, what: str) -> None:
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"{what} strength {strength} is outside [0, 1]", "use e.g. 1.0 or 0.8")


def _video_grid(grid: Grid, what: str) -> VideoGrid:
    if not isinstance(grid, VideoGrid):
        raise ValueError(f"{what} conditions video only")
    return grid


def _extend_attention(
    state: LatentState, new_tokens: int, cross: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor | None:
    """Self-attention mask in `dtype` after appending `new_tokens` tokens.

    Blocks: the old N×N block is kept (ones if there was no mask); new↔new is 1;
    target↔new (both ways) is `cross` `[B, M]`; earlier appended groups↔new is 0. Without a
    `cross` weight and without an existing mask there is no mask at all; without `cross` but
    with a mask the target↔new weight is 1.
    """
    device = state.latent.device
    if cross is None:
        if state.attention_mask is None:
            return None
        cross = torch.ones(state.latent.shape[0], new_tokens, device=device, dtype=dtype)
    b, n, t = state.latent.shape[0], state.token_count, state.target_tokens
    mask = torch.zeros(b, n + new_tokens, n + new_tokens, device=device, dtype=dtype)
    mask[:, :n, :n] = 1.0 if state.attention_mask is None else state.attention_mask
    mask[:, n:, n:] = 1.0
    mask[:, :t, n:] = cross.unsqueeze(1)
    mask[:, n:, :t] = cross.unsqueeze(2)
    return mask


def _append(
    state: LatentState,
    grid: VideoGrid,
    latent: torch.Tensor,
    positions: torch.Tensor,
    strength: float,
) -> LatentState:
    """Append a conditioning latent `[B, C, F, H, W]` as clean tokens (also written into
    `latent` under `conditioning_writes_latent`, zeros there otherwise) with their positions
    and a denoise mask of 1 − strength (in the latent's dtype, see above)."""
    dtype = latent.dtype
    tokens = patchify_video(latent).to(device=state.latent.device)
    b, m = tokens.shape[:2]
    mask = torch.full((b, m, 1), 1.0 - strength, device=tokens.device, dtype=dtype)
    positions = positions.to(device=state.positions.device, dtype=torch.float32)
    tokens = tokens.to(state.clean_latent.dtype)
    noisy = tokens if grid.compat.conditioning_writes_latent else torch.zeros_like(tokens)
    return replace(
        state,
        latent=torch.cat([state.latent, noisy.to(state.latent.dtype)], dim=1),
        clean_latent=torch.cat([state.clean_latent, tokens], dim=1),
        denoise_mask=torch.cat([state.denoise_mask, mask], dim=1).float(),
        positions=torch.cat([state.positions.float(), positions], dim=2),
        attention_mask=_extend_attention(state, m, None, dtype),
    )


def _write(
    state: LatentState, grid: VideoGrid, write: Callable[[torch.Tensor], torch.Tensor]
) -> dict[str, torch.Tensor]:
    """An in-place item's clean values: `write` applied to `clean_latent`, and under
    `conditioning_writes_latent` to `latent` as well (`write` returns a new tensor)."""
    names = ["clean_latent"]
    if grid.compat.conditioning_writes_latent:
        names.append("latent")
    return {name: write(getattr(state, name)) for name in names}


@dataclass(frozen=True)
class ReplaceLatent:
    """Condition the target frames starting at latent frame `frame_index` on `latent`
    `[B, C, F, H, W]` (same B, C, H, W as the target; usually one encoded image)."""

    latent: torch.Tensor
    frame_index: int = 0
    strength: float = 1.0

    def apply(self, state: LatentState, grid: Grid) -> LatentState:
        video = _video_grid(grid, "ReplaceLatent")
        target = video.shape
        _check_strength(self.strength, "image conditioning")
        cond = VideoLatentShape.of(self.latent)
        if (cond.batch, cond.channels, cond.height, cond.width) != (
            target.batch,
            target.channels,
            target.height,
            target.width,
        ):
            raise ValueError(f"conditioning latent {cond.size} does not fit target {target.size}")
        start = self.frame_index * target.tokens_per_frame
        stop = start + cond.token_count
        if self.frame_index < 0 or stop > state.target_tokens:
            raise UsageError(
                f"conditioning at latent frame {self.frame_index} runs past the video's "
                f"{target.frames} latent frames",
                "use an earlier frame",
            )
        tokens = patchify_video(self.latent)

        def write(x: torch.Tensor) -> torch.Tensor:
            out = x.clone()
            out[:, start:stop] = tokens.to(out)
            return out

        mask = state.denoise_mask.clone()
        mask[:, start:stop] = 1.0 - self.strength
        return replace(state, denoise_mask=mask, **_write(state, video, write))


@dataclass(frozen=True)
class MaskedLatent:
    """Keep the target tokens where `keep` `[B, F, H, W]` is 1 close to `latent` (denoise mask
    1 − strength) and generate the rest; to regenerate a region pass keep = 1 − region."""

    latent: torch.Tensor
    keep: torch.Tensor
    strength: float = 1.0

    def apply(self, state: LatentState, grid: Grid) -> LatentState:
        video = _video_grid(grid, "MaskedLatent")
        target = video.shape
        _check_strength(self.strength, "mask conditioning")
        if tuple(self.latent.shape) != target.size:
            raise ValueError(f"mask latent {tuple(self.latent.shape)} != target {target.size}")
        expected = (target.batch, target.frames, target.height, target.width)
        if tuple(self.keep.shape) != expected:
            raise ValueError(f"keep mask {tuple(self.keep.shape)} != {expected}")
        n = state.target_tokens
        # The reference blends in the latent dtype: for bf16 states the kept tokens' mask is
        # bf16(1 − strength), widened to float32 by the sum with the float32 mask.
        keep = patchify_mask(self.keep).to(device=state.latent.device, dtype=state.latent.dtype)
        tokens = patchify_video(self.latent)

        def write(x: torch.Tensor) -> torch.Tensor:
            out = x.clone()
            out[:, :n] = out[:, :n] * (1 - keep) + tokens.to(out) * keep
            return out

        mask = state.denoise_mask.clone()
        mask[:, :n] = mask[:, :n] * (1 - keep) + (1.0 - self.strength) * keep
        return replace(state, denoise_mask=mask, **_write(state, video, write))


@dataclass(frozen=True)
class TemporalRegionMask:
    """Regenerate only the target tokens whose time interval overlaps [start_s, end_s).

    Video intervals are the causal pixel-frame bounds divided by `fps` (the grid's frame rate
    when None); audio intervals are the patchifier's seconds.
    """

    start_s: float
    end_s: float
    fps: float | None = None

    def apply(self, state: LatentState, grid: Grid) -> LatentState:
        device = state.latent.device
        if isinstance(grid, VideoGrid) and self.fps is not None:
            bounds = video_pixel_bounds(grid.shape, grid.causal_fix, grid.scale, device)
            times = bounds[:, 0] / self.fps
        else:
            times = grid.positions(device)[:, 0]  # (B, N, 2) seconds
        inside = (times[..., 1] > self.start_s) & (times[..., 0] < self.end_s)
        mask = state.denoise_mask.clone()
        mask[:, : state.target_tokens] = inside.unsqueeze(-1).to(mask.dtype)
        return replace(state, denoise_mask=mask)


@dataclass(frozen=True)
class KeyframeGuide:
    """Append a keyframe latent `[B, C, F, H, W]` as guiding tokens at pixel frame
    `frame_index`, with denoise mask 1 − strength.

    Time bounds come from the keyframe's own grid shifted by `frame_index` pixel frames (the
    causal fix only at frame 0): latent frame f covers [k + 8f, k + 8f + 8). A single-image
    keyframe (one latent frame, which the causal VAE encodes from one pixel frame) spans at
    most `compat.keyframe_pixel_frames` of them: [k, k + 1) for the current reference,
    [k, k + 8) for 1.0.0; [0, 1) at frame 0 in both. Spatial bounds are the keyframe's own
    pixel grid.
    """

    latent: torch.Tensor
    frame_index: int
    strength: float = 1.0

    def apply(self, state: LatentState, grid: Grid) -> LatentState:
        video = _video_grid(grid, "KeyframeGuide")
        _check_strength(self.strength, "keyframe")
        pixel_frames = video.shape.pixel_size(video.scale)[0]
        if not 0 <= self.frame_index < pixel_frames:
            raise UsageError(
                f"keyframe at frame {self.frame_index} is outside the video's {pixel_frames} "
                "frames",
                f"use a frame between 0 and {pixel_frames - 1}",
            )
        shape = VideoLatentShape.of(self.latent)
        causal_fix = video.causal_fix and self.frame_index == 0
        bounds = video_pixel_bounds(shape, causal_fix, video.scale, state.latent.device)
        bounds[:, 0] += self.frame_index
        if shape.frames == 1:
            span_end = bounds[:, 0, :, 0] + video.compat.keyframe_pixel_frames
            bounds[:, 0, :, 1] = torch.minimum(bounds[:, 0, :, 1], span_end)
        bounds[:, 0] /= video.fps
        return _append(state, video, self.latent, bounds, self.strength)


@dataclass(frozen=True)
class ReferenceVideo:
    """Append IC-LoRA reference tokens from `latent` `[B, C, F, H, W]` (denoise mask
    1 − strength). A reference encoded at 1/`downscale_factor` of the target's size gets its
    spatial positions multiplied back onto the target's pixel frame; one at 1/S of the frame
    rate (`temporal_scale_factor` S) is spaced at fps/S and shifted so both end together."""

    latent: torch.Tensor
    downscale_factor: int = 1
    strength: float = 1.0
    temporal_scale_factor: int = 1

    def apply(self, state: LatentState, grid: Grid) -> LatentState:
        video = _video_grid(grid, "ReferenceVideo")
        _check_strength(self.strength, "reference video")
        if self.downscale_factor < 1 or self.temporal_scale_factor < 1:
            raise ValueError("reference scale factors must be >= 1")
        shape = VideoLatentShape.of(self.latent)
        bounds = video_pixel_bounds(shape, video.causal_fix, video.scale, state.latent.device)
        s = self.temporal_scale_factor
        bounds[:, 0] /= video.fps / s
        if s != 1:
            first_end = state.positions[:, 0, 0, 1].float().view(-1, 1, 1)  # 1/fps
            bounds[:, 0] = (bounds[:, 0] - (s - 1) * first_end).clamp(min=0)
        bounds[:, 1:] *= self.downscale_factor
        return _append(state, video, self.latent, bounds, self.strength)


@dataclass(frozen=True)
class AttentionStrength:
    """Apply an appending item, then weight attention between the target and its new tokens by
    `weight`: a scalar, `[M]` or `[B or 1, M]` in [0, 1] (separate appended groups never see
    each other)."""

    item: ConditioningItem
    weight: float | torch.Tensor

    def apply(self, state: LatentState, grid: Grid) -> LatentState:
        new = self.item.apply(state, grid)
        m = new.token_count - state.token_count
        if m == 0:
            return new
        b, dtype = state.latent.shape[0], new.latent.dtype
        weight = torch.as_tensor(self.weight, device=state.latent.device).to(dtype)
        if weight.dim() == 0:
            cross = weight.expand(b, m)
        elif weight.dim() == 1 and weight.shape[0] == m:
            cross = weight.unsqueeze(0).expand(b, m)
        elif weight.dim() == 2 and weight.shape[1] == m and weight.shape[0] in (1, b):
            cross = weight.expand(b, m)
        else:
            raise ValueError(
                f"attention weight of shape {tuple(weight.shape)} does not fit {m} new tokens"
            )
        if bool(((cross < 0) | (cross > 1)).any()):
            raise UsageError("conditioning attention strength is outside [0, 1]", "use 0..1")
        return replace(new, attention_mask=_extend_attention(state, m, cross, dtype))


def pixel_mask_to_latent(mask: torch.Tensor, shape: VideoLatentShape) -> torch.Tensor:
    """Per-token weights `[B, F'·H'·W']` (token order f, h, w) from a pixel-space mask
    `[B, F, H, W]` in [0, 1], for the latent grid `shape` of the IC-LoRA reference it weights.

    Spatially each frame is area-averaged onto H'×W' (cell (i, j) averages rows
    floor(i·H/H') … ceil((i+1)·H/H') − 1, likewise columns). In time the causal VAE encodes
    the first frame alone, so frame 0 is kept as it is and the remaining F − 1 frames are
    averaged in consecutive groups of (F − 1)/(F' − 1), which must divide exactly. With
    F' = 1 only the first frame counts. Computed in the mask's dtype, as the reference does.
    """
    if mask.dim() != 4:
        raise ValueError(f"expected a [B, F, H, W] mask, got {tuple(mask.shape)}")
    b, frames = mask.shape[:2]
    latent_frames = shape.frames
    if latent_frames > 1 and (frames < 2 or (frames - 1) % (latent_frames - 1)):
        raise UsageError(
            f"attention mask has {frames} frames, which do not fit {latent_frames} latent "
            f"frames ((frames - 1) must be a multiple of {latent_frames - 1})",
            "use a mask video with as many frames as the reference video",
        )
    area = torch.nn.functional.adaptive_avg_pool2d(
        mask.reshape(b * frames, 1, *mask.shape[2:]), (shape.height, shape.width)
    ).reshape(b, frames, shape.height, shape.width)
    first = area[:, :1]
    if latent_frames > 1:
        group = (frames - 1) // (latent_frames - 1)
        rest = area[:, 1:].reshape(b, latent_frames - 1, group, shape.height, shape.width)
        latent = torch.cat([first, rest.mean(dim=2)], dim=1)
    else:
        latent = first
    return latent.reshape(b, -1)
