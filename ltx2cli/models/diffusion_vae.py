"""LTX-2.5 diffusion video VAE decoder ("DiffVAE", ltx-2.5.md §3.3).

A neighbourhood-attention transformer decodes the latent in two parts:
- stages 1-4 (deterministic): un-normalise, `conv_in` (Linear 128→C1), then per stage `depth` ×
  NABlock and a Linear pixel-shuffle upsample; this yields a context volume at 1/4 pixel size;
- stage 5 (diffusion): Gaussian noise in pixel space, patchified 4×4, is denoised by
  DiffusionNABlocks that read the context through `context_proj` and the timestep through a
  shared AdaLN. The released file takes one step at t = 1 with an x0 output, so the decode is
  one evaluation on pure noise drawn from the caller's generator.

Design choices:
- Channels-last `(B, T, H, W, C)` inside, `(B, C, T, H, W)` at the interface, pixels in
  ~[−1, 1] like the conv decoder (pipelines map them to [0, 1]).
- Module keys are the file's, except `t_embedder.mlp.{0,2}` (the shared timestep-MLP layout
  `t_embedder.timestep_embedder.linear_{1,2}`); the attention keeps the fused `qkv` Linear
  and applies its row thirds, which is what the reference computes after splitting it at load.
  `decoder_state_from_raw` applies the remaining key rules (rename, fold legacy gates, drop
  `coarse_*` and the module-less `type_emb`); `raw_decoder_state` is its inverse.
- Border handling follows the reference decode: latents smaller than the stage kernels are
  edge-padded first, the last latent frame is replicated `(k_t//2)·2` times through stages
  1-4 (NATTEN shifts windows inward at the last frame) and that context is cropped again
  before stage 5, never below the stage-5 kernel.
- Stages 1-3 run once on the whole latent; stages 4-5 run per tile of the stage-4 grid
  (`diffusion_vae_tiling`), each tile with its own noise, blended in pixel space and emitted
  per temporal group as soon as its frames are final. No tiling is one tile (the reference
  decoder's `forward`).
- Numerics as the reference: RoPE angles and rotation in float32, attention inputs cast to
  V's dtype, noise drawn in the compute dtype, the pixel buffer kept in float16 when computing
  in bfloat16, the model output taken in float32 for Euler steps when there are several.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ltx2cli.errors import CheckpointError
from ltx2cli.models.checkpoint import CONV_VAE_CLASS
from ltx2cli.models.diffusion_vae_tiling import (
    DiffusionTiling,
    Tile,
    masks_sum_to_one,
    min_tile_size,
    recommended_tiling,
    stage4_shape,
    stage5_shape,
    tile_halos,
    tile_schedule,
    weight_floor,
)
from ltx2cli.models.layers import TimestepEmbedder
from ltx2cli.models.neighborhood_attention import neighborhood_attention_3d
from ltx2cli.models.noise import gaussian
from ltx2cli.models.video_vae_blocks import PerChannelStatistics, pixel_patchify, pixel_unpatchify

logger = logging.getLogger(__name__)

ROPE_BASE = 10000.0
ADALN_CHUNKS = 7  # scale_msa, shift_msa, gate_msa, scale_mlp, shift_mlp, gate_mlp, gate_ctx
OUTPUT_TYPES = ("x0", "v")
SWIGLU_TOKENS = 16_384  # the reference's token slice for the gated MLP
Kernel = tuple[int, int, int]
Upsample = tuple[Kernel, int]

# What the reference builds for a field the config omits (differs from the released file).
_CODE_DEFAULTS: dict[str, Any] = {
    "stage_channels": (1024, 512, 256, 256, 128),
    "stage_depths": (4, 6, 4, 2, 8),
    "stage_kernels": ((3, 7, 7), (3, 7, 7), (3, 5, 5), (3, 5, 5), (3, 3, 3)),
    "upsamples": (((1, 2, 2), 2), ((2, 1, 1), 2), ((2, 2, 2), 1), ((2, 2, 2), 2)),
    "stage5_kernel": (3, 7, 7),
    "default_num_inference_steps": 2,
    "timestep_scale_multiplier": 1.0,
    "model_output_type": "v",
}


def default_rope_split(head_dim: int) -> Kernel:
    """Head-dim split over (T, H, W): a quarter (even) for time, the rest halved (64 → 16/24/24)."""
    d_t = (head_dim // 4) // 2 * 2
    d_hw = (head_dim - d_t) // 2
    if d_hw % 2:
        d_t -= 2
        d_hw = (head_dim - d_t) // 2
    return (d_t, d_hw, d_hw)


@dataclass(frozen=True)
class DiffusionDecoderConfig:
    """Architecture of `DiffusionVideoDecoder`; defaults equal the released 2.5 file."""

    in_channels: int = 128
    out_channels: int = 3
    patch_size: int = 4
    head_dim: int = 64
    stage_channels: tuple[int, ...] = (2048, 1024, 512, 512, 256)
    stage_depths: tuple[int, ...] = (4, 6, 4, 2, 8)
    stage_kernels: tuple[Kernel, ...] = ((3, 7, 7), (3, 7, 7), (3, 5, 5), (3, 5, 5), (3, 3, 3))
    upsamples: tuple[Upsample, ...] = (
        ((1, 2, 2), 2),
        ((2, 1, 1), 2),
        ((2, 2, 2), 1),
        ((2, 2, 2), 2),
    )
    stage5_kernel: Kernel = (11, 11, 11)
    stage5_channels: int | None = None
    t_emb_dim: int = 384
    default_num_inference_steps: int = 1
    timestep_scale_multiplier: float = 1000.0
    model_output_type: str = "x0"

    def __post_init__(self) -> None:
        n = len(self.stage_channels)
        if not (n == len(self.stage_depths) == len(self.stage_kernels)) or n < 2:
            raise CheckpointError(
                f"diffusion VAE config: stage_channels/stage_depths/stage_kernels must have the "
                f"same length >= 2 (got {n}, {len(self.stage_depths)}, {len(self.stage_kernels)})"
            )
        if len(self.upsamples) != n - 1:
            raise CheckpointError(
                f"diffusion VAE config: {len(self.upsamples)} upsamples for {n} stages "
                f"(need {n - 1})"
            )
        if n != 5:
            raise CheckpointError(
                f"diffusion VAE config: {n} stages; the decoder has 4 deterministic stages + 1"
            )
        for c in (*self.stage_channels, self.stage5_width):
            if c % self.head_dim:
                raise CheckpointError(
                    f"diffusion VAE config: width {c} is not a multiple of head_dim {self.head_dim}"
                )
        for i, (_, reduction) in enumerate(self.upsamples):
            if self.stage_channels[i] // reduction != self.stage_channels[i + 1]:
                raise CheckpointError(
                    f"diffusion VAE config: stage {i + 1} has {self.stage_channels[i]} channels, "
                    f"its upsample (reduction {reduction}) cannot feed "
                    f"{self.stage_channels[i + 1]}"
                )
        if self.head_dim % 8 or min(default_rope_split(self.head_dim)) <= 0:
            raise CheckpointError(
                f"diffusion VAE config: head_dim {self.head_dim} must be a multiple of 8 with "
                "a positive RoPE share per axis"
            )
        if self.model_output_type not in OUTPUT_TYPES:
            raise CheckpointError(
                f"diffusion VAE config: model_output_type={self.model_output_type!r}; "
                f"expected one of {OUTPUT_TYPES}"
            )
        if self.default_num_inference_steps < 1:
            raise CheckpointError(
                "diffusion VAE config: default_num_inference_steps must be >= 1, got "
                f"{self.default_num_inference_steps}"
            )

    @property
    def stage5_width(self) -> int:
        return self.stage_channels[-1] if self.stage5_channels is None else self.stage5_channels

    @property
    def scale(self) -> Kernel:
        """Pixels per latent cell along (time, height, width), e.g. (8, 32, 32)."""
        t = h = w = 1
        for (st, sh, sw), _ in self.upsamples:
            t, h, w = t * st, h * sh, w * sw
        return (t, h * self.patch_size, w * self.patch_size)

    @property
    def trailing_pad_frames(self) -> int:
        """Latent frames replicated at the end through stages 1-4 (NATTEN last-frame border)."""
        return (self.stage_kernels[0][0] // 2) * 2

    @property
    def min_latent_size(self) -> Kernel:
        """Per-axis latent floor so that every stage's neighbourhood fits its volume."""
        mins = [1, 1, 1]
        cumulative = (1, 1, 1)
        kernels = (*self.stage_kernels[: len(self.upsamples)], self.stage5_kernel)
        strides = [(1, 1, 1)]
        for stride, _ in self.upsamples:
            cumulative = tuple(c * s for c, s in zip(cumulative, stride, strict=True))
            strides.append(cumulative)
        for kernel, stride in zip(kernels, strides, strict=True):
            for axis in range(3):
                mins[axis] = max(mins[axis], -(-kernel[axis] // stride[axis]))
        return (mins[0], mins[1], mins[2])

    @classmethod
    def from_checkpoint_config(cls, config: Mapping[str, Any]) -> DiffusionDecoderConfig:
        """Read `config.vae.decoder` (+ `config.vae.model_output_type`) like the reference.

        A missing architecture field takes the reference's code default, which is NOT the
        released value; a warning names it.
        """
        vae = config.get("vae", config)
        decoder = vae.get("decoder", vae)

        def get(key: str, section: Mapping[str, Any] = decoder) -> Any:
            if key in section:
                return section[key]
            logger.warning(
                "diffusion VAE config has no %s; using the reference code default %r",
                key,
                _CODE_DEFAULTS[key],
            )
            return _CODE_DEFAULTS[key]

        return cls(
            in_channels=int(decoder.get("in_channels", vae.get("latent_channels", 128))),
            out_channels=int(decoder.get("out_channels", 3)),
            patch_size=int(decoder.get("patch_size", 4)),
            head_dim=int(decoder.get("head_dim", decoder.get("na_head_dim", 64))),
            stage_channels=tuple(int(c) for c in get("stage_channels")),
            stage_depths=tuple(int(d) for d in get("stage_depths")),
            stage_kernels=tuple(_kernel(k) for k in get("stage_kernels")),
            upsamples=tuple((_kernel(s), int(r)) for s, r in get("upsamples")),
            stage5_kernel=_kernel(get("stage5_kernel")),
            stage5_channels=decoder.get("stage5_channels"),
            t_emb_dim=int(decoder.get("t_emb_dim", 384)),
            default_num_inference_steps=int(get("default_num_inference_steps")),
            timestep_scale_multiplier=float(get("timestep_scale_multiplier")),
            model_output_type=str(get("model_output_type", vae)),
        )


def _kernel(values: Any) -> Kernel:
    t, h, w = (int(v) for v in values)
    return (t, h, w)


def encoder_vae_section(config: Mapping[str, Any]) -> dict[str, Any]:
    """The diffusion file's nested `vae.encoder` config as the flat conv-VAE `vae` section the
    conv encoder is built from (`out_channels` there is the latent width), read the reference's
    way; a flat section passes through unchanged."""
    vae = config.get("vae", config)
    if "encoder" not in vae:
        return dict(vae)
    encoder = vae["encoder"]
    return {
        "_class_name": CONV_VAE_CLASS,
        "dims": encoder.get("dims", vae.get("dims", 3)),
        "in_channels": encoder.get("in_channels", 3),
        "latent_channels": encoder.get("out_channels", vae.get("latent_channels", 128)),
        "encoder_blocks": encoder.get("blocks", encoder.get("encoder_blocks", [])),
        "patch_size": encoder.get("patch_size", 4),
        "norm_layer": encoder.get("norm_layer", "pixel_norm"),
        "latent_log_var": encoder.get("latent_log_var", "uniform"),
        "encoder_spatial_padding_mode": encoder.get(
            "spatial_padding_mode", vae.get("encoder_spatial_padding_mode", "zeros")
        ),
    }


def is_diffusion_vae_config(config: Mapping[str, Any]) -> bool:
    """The reference's choice: any `vae._class_name` other than the conv VAE's."""
    vae = config.get("vae", {}) if isinstance(config, Mapping) else {}
    return vae.get("_class_name", CONV_VAE_CLASS) != CONV_VAE_CLASS


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------


def _rotate_axis(x: torch.Tensor, inv_freq: torch.Tensor, axis: int) -> torch.Tensor:
    """Interleaved-pair RoPE of `x` (B, T, H, W, heads, d) along spatial `axis` (1, 2 or 3),
    positions 0..n−1 of that axis; angles and rotation in float32, result in x's dtype."""
    n = x.shape[axis]
    pairs = x.reshape(*x.shape[:-1], -1, 2).to(torch.float32)
    even, odd = pairs[..., 0], pairs[..., 1]
    pos = torch.arange(n, dtype=torch.float32, device=x.device)
    angle_shape = [1, 1, 1, 1, 1, inv_freq.shape[0]]
    angle_shape[axis] = n
    angle = (pos[:, None] * inv_freq.to(x.device)[None, :]).reshape(angle_shape)
    cos, sin = angle.cos(), angle.sin()
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
    return rotated.reshape(x.shape).to(x.dtype)


def rope_inv_freq(dim: int, base: float = ROPE_BASE) -> torch.Tensor:
    """`base^(−2i/dim)` for i < dim/2, computed in float64 and stored as float32."""
    exponents = torch.arange(0, dim, 2, dtype=torch.float64) / dim
    return (1.0 / base**exponents).to(torch.float32)


class NeighborhoodAttention3D(nn.Module):
    """q/k/v → per-head RMSNorm → q·d^−½ → 3-axis absolute RoPE → 3-D NA → `proj`.

    q, k and v are the row thirds of the file's fused `qkv` Linear, applied as three separate
    products (the reference splits the tensor at load; the products are the same).
    """

    def __init__(self, dim: int, kernel: Kernel, head_dim: int) -> None:
        super().__init__()
        self.dim, self.head_dim, self.kernel = dim, head_dim, kernel
        self.heads = dim // head_dim
        self.rope_split = default_rope_split(head_dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.q_norm = nn.RMSNorm(head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(head_dim, eps=1e-6)

    def _rope(self, x: torch.Tensor) -> torch.Tensor:
        d_t, d_h, _ = self.rope_split
        parts = (x[..., :d_t], x[..., d_t : d_t + d_h], x[..., d_t + d_h :])
        return torch.cat(
            [
                _rotate_axis(part, rope_inv_freq(part.shape[-1]), axis)
                for axis, part in enumerate(parts, start=1)
            ],
            dim=-1,
        )

    def _project(self, x: torch.Tensor, third: int) -> torch.Tensor:
        rows = slice(third * self.dim, (third + 1) * self.dim)
        return F.linear(x, self.qkv.weight[rows], self.qkv.bias[rows])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h, w, _ = x.shape
        shape = (b, t, h, w, self.heads, self.head_dim)
        q = self.q_norm(self._project(x, 0).view(shape)) * self.head_dim**-0.5
        k = self.k_norm(self._project(x, 1).view(shape))
        v = self._project(x, 2).view(shape)
        out = neighborhood_attention_3d(self._rope(q), self._rope(k), v, self.kernel)
        return self.proj(out.reshape(b, t, h, w, self.dim))


class SwiGLU(nn.Module):
    """`w_down(silu(w_gate·x) · w_up·x)`, no biases; hidden = round_up(4·dim, 16).

    Tokens go through in slices of `SWIGLU_TOKENS` (as the reference does), so the 4×-wide
    hidden activation never exists for the whole volume at once.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        hidden = (4 * dim + 15) // 16 * 16
        self.w_up = nn.Linear(dim, hidden, bias=False)
        self.w_gate = nn.Linear(dim, hidden, bias=False)
        self.w_down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.w_gate.weight.dtype)
        flat = x.reshape(-1, x.shape[-1])
        out = torch.empty_like(flat)
        for start in range(0, flat.shape[0], SWIGLU_TOKENS):
            part = flat[start : start + SWIGLU_TOKENS]
            out[start : start + SWIGLU_TOKENS] = self.w_down(
                F.silu(self.w_gate(part)) * self.w_up(part)
            )
        return out.view(x.shape)


class NABlock(nn.Module):
    """Deterministic-stage block: `x += NA(norm1 x)`, `x += SwiGLU(norm2 x)`."""

    def __init__(self, dim: int, kernel: Kernel, head_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.RMSNorm(dim, eps=1e-6)
        self.attn = NeighborhoodAttention3D(dim, kernel, head_dim)
        self.norm2 = nn.RMSNorm(dim, eps=1e-6)
        self.mlp = SwiGLU(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DiffusionNABlock(nn.Module):
    """Stage-5 block: context injection, then AdaLN-modulated NA and SwiGLU (gates unused)."""

    def __init__(self, dim: int, kernel: Kernel, context_dim: int, head_dim: int) -> None:
        super().__init__()
        self.context_proj = nn.Linear(context_dim, dim)
        self.scale_shift_table = nn.Parameter(torch.zeros(ADALN_CHUNKS, dim))
        self.norm1 = nn.RMSNorm(dim, eps=1e-6)
        self.attn = NeighborhoodAttention3D(dim, kernel, head_dim)
        self.norm2 = nn.RMSNorm(dim, eps=1e-6)
        self.mlp = SwiGLU(dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, modulation: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        scale_msa, shift_msa, _, scale_mlp, shift_mlp, _, _ = (
            m + self.scale_shift_table[i].view(1, 1, 1, 1, -1) for i, m in enumerate(modulation)
        )
        x = x + self.context_proj(context)
        x = x + self.attn(self.norm1(x) * (1.0 + scale_msa) + shift_msa)
        return x + self.mlp(self.norm2(x) * (1.0 + scale_mlp) + shift_mlp)


class SharedAdaLN(nn.Module):
    """`proj(SiLU(t_emb))` cut into 7 chunks, each shaped (B, 1, 1, 1, C)."""

    def __init__(self, dim: int, t_emb_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(t_emb_dim, ADALN_CHUNKS * dim)

    def forward(self, t_emb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        chunks = self.proj(F.silu(t_emb)).chunk(ADALN_CHUNKS, dim=-1)
        return tuple(c[:, None, None, None, :] for c in chunks)


class PixelShuffleUpsample(nn.Module):
    """Linear C → prod(stride)·C/reduction, then depth-to-space with channels `(c, pt, ph, pw)`.

    With a temporal stride of 2 the first output frame duplicates the causal first frame and
    is dropped when `drop_leading_frame` (the volume containing t = 0).
    """

    def __init__(self, dim: int, stride: Kernel, reduction: int) -> None:
        super().__init__()
        self.stride = stride
        self.proj = nn.Linear(dim, math.prod(stride) * dim // reduction)

    def forward(self, x: torch.Tensor, drop_leading_frame: bool = True) -> torch.Tensor:
        b, t, h, w, _ = x.shape
        pt, ph, pw = self.stride
        x = self.proj(x)
        x = x.view(b, t, h, w, -1, pt, ph, pw).permute(0, 1, 5, 2, 6, 3, 7, 4)
        x = x.reshape(b, t * pt, h * ph, w * pw, -1)
        if pt == 2 and drop_leading_frame:
            x = x[:, 1:]
        return x


# ---------------------------------------------------------------------------------------------
# Padding helpers (latent size floor, NATTEN trailing border)
# ---------------------------------------------------------------------------------------------


def _repeat_last(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Grow `dim` to `size` by repeating its last slice, or cut it from the end."""
    n = x.shape[dim]
    if n >= size:
        return x.narrow(dim, 0, size)
    last = x.narrow(dim, n - 1, 1)
    shape = list(x.shape)
    shape[dim] = size - n
    return torch.cat([x, last.expand(shape)], dim=dim)


def _edge_pad_symmetric(x: torch.Tensor, dim: int, size: int) -> tuple[torch.Tensor, int]:
    """Edge-replicate `dim` up to `size`, `need//2` before (the rest after); → (x, before)."""
    need = size - x.shape[dim]
    if need <= 0:
        return x, 0
    before = need // 2
    first, last = x.narrow(dim, 0, 1), x.narrow(dim, x.shape[dim] - 1, 1)
    parts = []
    for edge, count in ((first, before), (None, 0), (last, need - before)):
        if edge is None:
            parts.append(x)
        elif count:
            shape = list(x.shape)
            shape[dim] = count
            parts.append(edge.expand(shape))
    return torch.cat(parts, dim=dim), before


def _resize_symmetric(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Edge-pad or crop `dim` to `size`, the odd element going to the end either way."""
    need = x.shape[dim] - size
    if need > 0:
        return x.narrow(dim, need // 2, size)
    return _edge_pad_symmetric(x, dim, size)[0]


# ---------------------------------------------------------------------------------------------
# Decoder
# ---------------------------------------------------------------------------------------------


class DiffusionVideoDecoder(nn.Module):
    """Normalised latent (B, 128, F', H', W') → pixels (B, 3, 8(F'−1)+1, 32H', 32W') in ~[−1, 1]."""

    def __init__(self, config: DiffusionDecoderConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DiffusionDecoderConfig()
        channels, hd = cfg.stage_channels, cfg.head_dim
        self.per_channel_statistics = PerChannelStatistics(cfg.in_channels)
        self.conv_in = nn.Linear(cfg.in_channels, channels[0])
        self.det_stages = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for i, (stride, reduction) in enumerate(cfg.upsamples):
            self.det_stages.append(
                nn.ModuleList(
                    NABlock(channels[i], cfg.stage_kernels[i], hd)
                    for _ in range(cfg.stage_depths[i])
                )
            )
            self.upsamples.append(PixelShuffleUpsample(channels[i], stride, reduction))
        c5, pixel_channels = cfg.stage5_width, cfg.out_channels * cfg.patch_size**2
        self.t_embedder = TimestepEmbedder(cfg.t_emb_dim)
        self.conv_in_x_t = nn.Linear(pixel_channels, c5)
        self.shared_adaln = SharedAdaLN(c5, cfg.t_emb_dim)
        self.diff_blocks = nn.ModuleList(
            DiffusionNABlock(c5, cfg.stage5_kernel, channels[-1], hd)
            for _ in range(cfg.stage_depths[-1])
        )
        self.norm_out = nn.RMSNorm(c5, eps=1e-6)
        self.conv_out = nn.Linear(c5, pixel_channels)

    @property
    def scale(self) -> Kernel:
        return self.config.scale

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Deterministic random weights of a sensible scale (tiny checkpoints, tests)."""
        for name, param in self.named_parameters():
            if name.endswith("norm.weight") or ".norm" in name or name.startswith("norm_out"):
                values = 1 + 0.1 * torch.randn(param.shape, generator=generator)
            elif param.ndim == 2 and name.endswith("weight"):
                values = torch.randn(param.shape, generator=generator) / param.shape[1] ** 0.5
            else:
                values = 0.1 * torch.randn(param.shape, generator=generator)
            param.copy_(values.to(param.dtype))

    def _stage(self, x: torch.Tensor, i: int, drop_leading_frame: bool) -> torch.Tensor:
        for block in self.det_stages[i]:
            x = block(x)
        return self.upsamples[i](x, drop_leading_frame=drop_leading_frame)

    def _stage4_input(self, latent: torch.Tensor) -> torch.Tensor:
        """Stages 1-3 on the whole (trailing-padded) latent → channels-last stage-4 input."""
        x = self.per_channel_statistics.denormalize(latent).permute(0, 2, 3, 4, 1)
        x = self.conv_in(x)
        for i in range(len(self.det_stages) - 1):
            x = self._stage(x, i, drop_leading_frame=True)
        return x

    def _context(self, feat: torch.Tensor, origin: bool, trailing: bool) -> torch.Tensor:
        """Stage 4 on one stage-4 tile; a trailing tile's replicated-frame context is cropped
        again (never below the stage-5 kernel)."""
        cfg = self.config
        x = self._stage(feat, len(self.det_stages) - 1, drop_leading_frame=origin)
        ghost = cfg.trailing_pad_frames * cfg.scale[0]
        if trailing and ghost:
            content = max(x.shape[1] - ghost, 1)
            x = x[:, : min(x.shape[1], max(content, cfg.stage5_kernel[0]))]
        return x

    def _predict(self, x_t: torch.Tensor, context: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """One stage-5 evaluation: noised pixels (B, 3, F, H, W) at time t (B,) → prediction."""
        cfg = self.config
        x = self.conv_in_x_t(pixel_patchify(x_t, cfg.patch_size).permute(0, 2, 3, 4, 1))
        t_emb = self.t_embedder(cfg.timestep_scale_multiplier * t, x.dtype)
        modulation = self.shared_adaln(t_emb)
        for block in self.diff_blocks:
            x = block(x, context, modulation)
        x = self.conv_out(self.norm_out(x)).permute(0, 4, 1, 2, 3)
        return pixel_unpatchify(x, cfg.patch_size)

    def _euler(
        self, x_t: torch.Tensor, out: torch.Tensor, t_now: torch.Tensor, t_next: torch.Tensor
    ) -> torch.Tensor:
        shape = (-1,) + (1,) * (x_t.ndim - 1)
        x = x_t.to(torch.float32)
        t = t_now.to(torch.float32).view(shape)
        dt = (t_now - t_next).to(torch.float32).view(shape)
        velocity = out if self.config.model_output_type == "v" else (x - out) / t
        return (x - dt * velocity).to(x_t.dtype)

    def _denoise(
        self, x_t: torch.Tensor, context: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        """Sample stage 5 from `x_t` along `timesteps` (B, n); x0 output: the last prediction."""
        steps = timesteps.shape[1]
        for i in range(steps - 1):
            out = self._predict(x_t, context, timesteps[:, i]).to(torch.float32)
            x_t = self._euler(x_t, out, timesteps[:, i], timesteps[:, i + 1])
        t_now = timesteps[:, -1]
        out = self._predict(x_t, context, t_now)
        if self.config.model_output_type == "x0":
            return out
        return self._euler(x_t, out.to(torch.float32), t_now, torch.zeros_like(t_now))

    def tile_schedule(self, latent_shape: tuple[int, ...], tiling: DiffusionTiling | None):
        """The stage-4/5 tiles of a (size-floored) latent of `latent_shape` (B, C, T, H, W)."""
        cfg = self.config
        strides = [stride for stride, _ in cfg.upsamples]
        s4 = stage4_shape(strides, *latent_shape[2:5])
        halos = tile_halos(
            cfg.stage_kernels[3],
            cfg.stage_depths[3],
            cfg.stage5_kernel,
            cfg.stage_depths[-1],
            strides[3],
        )
        tiles = tile_schedule(
            s4,
            tiling,
            upsample_stride=strides[3],
            patch_size=cfg.patch_size,
            min_tile=min_tile_size(cfg.stage_kernels[3], cfg.stage5_kernel, strides[3]),
            halos=halos,
        )
        return s4, tiles

    def recommended_tiling(
        self,
        frames: int,
        height: int,
        width: int,
        free_bytes: int,
        *,
        model_bytes: int = 0,
        element_size: int = 2,
    ) -> DiffusionTiling:
        """The reference's automatic tile sizes for a `frames`×`height`×`width` decode with
        `free_bytes` of device memory free (`model_bytes`: the weights already resident)."""
        cfg = self.config
        strides = [stride for stride, _ in cfg.upsamples]
        stride = strides[3]
        return recommended_tiling(
            frames=frames,
            height=height,
            width=width,
            free_bytes=free_bytes,
            halos=tile_halos(
                cfg.stage_kernels[3],
                cfg.stage_depths[3],
                cfg.stage5_kernel,
                cfg.stage_depths[-1],
                stride,
            ),
            pixel_scale=(stride[0], stride[1] * cfg.patch_size, stride[2] * cfg.patch_size),
            min_tile=min_tile_size(cfg.stage_kernels[3], cfg.stage5_kernel, stride),
            patch_size=cfg.patch_size,
            stage4_channels=cfg.stage_channels[3],
            stage5_channels=cfg.stage5_width,
            upsample_strides=strides,
            trailing_pad_frames=cfg.trailing_pad_frames,
            model_bytes=model_bytes,
            element_size=element_size,
            out_channels=cfg.out_channels,
        )

    def iter_decode(
        self,
        latent: torch.Tensor,
        generator: torch.Generator | None = None,
        tiling: DiffusionTiling | None = None,
    ) -> Iterator[torch.Tensor]:
        """Decode, yielding (B, 3, f, H, W) chunks in frame order as their frames are final.

        `tiling` None: one tile (the reference decoder's `forward`). The stage-5 noise is drawn
        per tile, in tile order, from `generator` (a fresh CPU one when None).
        """
        cfg = self.config
        if generator is None:
            generator = torch.Generator(device="cpu")
        dtype = next(self.parameters()).dtype
        device = latent.device
        b, _, frames, height, width = latent.shape
        t_scale, h_scale, w_scale = cfg.scale
        content = ((frames - 1) * t_scale + 1, height * h_scale, width * w_scale)

        # Size floor: time repeats the last frame, space is edge-padded on both sides.
        min_t, min_h, min_w = cfg.min_latent_size
        x = _repeat_last(latent.to(dtype), 2, max(frames, min_t))
        x, h_before = _edge_pad_symmetric(x, 3, min_h)
        x, w_before = _edge_pad_symmetric(x, 4, min_w)
        full = ((x.shape[2] - 1) * t_scale + 1, x.shape[3] * h_scale, x.shape[4] * w_scale)
        s4, tiles = self.tile_schedule(x.shape, tiling)

        feat = self._stage4_input(_repeat_last(x, 2, x.shape[2] + cfg.trailing_pad_frames))
        steps = cfg.default_num_inference_steps
        timesteps = torch.linspace(1.0, 1.0 / steps, steps).to(device).unsqueeze(0).expand(b, -1)
        initial = None
        if not (steps == 1 and cfg.model_output_type == "x0"):
            initial = gaussian((b, cfg.out_channels, *full), generator, dtype=dtype, device=device)

        complementary = masks_sum_to_one(tiles, full)
        accumulate = torch.float16 if dtype == torch.bfloat16 else dtype
        groups = [list(g) for _, g in itertools.groupby(tiles, key=lambda t: t.target[0])]
        starts = [range(full[0])[g[0].target[0]].start if full[0] else 0 for g in groups]
        stub: tuple[torch.Tensor, torch.Tensor | None] | None = None

        def emit(buf: torch.Tensor, wts: torch.Tensor | None, start: int) -> torch.Tensor | None:
            keep = min(buf.shape[2], content[0] - start)
            if keep < 1:
                return None
            chunk = buf[:, :, :keep]
            if wts is not None:
                chunk = chunk / wts[:, :, :keep].clamp(min=weight_floor(wts.dtype))
            chunk = chunk.narrow(3, h_before * h_scale, content[1])
            return chunk.narrow(4, w_before * w_scale, content[2]).to(latent.dtype).contiguous()

        for gi, group in enumerate(groups):
            length = len(range(full[0])[group[0].target[0]])
            buffer = torch.zeros(
                b, cfg.out_channels, length, *full[1:], dtype=accumulate, device=device
            )
            weights = None if complementary else torch.zeros_like(buffer)
            for tile in group:
                self._decode_tile(
                    tile, feat, s4, full, initial, timesteps, generator, buffer, weights
                )
            if stub is not None:
                previous, previous_weights = stub
                n = previous.shape[2]
                previous += buffer[:, :, :n]
                buffer[:, :, :n] = previous
                if weights is not None and previous_weights is not None:
                    previous_weights += weights[:, :, :n]
                    weights[:, :, :n] = previous_weights
                stub = None
            if gi + 1 < len(groups):
                exclusive = min(max(0, starts[gi + 1] - starts[gi]), buffer.shape[2])
                chunk = emit(
                    buffer[:, :, :exclusive],
                    None if weights is None else weights[:, :, :exclusive],
                    starts[gi],
                )
                stub = (
                    buffer[:, :, exclusive:].clone(),
                    None if weights is None else weights[:, :, exclusive:].clone(),
                )
            else:
                chunk = emit(buffer, weights, starts[gi])
            if chunk is not None:
                yield chunk

    def _decode_tile(
        self,
        tile: Tile,
        feat: torch.Tensor,
        s4: tuple[int, int, int],
        full: tuple[int, int, int],
        initial: torch.Tensor | None,
        timesteps: torch.Tensor,
        generator: torch.Generator,
        buffer: torch.Tensor,
        weights: torch.Tensor | None,
    ) -> None:
        """Stages 4-5 on one tile, blended into the temporal group's `buffer`."""
        cfg = self.config
        t_src, h_src, w_src = tile.source
        t0, t1, _ = t_src.indices(s4[0])
        origin, trailing = t0 == 0, t1 == s4[0]
        rows, cols = range(feat.shape[2])[h_src], range(feat.shape[3])[w_src]
        part = (t1 - t0, len(rows), len(cols))
        tile_feat = feat[:, t0 : (feat.shape[1] if trailing else t1), h_src, w_src]
        target = [len(range(n)[sl]) for n, sl in zip(full, tile.target, strict=True)]
        stride = cfg.upsamples[-1][0]
        noise_shape = stage5_shape(
            part, stride, cfg.patch_size, cfg.stage5_kernel[0], origin=origin, trailing=trailing
        )
        b = buffer.shape[0]
        if initial is None:
            x_t = gaussian(
                (b, cfg.out_channels, *noise_shape), generator, dtype=feat.dtype, device=feat.device
            )
        else:
            # Cut from the whole-video noise, resized with the latent padding's edge rules.
            x_t = initial[:, :, tile.target[0], tile.target[1], tile.target[2]]
            x_t = _repeat_last(x_t, 2, noise_shape[0])
            for dim, size in ((3, noise_shape[1]), (4, noise_shape[2])):
                x_t = _resize_symmetric(x_t, dim, size)
        pixels = self._denoise(x_t, self._context(tile_feat, origin, trailing), timesteps)
        pixels = _repeat_last(pixels, 2, target[0])
        pixels = _resize_symmetric(_resize_symmetric(pixels, 3, target[1]), 4, target[2])
        pixels = pixels.to(buffer.dtype)
        region = (slice(None), slice(None), slice(0, target[0]), tile.target[1], tile.target[2])
        masks = [m.to(device=buffer.device, dtype=torch.float32) for m in tile.masks]
        scaled = pixels * masks[0].view(-1, 1, 1) * masks[1].view(-1, 1) * masks[2]
        buffer[region] += scaled
        if weights is not None:
            ones = torch.ones(pixels.shape, device=buffer.device, dtype=buffer.dtype)
            weights[region] += ones * masks[0].view(-1, 1, 1) * masks[1].view(-1, 1) * masks[2]

    def forward(
        self,
        latent: torch.Tensor,
        generator: torch.Generator | None = None,
        tiling: DiffusionTiling | None = None,
    ) -> torch.Tensor:
        """Decode the whole latent (chunks of `iter_decode` joined along time)."""
        return torch.cat(list(self.iter_decode(latent, generator, tiling)), dim=2)


def build_diffusion_vae_encoder(config: Mapping[str, Any]) -> nn.Module:
    """The conv encoder of a diffusion-VAE file (nested `vae.encoder` config) or of a conv one."""
    from ltx2cli.models.video_vae import build_video_encoder

    return build_video_encoder({"vae": encoder_vae_section(config)})


def build_video_decoder_of(config: Mapping[str, Any], **options: Any) -> nn.Module:
    """The video decoder a `vae` config describes: diffusion (`CausalDiffusionVAE`) or conv."""
    if is_diffusion_vae_config(config):
        if options:
            raise TypeError(f"unknown diffusion decoder options: {sorted(options)}")
        return build_diffusion_decoder(config)
    from ltx2cli.models.video_vae import build_video_decoder

    return build_video_decoder(config, **options)


def build_diffusion_decoder(config: Mapping[str, Any]) -> DiffusionVideoDecoder:
    """Build the decoder from a checkpoint's `config` metadata (or its `vae` section)."""
    return DiffusionVideoDecoder(DiffusionDecoderConfig.from_checkpoint_config(config))


# ---------------------------------------------------------------------------------------------
# On-disk key layout
# ---------------------------------------------------------------------------------------------

_RAW_T_EMBEDDER = {
    "t_embedder.mlp.0.": "t_embedder.timestep_embedder.linear_1.",
    "t_embedder.mlp.2.": "t_embedder.timestep_embedder.linear_2.",
}
_GATE_TARGETS = {
    "gate_msa": ("attn.proj.weight", "attn.proj.bias"),
    "gate_mlp": ("mlp.w_down.weight", "mlp.w_down.bias"),
    "gate_ctx": ("context_proj.weight", "context_proj.bias"),
}
IGNORED_RAW_KEYS = ("type_emb",)


def decoder_state_from_raw(raw: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """File keys (`decoder.` prefix removed) → module keys (ltx-2.5.md §2.2).

    `t_embedder.mlp.0/2` are renamed; legacy `gate_msa`/`gate_mlp`/`gate_ctx` tensors are
    folded into the Linear they scale (W ← g·W, b ← g·b in float32, cast back) and dropped;
    `coarse_*` heads and `type_emb` have no module and are dropped. The fused `qkv` stays fused
    (the module applies its thirds).
    """
    state: dict[str, torch.Tensor] = {}
    gates: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        leaf = key.rsplit(".", 1)[-1]
        if key in IGNORED_RAW_KEYS or key.startswith("coarse_") or ".coarse_" in key:
            continue
        if leaf in _GATE_TARGETS:
            gates[key] = value
            continue
        state[_renamed(key, _RAW_T_EMBEDDER)] = value
    for key, gate in gates.items():
        block, leaf = key.rsplit(".", 1)
        g = gate.to(torch.float32).reshape(-1)
        for target in _GATE_TARGETS[leaf]:
            name = f"{block}.{target}"
            if name not in state:
                continue
            tensor = state[name]
            scaled = tensor.to(torch.float32) * (g.view(-1, 1) if tensor.ndim == 2 else g)
            state[name] = scaled.to(tensor.dtype)
    return state


def raw_decoder_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Module keys → the file's layout (`t_embedder.mlp.{0,2}`); inverse of
    `decoder_state_from_raw` for files without gates."""
    inverse = {new: old for old, new in _RAW_T_EMBEDDER.items()}
    return {_renamed(key, inverse): value for key, value in state.items()}


def _renamed(key: str, prefixes: Mapping[str, str]) -> str:
    for old, new in prefixes.items():
        if key.startswith(old):
            return new + key.removeprefix(old)
    return key
