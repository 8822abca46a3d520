"""LTX-2 / LTX-2.3 video VAE: causal conv encoder, conv decoder, tiled encode and decode.

Design choices:
- One frozen `VideoVAEConfig` read from the checkpoint's `config.vae` section serves both halves;
  block lists are kept encoder-side first, and the decoder builds them reversed.
- Pixels (B, 3, F, H, W) in [-1, 1], F = 8k + 1, H and W multiples of 32, map to the
  normalised latent (B, 128, k + 1, H/32, W/32): only the means of the encoder's output are
  used, normalised with the per-channel statistics; the decoder un-normalises first.
- The decoder's timestep conditioning (decode noise 0.025, decode timestep 0.05 scaled by the
  stored `timestep_scale_multiplier`) is built when the config says so or lacks the key (the
  reference default); the released 19B and 2.3 configs say false, and the loader lets the
  file's tensors overrule a config that disagrees with them.
- Tile layouts and blending live in `tiling.py` (decode: trapezoids on the latent grid; encode:
  rectangular latent masks); decoded temporal groups are streamed as soon as they are final.
- Module names mirror the checkpoint keys after stripping `vae.encoder.` / `vae.decoder.`;
  `vae.per_channel_statistics.*` lives under `per_channel_statistics.` in both halves.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.models.layers import TimestepEmbedder
from ltx2cli.models.noise import gaussian, require_generator
from ltx2cli.models.tiling import blend_tiles, decode_tile_layout, encode_tile_layout
from ltx2cli.models.video_vae_blocks import (
    CausalConv3d,
    DepthToSpaceUpsample,
    PerChannelStatistics,
    ResnetBlock3D,
    ResStage,
    SpaceToDepthDownsample,
    init_fan_in_uniform,
    make_norm,
    pixel_patchify,
    pixel_unpatchify,
)

logger = logging.getLogger(__name__)

CONV_VAE_CLASS = "CausalVideoAutoencoder"
NORM_LAYERS = ("pixel_norm", "group_norm")
LOG_VAR_MODES = ("uniform", "per_channel", "constant")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
DECODE_TIMESTEP = 0.05
DECODE_NOISE_SCALE = 0.025
TIMESTEP_SCALE_MULTIPLIER_INIT = 1000.0

# Reference tiling defaults (HEAD pipelines): 768 px tiles with 64 px overlap, 80 frames / 24.
SPATIAL_TILE = 768
SPATIAL_OVERLAP = 64
TEMPORAL_TILE = 80
TEMPORAL_OVERLAP = 24

_STRIDES = {"time": (2, 1, 1), "space": (1, 2, 2), "all": (2, 2, 2)}
_BLOCK_PARAMS = frozenset({"num_layers", "multiplier", "residual", "inject_noise"})
ENCODER_BLOCKS = frozenset(
    {"res_x", "res_x_y", "compress_time", "compress_space", "compress_all", "compress_all_x_y"}
    | {"compress_time_res", "compress_space_res", "compress_all_res"}
)
DECODER_BLOCKS = frozenset({"res_x", "res_x_y", "compress_time", "compress_space", "compress_all"})


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VaeBlock:
    """One entry of `encoder_blocks` / `decoder_blocks`; `multiplier` None = the block default."""

    name: str
    num_layers: int = 1
    multiplier: int | None = None
    residual: bool = False
    inject_noise: bool = False

    @classmethod
    def parse(cls, entry: Any, key: str) -> VaeBlock:
        """`["res_x", {"num_layers": 4}]` or `["res_x", 4]` → VaeBlock."""
        if not isinstance(entry, list | tuple) or len(entry) != 2 or not isinstance(entry[0], str):
            raise CheckpointError(f"vae.{key}: entry {entry!r} is not [name, params]")
        name, params = entry
        if isinstance(params, int):
            params = {"num_layers": params}
        if not isinstance(params, Mapping):
            raise CheckpointError(f"vae.{key}: block {name!r} has params {params!r}")
        unknown = sorted(set(params) - _BLOCK_PARAMS)
        if unknown:
            raise CheckpointError(f"vae.{key}: block {name!r} has unsupported param {unknown[0]!r}")
        return cls(name=name, **{k: params[k] for k in params})

    def stride(self) -> tuple[int, int, int] | None:
        """Resampling stride (time, height, width), or None for a width-preserving block."""
        if not self.name.startswith("compress_"):
            return None
        return _STRIDES[self.name.removeprefix("compress_").split("_")[0]]


def _blocks(*entries: tuple[str, dict[str, Any]]) -> tuple[VaeBlock, ...]:
    return tuple(VaeBlock(name, **params) for name, params in entries)


# The released 19B block lists (encoder-side first for both halves).
DEFAULT_ENCODER_BLOCKS = _blocks(
    ("res_x", {"num_layers": 4}),
    ("compress_space_res", {"multiplier": 2}),
    ("res_x", {"num_layers": 6}),
    ("compress_time_res", {"multiplier": 2}),
    ("res_x", {"num_layers": 6}),
    ("compress_all_res", {"multiplier": 2}),
    ("res_x", {"num_layers": 2}),
    ("compress_all_res", {"multiplier": 2}),
    ("res_x", {"num_layers": 2}),
)
DEFAULT_DECODER_BLOCKS = _blocks(
    ("res_x", {"num_layers": 5}),
    ("compress_all", {"multiplier": 2, "residual": True}),
    ("res_x", {"num_layers": 5}),
    ("compress_all", {"multiplier": 2, "residual": True}),
    ("res_x", {"num_layers": 5}),
    ("compress_all", {"multiplier": 2, "residual": True}),
    ("res_x", {"num_layers": 5}),
)


def _scale_factors(blocks: tuple[VaeBlock, ...], patch_size: int) -> tuple[int, int, int]:
    time = space = 1
    for block in blocks:
        stride = block.stride()
        if stride is not None:
            time, space = time * stride[0], space * stride[1]
    return time, space * patch_size, space * patch_size


@dataclass(frozen=True)
class VideoVAEConfig:
    """The `vae` section of the checkpoint config; defaults are the released 19B VAE."""

    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 128
    patch_size: int = 4
    encoder_blocks: tuple[VaeBlock, ...] = DEFAULT_ENCODER_BLOCKS
    decoder_blocks: tuple[VaeBlock, ...] = DEFAULT_DECODER_BLOCKS
    norm_layer: str = "pixel_norm"
    latent_log_var: str = "uniform"
    causal_decoder: bool = False
    timestep_conditioning: bool = False
    decoder_base_channels: int = 128
    encoder_padding_mode: str = "zeros"
    decoder_padding_mode: str = "reflect"
    dims: int = 3

    def __post_init__(self) -> None:
        if self.dims != 3:
            raise CheckpointError(f"vae.dims = {self.dims!r} is not supported (only 3-D VAEs)")
        for key in ("in_channels", "out_channels", "latent_channels", "patch_size"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise CheckpointError(f"vae.{key} = {getattr(self, key)!r} must be a positive int")
        if self.decoder_base_channels < 1:
            raise CheckpointError(f"vae.decoder_base_channels = {self.decoder_base_channels!r}")
        if self.norm_layer not in NORM_LAYERS:
            raise CheckpointError(
                f"vae.norm_layer = {self.norm_layer!r} is not one of {NORM_LAYERS}"
            )
        if self.latent_log_var not in LOG_VAR_MODES:
            raise CheckpointError(
                f"vae.latent_log_var = {self.latent_log_var!r} is not one of {LOG_VAR_MODES}"
            )
        for key in ("encoder_padding_mode", "decoder_padding_mode"):
            if getattr(self, key) not in PADDING_MODES:
                raise CheckpointError(f"vae spatial padding mode {getattr(self, key)!r} unknown")
        for key, allowed in (
            ("encoder_blocks", ENCODER_BLOCKS),
            ("decoder_blocks", DECODER_BLOCKS),
        ):
            for block in getattr(self, key):
                if block.name not in allowed:
                    raise CheckpointError(f"vae.{key}: block type {block.name!r} is not supported")
                if block.num_layers < 0 or (block.multiplier is not None and block.multiplier < 1):
                    raise CheckpointError(f"vae.{key}: block {block!r} has invalid sizes")

    @classmethod
    def from_checkpoint_config(cls, config: Mapping[str, Any]) -> VideoVAEConfig:
        """Read `config["vae"]` (or a bare `vae` section) as the reference configurator does.

        Absent keys take the reference configurator's defaults, which differ from this class's
        (released-file) defaults in two places: absent block lists are empty, and an absent
        `timestep_conditioning` means True. Both released files state all of these keys.
        """
        section = config.get("vae", config)
        class_name = section.get("_class_name", CONV_VAE_CLASS)
        if class_name != CONV_VAE_CLASS:
            raise CheckpointError(
                f"vae._class_name = {class_name!r} is not supported (only {CONV_VAE_CLASS})"
            )

        def blocks(key: str) -> tuple[VaeBlock, ...]:
            return tuple(VaeBlock.parse(entry, key) for entry in section.get(key, ()))

        return cls(
            in_channels=section.get("in_channels", 3),
            out_channels=section.get("out_channels", 3),
            latent_channels=section.get("latent_channels", 128),
            patch_size=section.get("patch_size", 4),
            encoder_blocks=blocks("encoder_blocks"),
            decoder_blocks=blocks("decoder_blocks"),
            norm_layer=section.get("norm_layer", "pixel_norm"),
            latent_log_var=section.get("latent_log_var", "uniform"),
            causal_decoder=bool(section.get("causal_decoder", False)),
            # Absent means True, as in the reference configurator (and the loader, which sets
            # the key from the file's tensors when they disagree with the config).
            timestep_conditioning=bool(section.get("timestep_conditioning", True)),
            decoder_base_channels=section.get("decoder_base_channels", 128),
            encoder_padding_mode=section.get(
                "spatial_padding_mode", section.get("encoder_spatial_padding_mode", "zeros")
            ),
            decoder_padding_mode=section.get("spatial_padding_mode", "reflect"),
            dims=section.get("dims", 3),
        )

    @property
    def encoder_scale(self) -> tuple[int, int, int]:
        """Pixels per latent along (time, height, width) for the encoder, e.g. (8, 32, 32)."""
        return _scale_factors(self.encoder_blocks, self.patch_size)

    @property
    def decoder_scale(self) -> tuple[int, int, int]:
        """Pixels per latent along (time, height, width) for the decoder."""
        return _scale_factors(self.decoder_blocks, self.patch_size)

    @property
    def decoder_bottleneck_channels(self) -> int:
        """Width after `conv_in`: base channels times every upsampling block's multiplier."""
        channels = self.decoder_base_channels
        for block in self.decoder_blocks:
            if block.name.startswith("compress_"):
                channels *= block.multiplier or 1
            elif block.name == "res_x_y":
                channels *= block.multiplier or 2
        return channels


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _init_vae_weights(module: nn.Module, generator: torch.Generator | None) -> None:
    """Deterministic random weights of a sensible scale (fan-in uniform, like PyTorch's default)."""
    init_fan_in_uniform(module, generator)
    with torch.no_grad():
        for name, param in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "timestep_scale_multiplier":
                param.fill_(TIMESTEP_SCALE_MULTIPLIER_INIT)
            elif leaf.endswith("scale_shift_table") or leaf.startswith("per_channel_scale"):
                param.normal_(0.0, 0.1, generator=generator)
        stats = module.per_channel_statistics
        stats.get_buffer("mean-of-means").normal_(0.0, 0.1, generator=generator)
        stats.get_buffer("std-of-means").uniform_(0.5, 1.5, generator=generator)


def _check_pixels(video: torch.Tensor, scale: tuple[int, int, int]) -> torch.Tensor:
    """Crop to F = t·k + 1 frames (as the reference does, with a warning); check H and W."""
    if video.ndim != 5:
        raise UsageError(f"video must be (B, C, F, H, W), got shape {tuple(video.shape)}")
    frames, height, width = video.shape[2:]
    t, h, w = scale
    if height % h or width % w:
        raise UsageError(
            f"video size {height}x{width} is not a multiple of {h}x{w}",
            f"resize to multiples of {h}, e.g. {height // h * h}x{width // w * w}",
        )
    extra = (frames - 1) % t
    if extra:
        logger.warning("%d frames is not %d·k + 1; dropping the last %d", frames, t, extra)
        video = video[:, :, : frames - extra]
    return video


# ---------------------------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------------------------


class _LatentSide(nn.Module):
    """What the encoder and the decoder share: the latent statistics and weight init."""

    per_channel_statistics: PerChannelStatistics

    def normalize(self, latent: torch.Tensor) -> torch.Tensor:
        """Raw latent means → normalised latent: `(x − mean-of-means) / std-of-means`."""
        return self.per_channel_statistics.normalize(latent)

    def denormalize(self, latent: torch.Tensor) -> torch.Tensor:
        """Normalised latent → raw means: `x · std-of-means + mean-of-means`."""
        return self.per_channel_statistics.denormalize(latent)

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Fill with deterministic random weights (tiny checkpoints, tests)."""
        _init_vae_weights(self, generator)


class VideoEncoder(_LatentSide):
    """Pixels (B, 3, 8k+1, H, W) in [-1, 1] → normalised latent means (B, C, k+1, H/32, W/32)."""

    def __init__(self, config: VideoVAEConfig) -> None:
        super().__init__()
        self.config = config
        pad = config.encoder_padding_mode
        c = config.latent_channels
        self.per_channel_statistics = PerChannelStatistics(config.latent_channels)
        self.conv_in = CausalConv3d(config.in_channels * config.patch_size**2, c, padding_mode=pad)
        blocks: list[nn.Module] = []
        for block in config.encoder_blocks:
            module, c = self._make_block(block, c)
            blocks.append(module)
        self.down_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = make_norm(config.norm_layer, c)
        # "uniform"/"constant": C means + one shared log-variance; "per_channel": C + C.
        latent = config.latent_channels
        head = 2 * latent if config.latent_log_var == "per_channel" else latent + 1
        self.conv_out = CausalConv3d(c, head, padding_mode=pad)

    def _make_block(self, block: VaeBlock, c: int) -> tuple[nn.Module, int]:
        pad, norm = self.config.encoder_padding_mode, self.config.norm_layer
        stride = block.stride()
        if block.name == "res_x":
            return ResStage(c, block.num_layers, norm_layer=norm, padding_mode=pad), c
        if block.name == "res_x_y":
            out = c * (block.multiplier or 2)
            return ResnetBlock3D(c, out, norm_layer=norm, padding_mode=pad), out
        if block.name.endswith("_res"):
            out = c * (block.multiplier or 2)
            return SpaceToDepthDownsample(c, out, stride, pad), out
        # Plain strided conv, held directly (keys `down_blocks.i.conv.*`, one `conv` level).
        out = c * (block.multiplier or 2) if block.name == "compress_all_x_y" else c
        return CausalConv3d(c, out, stride=stride, padding_mode=pad), out

    @property
    def scale(self) -> tuple[int, int, int]:
        """Pixels per latent along (time, height, width), e.g. (8, 32, 32)."""
        return self.config.encoder_scale

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        # 1 patchify: (B, 3, F, H, W) → (B, 3·p², F, H/p, W/p)
        x = pixel_patchify(_check_pixels(video, self.scale), self.config.patch_size)
        # 2 causal conv trunk with space-to-depth downsampling → (B, C_top, F', H', W')
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        # 3 head: the means are the first `latent_channels` outputs; the log-variance is unused
        x = self.conv_out(F.silu(self.conv_norm_out(x)))
        return self.normalize(x[:, : self.config.latent_channels])

    def tiled_encode(
        self,
        video: torch.Tensor,
        *,
        spatial_tile: int | None = SPATIAL_TILE,
        spatial_overlap: int = SPATIAL_OVERLAP,
        temporal_tile: int | None = TEMPORAL_TILE,
        temporal_overlap: int = TEMPORAL_OVERLAP,
    ) -> torch.Tensor:
        """Encode in overlapping tiles; sizes in pixels / frames, None leaves that axis whole.

        Overlaps below 64 px / 16 frames are raised to them; each tile's edge latents get
        weight 0 (`encode_tile_layout`). The result is on the encoder's device and dtype.
        """
        video = _check_pixels(video, self.scale)
        layout = encode_tile_layout(
            tuple(video.shape[2:]),
            self.scale,
            spatial_tile=spatial_tile,
            spatial_overlap=spatial_overlap,
            temporal_tile=temporal_tile,
            temporal_overlap=temporal_overlap,
        )
        param = next(self.parameters())
        chunks = blend_tiles(
            layout,
            lambda region: self(video[region].to(device=param.device, dtype=param.dtype)),
            batch=video.shape[0],
            channels=self.config.latent_channels,
            device=param.device,
            dtype=param.dtype,
        )
        return torch.cat(list(chunks), dim=2)


# ---------------------------------------------------------------------------------------------
# Decoder
# ---------------------------------------------------------------------------------------------


class VideoDecoder(_LatentSide):
    """Normalised latent (B, C, F', H', W') → pixels (B, 3, 8(F'−1)+1, 32H', 32W') in ~[-1, 1]."""

    def __init__(
        self,
        config: VideoVAEConfig,
        *,
        decode_timestep: float = DECODE_TIMESTEP,
        decode_noise_scale: float = DECODE_NOISE_SCALE,
    ) -> None:
        super().__init__()
        self.config = config
        self.causal = config.causal_decoder
        self.timestep_conditioning = config.timestep_conditioning
        self.decode_timestep = decode_timestep
        self.decode_noise_scale = decode_noise_scale
        pad = config.decoder_padding_mode
        c = config.decoder_bottleneck_channels
        self.per_channel_statistics = PerChannelStatistics(config.latent_channels)
        self.conv_in = CausalConv3d(config.latent_channels, c, padding_mode=pad)
        blocks: list[nn.Module] = []
        for block in reversed(config.decoder_blocks):
            module, c = self._make_block(block, c)
            blocks.append(module)
        self.up_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = make_norm(config.norm_layer, c)
        self.conv_out = CausalConv3d(
            c, config.out_channels * config.patch_size**2, padding_mode=pad
        )
        if self.timestep_conditioning:
            self.timestep_scale_multiplier = nn.Parameter(
                torch.full((), TIMESTEP_SCALE_MULTIPLIER_INIT)
            )
            self.last_time_embedder = TimestepEmbedder(2 * c)
            self.last_scale_shift_table = nn.Parameter(torch.zeros(2, c))  # rows: shift, scale

    def _make_block(self, block: VaeBlock, c: int) -> tuple[nn.Module, int]:
        pad, norm = self.config.decoder_padding_mode, self.config.norm_layer
        if block.name == "res_x":
            stage = ResStage(
                c,
                block.num_layers,
                norm_layer=norm,
                padding_mode=pad,
                inject_noise=block.inject_noise,
                timestep_conditioning=self.timestep_conditioning,
            )
            return stage, c
        if block.name == "res_x_y":
            out = c // (block.multiplier or 2)
            res = ResnetBlock3D(
                c, out, norm_layer=norm, padding_mode=pad, inject_noise=block.inject_noise
            )
            return res, out
        reduction = block.multiplier or 1
        # The reference honours `residual` on compress_all only.
        upsample = DepthToSpaceUpsample(
            c,
            block.stride(),
            reduction=reduction,
            residual=block.residual and block.name == "compress_all",
            padding_mode=pad,
        )
        return upsample, c // reduction

    @property
    def scale(self) -> tuple[int, int, int]:
        """Pixels per latent along (time, height, width), e.g. (8, 32, 32)."""
        return self.config.decoder_scale

    def forward(
        self,
        latent: torch.Tensor,
        timestep: torch.Tensor | float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decode; `timestep` (default 0.05) and `generator` (the pipeline's, for decode noise)
        matter only for a timestep-conditioned decoder, which requires the generator."""
        b = latent.shape[0]
        x = latent.to(next(self.parameters()).dtype)
        # 1 decode noise in normalised space, then un-normalise
        if self.timestep_conditioning:
            noise = gaussian(
                x.shape, require_generator(generator, "the decoder"), x.dtype, x.device
            )
            x = noise * self.decode_noise_scale + (1.0 - self.decode_noise_scale) * x
        x = self.denormalize(x)
        if self.timestep_conditioning:
            if timestep is None:
                timestep = self.decode_timestep
            if not isinstance(timestep, torch.Tensor):
                timestep = torch.full((b,), float(timestep), device=x.device, dtype=x.dtype)
        # 2 trunk: conv_in → res stages and depth-to-space upsampling
        x = self.conv_in(x, causal=self.causal)  # (B, C_bottleneck, F', H', W')
        scaled_t = None
        if self.timestep_conditioning:
            scaled_t = timestep * self.timestep_scale_multiplier.to(x)
        for block in self.up_blocks:
            if isinstance(block, ResStage):
                x = block(x, causal=self.causal, timestep=scaled_t, generator=generator)
            elif isinstance(block, ResnetBlock3D):
                x = block(x, causal=self.causal, generator=generator)
            else:
                x = block(x, causal=self.causal)
        # 3 head: norm → [final AdaLN] → SiLU → conv_out → unpatchify
        x = self.conv_norm_out(x)
        if self.timestep_conditioning:
            embed = self.last_time_embedder(scaled_t, x.dtype).view(b, 2, -1, 1, 1, 1)
            table = self.last_scale_shift_table.to(x)[None, :, :, None, None, None]
            shift, scale = (table + embed).unbind(dim=1)
            x = x * (1 + scale) + shift
        x = self.conv_out(F.silu(x), causal=self.causal)  # (B, 3·p², F, H/p, W/p)
        return pixel_unpatchify(x, self.config.patch_size).to(latent.dtype)

    def iter_tiled_decode(
        self,
        latent: torch.Tensor,
        *,
        spatial_tile: int | None = SPATIAL_TILE,
        spatial_overlap: int = SPATIAL_OVERLAP,
        temporal_tile: int | None = TEMPORAL_TILE,
        temporal_overlap: int = TEMPORAL_OVERLAP,
        aspect_coupled: bool = True,
        timestep: torch.Tensor | float | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[torch.Tensor]:
        """Decode in overlapping tiles, yielding (B, 3, f, H, W) chunks in frame order.

        Sizes are in pixels / frames (None leaves that axis whole). With `aspect_coupled`
        the spatial tile applies to the long side and the short side gets a proportional tile
        (the reference pipelines' layout). Frames are yielded as soon as no later temporal
        tile can touch them.
        """
        layout = decode_tile_layout(
            tuple(latent.shape[2:]),
            self.scale,
            spatial_tile=spatial_tile,
            spatial_overlap=spatial_overlap,
            temporal_tile=temporal_tile,
            temporal_overlap=temporal_overlap,
            aspect_coupled=aspect_coupled,
        )
        yield from blend_tiles(
            layout,
            lambda region: self(latent[region], timestep, generator),
            batch=latent.shape[0],
            channels=self.config.out_channels,
            device=latent.device,
            dtype=latent.dtype,
        )

    def tiled_decode(self, latent: torch.Tensor, **tiling: Any) -> torch.Tensor:
        """`iter_tiled_decode` gathered into one tensor (same keyword arguments)."""
        return torch.cat(list(self.iter_tiled_decode(latent, **tiling)), dim=2)


# ---------------------------------------------------------------------------------------------
# Memory estimate and builders
# ---------------------------------------------------------------------------------------------


def estimate_decode_bytes(
    config: VideoVAEConfig,
    frames: int,
    height: int,
    width: int,
    *,
    batch: int = 1,
    element_size: int = 2,
) -> int:
    """Approximate peak activation bytes of one untiled decode to `frames`×`height`×`width`.

    Walks the decoder's stages and counts the tensors alive around each conv (input kept for
    the residual, normalised copy, time-padded copy, output; for depth-to-space also the
    rearranged copy and the residual). Weights are not included. Use it with a tile's pixel
    size to size tiles, or with the full size to decide whether to tile at all.
    """
    t_scale, h_scale, w_scale = config.decoder_scale
    t, h, w = (frames - 1) // t_scale + 1, height // h_scale, width // w_scale
    c = config.decoder_bottleneck_channels
    peak = (config.latent_channels * 2 + c) * t * h * w  # conv_in: input, padded input, output
    for block in reversed(config.decoder_blocks):
        volume = t * h * w
        if block.name == "res_x":
            peak = max(peak, 4 * c * volume)
        elif block.name == "res_x_y":
            out = c // (block.multiplier or 2)
            peak = max(peak, (3 * c + 2 * out) * volume)
            c = out
        else:
            stride = block.stride()
            reduction = block.multiplier or 1
            expanded = math.prod(stride) * c // reduction * volume
            copies = 3 if block.residual else 2  # conv output, rearranged copy, [residual]
            peak = max(peak, 2 * c * volume + copies * expanded)
            c //= reduction
            t = 2 * t - 1 if stride[0] == 2 else t
            h, w = h * stride[1], w * stride[2]
    volume = t * h * w
    out_channels = config.out_channels * config.patch_size**2
    peak = max(peak, 3 * c * volume + 2 * out_channels * volume)  # norm, silu, pad, conv_out, image
    return int(peak * batch * element_size)


def build_video_encoder(config: Mapping[str, Any]) -> VideoEncoder:
    """Video VAE encoder from the checkpoint's `config` metadata (reads its `vae` section)."""
    return VideoEncoder(VideoVAEConfig.from_checkpoint_config(config))


def build_video_decoder(
    config: Mapping[str, Any],
    *,
    decode_timestep: float = DECODE_TIMESTEP,
    decode_noise_scale: float = DECODE_NOISE_SCALE,
) -> VideoDecoder:
    """Video VAE decoder from the checkpoint's `config` metadata (reads its `vae` section).

    The loader sets `vae.timestep_conditioning` from the file's tensors when they disagree.
    """
    vae = VideoVAEConfig.from_checkpoint_config(config)
    return VideoDecoder(vae, decode_timestep=decode_timestep, decode_noise_scale=decode_noise_scale)
