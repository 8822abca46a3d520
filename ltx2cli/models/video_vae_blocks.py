"""Building blocks of the LTX-2 video VAE.

- Every 3-D convolution is a `CausalConv3d`: the kernel pads space itself (with the configured
  mode) while time is padded here by repeating edge frames, causally (two copies of the first
  frame, encoder) or symmetrically (one copy of each edge frame, decoder).
- Normalisation is `PixelNorm` (RMS over channels, eps 1e-8) or GroupNorm(32) when the config
  asks for it; residual blocks carry optional AdaLN timestep modulation and noise injection.
  The timestep embedding is the transformer's (`layers.TimestepEmbedder`): the reference VAE
  uses the same PixArt module (256 sinusoids, cosines first, no shift, scale 1).
- Resampling is space-to-depth (encoder) and depth-to-space (decoder) with channel order
  `(c, p_t, p_h, p_w)`; a temporal stride of 2 pads (encoder) or drops (decoder) one frame so
  that F = 8k + 1 frames map to k + 1 latent frames.
- Pixel patchify uses the checkpoint's channel order `c·p² + r·p + q` (r = width offset,
  q = height offset), which `conv_in` / `conv_out` weights depend on.
- Module and attribute names mirror the checkpoint keys; nothing here holds a tensor that is
  not in the state dict, so every block can be built on the meta device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ltx2cli.models.layers import TimestepEmbedder
from ltx2cli.models.noise import gaussian, require_generator

PIXEL_NORM_EPS = 1e-8
GROUP_NORM_EPS = 1e-6
GROUP_NORM_GROUPS = 32


# ---------------------------------------------------------------------------------------------
# Tensor helpers
# ---------------------------------------------------------------------------------------------


def pixel_patchify(video: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, F, H, W) → (B, C·p², F, H/p, W/p), channel index `c·p² + r·p + q`.

    q is the row (height) offset and r the column (width) offset inside the p×p patch, so the
    width offset varies more slowly than the height offset.
    """
    if patch_size == 1:
        return video
    b, c, f, h, w = video.shape
    p = patch_size
    x = video.reshape(b, c, f, h // p, p, w // p, p)  # (b, c, f, h, q, w, r)
    x = x.permute(0, 1, 6, 4, 2, 3, 5)  # (b, c, r, q, f, h, w)
    return x.reshape(b, c * p * p, f, h // p, w // p)


def pixel_unpatchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Exact inverse of `pixel_patchify`: (B, C·p², F, h, w) → (B, C, F, h·p, w·p)."""
    if patch_size == 1:
        return x
    b, cpp, f, h, w = x.shape
    p = patch_size
    x = x.reshape(b, cpp // (p * p), p, p, f, h, w)  # (b, c, r, q, f, h, w)
    x = x.permute(0, 1, 4, 5, 3, 6, 2)  # (b, c, f, h, q, w, r)
    return x.reshape(b, cpp // (p * p), f, h * p, w * p)


def space_to_depth(x: torch.Tensor, stride: tuple[int, int, int]) -> torch.Tensor:
    """(B, C, D·s0, H·s1, W·s2) → (B, C·s0·s1·s2, D, H, W), channel order (c, s0, s1, s2)."""
    b, c, d, h, w = x.shape
    s0, s1, s2 = stride
    x = x.reshape(b, c, d // s0, s0, h // s1, s1, w // s2, s2)
    x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(b, c * s0 * s1 * s2, d // s0, h // s1, w // s2)


def depth_to_space(x: torch.Tensor, stride: tuple[int, int, int]) -> torch.Tensor:
    """Inverse of `space_to_depth`: (B, C·s0·s1·s2, D, H, W) → (B, C, D·s0, H·s1, W·s2)."""
    b, cs, d, h, w = x.shape
    s0, s1, s2 = stride
    c = cs // (s0 * s1 * s2)
    x = x.reshape(b, c, s0, s1, s2, d, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, c, d * s0, h * s1, w * s2)


def init_fan_in_uniform(module: nn.Module, generator: torch.Generator | None) -> None:
    """Deterministic random weights for tiny checkpoints and tests: every conv and linear gets
    PyTorch's default fan-in bound `U(±1/sqrt(fan_in))` for weight and bias, drawn from
    `generator` in module order; GroupNorms become the identity."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d | nn.Conv3d | nn.Linear):
                bound = 1.0 / math.sqrt(m.weight[0].numel())
                m.weight.uniform_(-bound, bound, generator=generator)
                m.bias.uniform_(-bound, bound, generator=generator)
            elif isinstance(m, nn.GroupNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------


class PixelNorm(nn.Module):
    """`x / sqrt(mean_c(x²) + eps)` at every (t, h, w) location."""

    def __init__(self, eps: float = PIXEL_NORM_EPS) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(torch.mean(x**2, dim=1, keepdim=True) + self.eps)


def make_norm(kind: str, channels: int) -> nn.Module:
    """The VAE's `norm_layer`: weightless PixelNorm or affine GroupNorm(32, eps 1e-6)."""
    if kind == "group_norm":
        return nn.GroupNorm(GROUP_NORM_GROUPS, channels, eps=GROUP_NORM_EPS)
    return PixelNorm()


class CausalConv3d(nn.Module):
    """3-D conv that pads time by repeating edge frames; key `<name>.conv.{weight,bias}`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int | tuple[int, int, int] = 1,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.time_kernel_size = kernel_size
        self.conv = nn.Conv3d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(0, kernel_size // 2, kernel_size // 2),
            padding_mode=padding_mode,
        )

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        pad = self.time_kernel_size - 1
        if pad:
            first = x[:, :, :1]
            if causal:
                x = torch.cat([first.expand(-1, -1, pad, -1, -1), x], dim=2)
            else:
                last = x[:, :, -1:]
                half = pad // 2
                x = torch.cat(
                    [first.expand(-1, -1, half, -1, -1), x, last.expand(-1, -1, half, -1, -1)],
                    dim=2,
                )
        return self.conv(x)


class PerChannelStatistics(nn.Module):
    """Latent statistics buffers `mean-of-means` / `std-of-means` (hyphenated, as on disk)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("std-of-means", torch.ones(channels))
        self.register_buffer("mean-of-means", torch.zeros(channels))

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean = self.get_buffer("mean-of-means").view(shape).to(x)
        std = self.get_buffer("std-of-means").view(shape).to(x)
        return mean, std

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return x * std + mean


# ---------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------


class ResnetBlock3D(nn.Module):
    """norm → [AdaLN] → SiLU → conv1 → [noise] → norm → [AdaLN] → SiLU → conv2 → [noise] → + x."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        norm_layer: str,
        padding_mode: str,
        inject_noise: bool = False,
        timestep_conditioning: bool = False,
    ) -> None:
        super().__init__()
        self.inject_noise = inject_noise
        self.timestep_conditioning = timestep_conditioning
        self.norm1 = make_norm(norm_layer, in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, padding_mode=padding_mode)
        self.norm2 = make_norm(norm_layer, out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels, padding_mode=padding_mode)
        if inject_noise:
            # Both scales are sized by the input width in the reference (equal widths in practice).
            self.per_channel_scale1 = nn.Parameter(torch.zeros(in_channels, 1, 1))
            self.per_channel_scale2 = nn.Parameter(torch.zeros(in_channels, 1, 1))
        if in_channels != out_channels:
            self.norm3 = nn.GroupNorm(1, in_channels, eps=GROUP_NORM_EPS)
            self.conv_shortcut = nn.Conv3d(in_channels, out_channels, kernel_size=1)
        if timestep_conditioning:
            # Rows: shift1, scale1, shift2, scale2.
            self.scale_shift_table = nn.Parameter(torch.zeros(4, in_channels))

    @staticmethod
    def _spatial_noise(
        x: torch.Tensor, scale: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        # One (H, W) noise map shared by all channels and frames, scaled per channel.
        noise = gaussian(
            x.shape[-2:], require_generator(generator, "noise injection"), x.dtype, x.device
        )
        return x + (noise[None] * scale.to(x))[None, :, None]

    def forward(
        self,
        x: torch.Tensor,
        causal: bool = True,
        timestep_embed: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        h = self.norm1(x)
        if self.timestep_conditioning:
            if timestep_embed is None:
                raise ValueError("a timestep-conditioned VAE block needs a timestep embedding")
            b = x.shape[0]
            table = self.scale_shift_table.to(h)[None, :, :, None, None, None]
            ada = table + timestep_embed.reshape(b, 4, -1, *timestep_embed.shape[-3:])
            shift1, scale1, shift2, scale2 = ada.unbind(dim=1)  # each (B, C, 1, 1, 1)
            h = h * (1 + scale1) + shift1
        h = self.conv1(F.silu(h), causal=causal)
        if self.inject_noise:
            h = self._spatial_noise(h, self.per_channel_scale1, generator)
        h = self.norm2(h)
        if self.timestep_conditioning:
            h = h * (1 + scale2) + shift2
        h = self.conv2(F.silu(h), causal=causal)
        if self.inject_noise:
            h = self._spatial_noise(h, self.per_channel_scale2, generator)
        if hasattr(self, "conv_shortcut"):
            x = self.conv_shortcut(self.norm3(x))
        return x + h


class ResStage(nn.Module):
    """`res_x`: `num_layers` residual blocks at one width, with an optional shared time embedder."""

    def __init__(
        self,
        channels: int,
        num_layers: int,
        *,
        norm_layer: str,
        padding_mode: str,
        inject_noise: bool = False,
        timestep_conditioning: bool = False,
    ) -> None:
        super().__init__()
        self.timestep_conditioning = timestep_conditioning
        if timestep_conditioning:
            self.time_embedder = TimestepEmbedder(4 * channels)
        self.res_blocks = nn.ModuleList(
            ResnetBlock3D(
                channels,
                channels,
                norm_layer=norm_layer,
                padding_mode=padding_mode,
                inject_noise=inject_noise,
                timestep_conditioning=timestep_conditioning,
            )
            for _ in range(num_layers)
        )

    def forward(
        self,
        x: torch.Tensor,
        causal: bool = True,
        timestep: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        embed = None
        if self.timestep_conditioning:
            if timestep is None:
                raise ValueError("a timestep-conditioned VAE stage needs a timestep")
            embed = self.time_embedder(timestep, x.dtype)
            embed = embed.view(x.shape[0], -1, 1, 1, 1)  # (B, 4C, 1, 1, 1)
        for block in self.res_blocks:
            x = block(x, causal=causal, timestep_embed=embed, generator=generator)
        return x


class SpaceToDepthDownsample(nn.Module):
    """Encoder `compress_*_res`: space-to-depth of a conv, plus a channel-averaged skip path."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: tuple[int, int, int], padding_mode: str
    ) -> None:
        super().__init__()
        self.stride = stride
        volume = math.prod(stride)
        self.group_size = in_channels * volume // out_channels
        self.conv = CausalConv3d(in_channels, out_channels // volume, padding_mode=padding_mode)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        if self.stride[0] == 2:
            x = torch.cat([x[:, :, :1], x], dim=2)  # F = 2k + 1 → 2k + 2 frames
        skip = space_to_depth(x, self.stride)
        b, c, d, h, w = skip.shape
        skip = skip.view(b, c // self.group_size, self.group_size, d, h, w).mean(dim=2)
        return space_to_depth(self.conv(x, causal=causal), self.stride) + skip


class DepthToSpaceUpsample(nn.Module):
    """Decoder `compress_*`: conv to s·C/m channels, depth-to-space, drop frame 0 if temporal."""

    def __init__(
        self,
        in_channels: int,
        stride: tuple[int, int, int],
        *,
        reduction: int,
        residual: bool,
        padding_mode: str,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.reduction = reduction
        self.residual = residual
        out = math.prod(stride) * in_channels // reduction
        self.conv = CausalConv3d(in_channels, out, padding_mode=padding_mode)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        temporal = self.stride[0] == 2
        skip = None
        if self.residual:
            skip = depth_to_space(x, self.stride)
            skip = skip.repeat(1, math.prod(self.stride) // self.reduction, 1, 1, 1)
            if temporal:
                skip = skip[:, :, 1:]
        y = depth_to_space(self.conv(x, causal=causal), self.stride)
        if temporal:
            y = y[:, :, 1:]  # T → 2T − 1
        return y if skip is None else y + skip
