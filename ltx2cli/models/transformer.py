"""The LTX-2 / LTX-2.3 audio-video diffusion transformer.

Design choices:
- One dual-stream model for both generations. LTX-2.3 features switch on from the config:
  `cross_attention_adaln` (9-row AdaLN tables, query/prompt modulation of text cross-attention,
  `prompt_adaln_single`), `apply_gated_attention` (`to_gate_logits` in all six attentions) and
  `caption_proj_before_connector` (no in-model caption projection). Keys of newer checkpoints
  that current ltx-core honours are read too: `use_prompt_adaln_single` (false: the text K/V
  modulation is the per-block table alone), `ff_bias` / `audio_ff_bias` (bias-free FFs).
- Inputs are one `Modality` per stream; a stream may be absent (`None`, video-only or audio-only
  use) or present but disabled (`enabled=False`: its tokens still feed the other stream's A↔V
  attention and still go through the output head).
- The output is the flow-matching velocity `v ≈ ε − x0` per stream; `velocity_to_x0` converts it
  the way the reference's X0 wrapper does (per-token timesteps, float32 arithmetic).
- Cross-modal AdaLN follows the current reference (1.2.0): the scale/shift AdaLN sees the
  stream's own per-token timesteps, the gate AdaLN the other stream's sigma. The 1.0.0 variant
  (scale/shift from the other stream's sigma) is kept behind `av_adaln="1.0.0"`.
- Speed without changing numerics beyond rounding: RoPE tables are built once per forward and
  shared by every block; each AdaLN MLP runs once per distinct timestep value and the result is
  broadcast (per-sample) or gathered (per-token) instead of being recomputed for every token.
- Float32 inference on the CPU runs its Linears through oneDNN (`layers.cpu_inference_linears`):
  same results to float32 rounding, 2-2.5x faster GEMMs where MKL falls back to AVX2 (AMD).
- Construction is meta-device safe: no buffers, nothing computed in `__init__`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from ltx2cli.errors import CheckpointError
from ltx2cli.models.attention import Attention, RopeTables
from ltx2cli.models.layers import (
    AdaLayerNormSingle,
    FeedForward,
    TwoLayerMLP,
    cpu_inference_linears,
    gelu_tanh,
    rms_norm,
)
from ltx2cli.models.rope import rope_tables

logger = logging.getLogger(__name__)

AV_ADALN_VARIANTS = ("current", "1.0.0")

# Keys the reference configurator asserts; any other value means an architecture we do not build.
_FIXED_CONFIG_VALUES: dict[str, Any] = {
    "dropout": 0.0,
    "attention_bias": True,
    "activation_fn": "gelu-approximate",
    "use_linear_projection": False,
    "only_cross_attention": False,
    "cross_attention_norm": True,
    "double_self_attention": False,
    "upcast_attention": False,
    "standardization_norm": "rms_norm",
    "norm_elementwise_affine": False,
    "qk_norm": "rms_norm",
    "positional_embedding_type": "rope",
    "use_audio_video_cross_attention": True,
    "share_ff": False,
    "av_cross_ada_norm": True,
    "use_middle_indices_grid": True,
    "rope_type": "split",
    "use_keyframes_abs_pos_embedding": False,
}


def transformer_section(config: dict) -> dict:
    """The `transformer` section of a checkpoint config (accepts the section itself too)."""
    section = config.get("transformer", config) if isinstance(config, dict) else None
    if not isinstance(section, dict):
        raise CheckpointError(
            "checkpoint config has no 'transformer' section", "is this an LTX-2 checkpoint?"
        )
    return section


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture of `LTXTransformer`; defaults equal the released 19B checkpoint."""

    num_layers: int = 48
    num_attention_heads: int = 32
    attention_head_dim: int = 128
    audio_num_attention_heads: int = 32
    audio_attention_head_dim: int = 64
    in_channels: int = 128
    out_channels: int = 128
    audio_in_channels: int = 128
    audio_out_channels: int = 128
    cross_attention_dim: int = 4096
    audio_cross_attention_dim: int = 2048
    caption_channels: int = 3840
    norm_eps: float = 1e-6
    positional_embedding_theta: float = 10000.0
    positional_embedding_max_pos: tuple[int, ...] = (20, 2048, 2048)
    audio_positional_embedding_max_pos: tuple[int, ...] = (20,)
    timestep_scale_multiplier: float = 1000
    av_ca_timestep_scale_multiplier: float = 1000.0
    double_precision_rope: bool = True
    cross_attention_adaln: bool = False
    apply_gated_attention: bool = False
    caption_proj_before_connector: bool = False
    use_prompt_adaln_single: bool = True
    ff_bias: bool = True
    audio_ff_bias: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.num_layers, int) or self.num_layers < 0:
            raise CheckpointError(
                f"transformer config num_layers={self.num_layers!r} must be a non-negative integer"
            )
        for name in (
            "num_attention_heads",
            "attention_head_dim",
            "audio_num_attention_heads",
            "audio_attention_head_dim",
            "in_channels",
            "out_channels",
            "audio_in_channels",
            "audio_out_channels",
            "cross_attention_dim",
            "audio_cross_attention_dim",
            "caption_channels",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise CheckpointError(
                    f"transformer config {name}={value!r} must be a positive integer"
                )
        if self.num_attention_heads != self.audio_num_attention_heads:
            raise CheckpointError(
                f"transformer config num_attention_heads={self.num_attention_heads} must equal "
                f"audio_num_attention_heads={self.audio_num_attention_heads}",
                "the split-RoPE A↔V attentions share one head count",
            )
        if len(self.positional_embedding_max_pos) != 3:
            raise CheckpointError(
                f"transformer config positional_embedding_max_pos="
                f"{list(self.positional_embedding_max_pos)} must list 3 axes (t, y, x)"
            )
        if len(self.audio_positional_embedding_max_pos) != 1:
            raise CheckpointError(
                f"transformer config audio_positional_embedding_max_pos="
                f"{list(self.audio_positional_embedding_max_pos)} must list 1 axis (t)"
            )
        for name in ("attention_head_dim", "audio_attention_head_dim"):
            if getattr(self, name) % 2:
                raise CheckpointError(
                    f"transformer config {name}={getattr(self, name)} must be even for RoPE"
                )

    @property
    def video_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def audio_dim(self) -> int:
        return self.audio_num_attention_heads * self.audio_attention_head_dim

    @property
    def adaln_rows(self) -> int:
        return 9 if self.cross_attention_adaln else 6

    @classmethod
    def from_checkpoint_config(cls, config: dict) -> TransformerConfig:
        """Read the checkpoint's `config` (or its `transformer` section) like the reference does."""
        section = transformer_section(config)
        for key, expected in _FIXED_CONFIG_VALUES.items():
            if key in section and section[key] != expected:
                raise CheckpointError(
                    f"unsupported transformer config: {key}={section[key]!r} "
                    f"(expected {expected!r})",
                    "only the released LTX-2 19B and LTX-2.3 architectures are supported",
                )
        if "av_ca_timestep_scale_multiplier" not in section:
            logger.warning(
                "transformer config has no av_ca_timestep_scale_multiplier; using the reference "
                "fallback 1 (released checkpoints carry 1000)"
            )
        precision = section.get("frequencies_precision", "float32")
        if precision not in ("float32", "float64", False, None):
            raise CheckpointError(
                f"unsupported transformer config: frequencies_precision={precision!r}"
            )
        get = section.get
        return cls(
            num_layers=get("num_layers", 48),
            num_attention_heads=get("num_attention_heads", 32),
            attention_head_dim=get("attention_head_dim", 128),
            audio_num_attention_heads=get("audio_num_attention_heads", 32),
            audio_attention_head_dim=get("audio_attention_head_dim", 64),
            in_channels=get("in_channels", 128),
            out_channels=get("out_channels", 128),
            audio_in_channels=get("audio_in_channels", 128),
            audio_out_channels=get("audio_out_channels", 128),
            cross_attention_dim=get("cross_attention_dim", 4096),
            audio_cross_attention_dim=get("audio_cross_attention_dim", 2048),
            caption_channels=get("caption_channels", 3840),
            norm_eps=float(get("norm_eps", 1e-6)),
            positional_embedding_theta=float(get("positional_embedding_theta", 10000.0)),
            positional_embedding_max_pos=tuple(
                get("positional_embedding_max_pos", (20, 2048, 2048))
            ),
            audio_positional_embedding_max_pos=tuple(
                get("audio_positional_embedding_max_pos", (20,))
            ),
            timestep_scale_multiplier=get("timestep_scale_multiplier", 1000),
            av_ca_timestep_scale_multiplier=get("av_ca_timestep_scale_multiplier", 1),
            double_precision_rope=precision == "float64",
            cross_attention_adaln=bool(get("cross_attention_adaln", False)),
            apply_gated_attention=bool(get("apply_gated_attention", False)),
            # The transformer looks at this key alone; the other caption keys only choose the
            # feature extractor (text_connectors.build_text_projection checks them).
            caption_proj_before_connector=bool(get("caption_proj_before_connector", False)),
            use_prompt_adaln_single=bool(get("use_prompt_adaln_single", True)),
            ff_bias=bool(get("ff_bias", True)),
            audio_ff_bias=bool(get("audio_ff_bias", True)),
        )


# --------------------------------------------------------------------------------------------
# Inputs, perturbations, outputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Modality:
    """One stream's input.

    latent: (B, T, C) patchified tokens. sigma: (B,) or 0-d noise level of the stream.
    timesteps: per-token `denoise_mask·sigma`, (B, T, 1) / (B, T) — or (B, 1) per sample.
    positions: (B, n_axes, T, 2) `[start, end)` bounds (video: seconds, px, px; audio: seconds).
    context: (B, S, C_ctx) text context. context_mask: optional (B, S) binary mask.
    attention_mask: optional (B, T, T) self-attention strengths in [0, 1].
    """

    latent: torch.Tensor
    sigma: torch.Tensor
    timesteps: torch.Tensor
    positions: torch.Tensor
    context: torch.Tensor
    enabled: bool = True
    context_mask: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None


class PerturbationType(IntEnum):
    """STG / modality-guidance perturbations; the value is the mask row."""

    SKIP_VIDEO_SELF_ATTN = 0
    SKIP_AUDIO_SELF_ATTN = 1
    SKIP_A2V_CROSS_ATTN = 2
    SKIP_V2A_CROSS_ATTN = 3


@dataclass(frozen=True)
class Perturbation:
    """Skip one attention type in `blocks` (None: every block)."""

    type: PerturbationType
    blocks: tuple[int, ...] | None = None


class BatchedPerturbations:
    """Per-sample perturbations as a keep mask `(4, num_blocks, B)` (1 = keep, 0 = skip)."""

    def __init__(self, per_sample: Sequence[Iterable[Perturbation]], num_blocks: int) -> None:
        keep = torch.ones(len(PerturbationType), num_blocks, len(per_sample), dtype=torch.bool)
        for sample, perturbations in enumerate(per_sample):
            for p in perturbations:
                blocks = range(num_blocks) if p.blocks is None else p.blocks
                for block in blocks:
                    if not 0 <= block < num_blocks:
                        raise ValueError(f"perturbation block {block} outside 0..{num_blocks - 1}")
                    keep[int(p.type), block, sample] = False
        self.keep = keep

    @classmethod
    def none(cls, batch_size: int, num_blocks: int) -> BatchedPerturbations:
        return cls([()] * batch_size, num_blocks)

    @property
    def batch_size(self) -> int:
        return self.keep.shape[-1]

    def for_block(
        self, kind: PerturbationType, block: int, like: torch.Tensor
    ) -> tuple[torch.Tensor | None, bool]:
        """`(keep mask (B, 1, 1) or None when nobody skips, every sample skips)` for one block."""
        row = self.keep[int(kind), block]
        if bool(row.all()):
            return None, False
        if not bool(row.any()):
            return None, True
        return row.to(device=like.device, dtype=like.dtype).view(-1, 1, 1), False


def velocity_to_x0(
    latent: torch.Tensor, velocity: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """`x0 = latent − velocity·timesteps` in float32, per token (clean tokens stay unchanged)."""
    t = timesteps.to(torch.float32)
    if t.ndim == 2 and t.shape[1] == latent.shape[1] and latent.ndim == 3:
        t = t.unsqueeze(-1)
    elif t.ndim == 1:
        t = t.view(-1, *([1] * (latent.ndim - 1)))
    return (latent.to(torch.float32) - velocity.to(torch.float32) * t).to(latent.dtype)


# --------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------


@dataclass
class _Stream:
    """A stream's prepared tensors, shared by every block."""

    x: torch.Tensor  # (B, T, D)
    context: torch.Tensor  # (B, S, D)
    context_mask: torch.Tensor | None  # additive (B, 1, 1, S)
    mod: torch.Tensor  # (B, 1 or T, rows·D)
    embedded: torch.Tensor  # (B, 1 or T, D)
    pe: RopeTables
    enabled: bool
    self_mask: torch.Tensor | None = None  # additive (B, 1, T, T)
    prompt_mod: torch.Tensor | None = None  # (B, 1, 2·D), 2.3
    cross_pe: RopeTables | None = None
    cross_mod: torch.Tensor | None = None  # (B, 1 or T, 4·D)
    cross_gate: torch.Tensor | None = None  # (B, 1, D)

    @property
    def has_tokens(self) -> bool:
        return self.x.shape[1] > 0


def _ada(table: torch.Tensor, mod: torch.Tensor, rows: slice) -> tuple[torch.Tensor, ...]:
    """Rows of `table + mod` where `mod` holds the AdaLN linear output as D-sized chunks."""
    b, t, _ = mod.shape
    values = table[rows].to(mod.dtype) + mod.view(b, t, table.shape[0], -1)[:, :, rows]
    return values.unbind(dim=2)


# The modulations and gated residuals below keep the reference's two-step `a * b + c` on
# purpose: a fused `torch.addcmul` rounds once instead of twice, which changes about a quarter
# of the elements by one ulp in bfloat16 (and in float32 too, through FMA).


def _modulate(
    x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float
) -> torch.Tensor:
    return rms_norm(x, eps) * (1 + scale) + shift


@dataclass(frozen=True)
class _BlockPerturbation:
    video_keep: torch.Tensor | None = None
    video_skip: bool = False
    audio_keep: torch.Tensor | None = None
    audio_skip: bool = False
    a2v_keep: torch.Tensor | None = None
    a2v_skip: bool = False
    v2a_keep: torch.Tensor | None = None
    v2a_skip: bool = False


class TransformerBlock(nn.Module):
    """One dual-stream block: self-attn, text cross-attn per stream, A↔V attention, FFs."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        vd, ad, eps, gated = cfg.video_dim, cfg.audio_dim, cfg.norm_eps, cfg.apply_gated_attention
        vh, vdh = cfg.num_attention_heads, cfg.attention_head_dim
        ah, adh = cfg.audio_num_attention_heads, cfg.audio_attention_head_dim
        self.eps = eps
        self.cross_attention_adaln = cfg.cross_attention_adaln

        self.attn1 = Attention(vd, vh, vdh, norm_eps=eps, gated=gated)
        self.attn2 = Attention(
            vd, vh, vdh, context_dim=cfg.cross_attention_dim, norm_eps=eps, gated=gated
        )
        self.ff = FeedForward(vd, bias=cfg.ff_bias)
        self.scale_shift_table = nn.Parameter(torch.empty(cfg.adaln_rows, vd))

        self.audio_attn1 = Attention(ad, ah, adh, norm_eps=eps, gated=gated)
        self.audio_attn2 = Attention(
            ad, ah, adh, context_dim=cfg.audio_cross_attention_dim, norm_eps=eps, gated=gated
        )
        self.audio_ff = FeedForward(ad, bias=cfg.audio_ff_bias)
        self.audio_scale_shift_table = nn.Parameter(torch.empty(cfg.adaln_rows, ad))

        # Both A↔V directions use the audio head count and head size.
        self.audio_to_video_attn = Attention(vd, ah, adh, context_dim=ad, norm_eps=eps, gated=gated)
        self.video_to_audio_attn = Attention(ad, ah, adh, context_dim=vd, norm_eps=eps, gated=gated)
        # Rows: scale_a2v, shift_a2v, scale_v2a, shift_v2a, gate (scale BEFORE shift here).
        self.scale_shift_table_a2v_ca_video = nn.Parameter(torch.empty(5, vd))
        self.scale_shift_table_a2v_ca_audio = nn.Parameter(torch.empty(5, ad))

        if cfg.cross_attention_adaln:
            self.prompt_scale_shift_table = nn.Parameter(torch.empty(2, vd))
            self.audio_prompt_scale_shift_table = nn.Parameter(torch.empty(2, ad))

    def _self_and_text(
        self,
        s: _Stream,
        x: torch.Tensor,
        attn1: Attention,
        attn2: Attention,
        table: torch.Tensor,
        prompt_table: torch.Tensor | None,
        keep: torch.Tensor | None,
        skip: bool,
    ) -> torch.Tensor:
        # Self-attention with AdaLN rows 0-2 (shift, scale, gate).
        shift, scale, gate = _ada(table, s.mod, slice(0, 3))
        h = attn1(
            _modulate(x, scale, shift, self.eps),
            pe=s.pe,
            mask=s.self_mask,
            keep=keep,
            skip_attention=skip,
        )
        x = x + h * gate
        normed = rms_norm(x, self.eps)
        # Text cross-attention: plain in 19B; 2.3 modulates the query (rows 6-8) and the prompt.
        if not self.cross_attention_adaln:
            return x + attn2(normed, s.context, mask=s.context_mask)
        shift_q, scale_q, gate_q = _ada(table, s.mod, slice(6, 9))
        b = x.shape[0]
        kv = prompt_table[None, None].to(x.dtype)
        if s.prompt_mod is not None:  # absent with use_prompt_adaln_single=False: table only
            kv = kv + s.prompt_mod.view(b, s.prompt_mod.shape[1], 2, -1)
        shift_kv, scale_kv = kv.unbind(dim=2)
        context = s.context * (1 + scale_kv) + shift_kv
        query = normed * (1 + scale_q) + shift_q
        return x + attn2(query, context, mask=s.context_mask) * gate_q

    def _feed_forward(
        self, x: torch.Tensor, mod: torch.Tensor, table: torch.Tensor, ff: FeedForward
    ) -> torch.Tensor:
        shift, scale, gate = _ada(table, mod, slice(3, 6))
        return x + ff(_modulate(x, scale, shift, self.eps)) * gate

    @staticmethod
    def _av_values(table: torch.Tensor, s: _Stream, rows: slice) -> tuple[torch.Tensor, ...]:
        scale, shift = _ada(table[:4], s.cross_mod, rows)
        (gate,) = _ada(table[4:], s.cross_gate, slice(None))
        return scale, shift, gate

    def forward(
        self, video: _Stream | None, audio: _Stream | None, p: _BlockPerturbation
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        vx = video.x if video is not None else None
        ax = audio.x if audio is not None else None
        run_v = video is not None and video.enabled and video.has_tokens
        run_a = audio is not None and audio.enabled and audio.has_tokens
        run_a2v = run_v and audio is not None and audio.has_tokens and not p.a2v_skip
        run_v2a = run_a and video is not None and video.has_tokens and not p.v2a_skip

        # 1-3. Self-attention, then text cross-attention, video first.
        if run_v:
            vx = self._self_and_text(
                video,
                vx,
                self.attn1,
                self.attn2,
                self.scale_shift_table,
                getattr(self, "prompt_scale_shift_table", None),
                p.video_keep,
                p.video_skip,
            )
        if run_a:
            ax = self._self_and_text(
                audio,
                ax,
                self.audio_attn1,
                self.audio_attn2,
                self.audio_scale_shift_table,
                getattr(self, "audio_prompt_scale_shift_table", None),
                p.audio_keep,
                p.audio_skip,
            )

        # 4. A↔V cross-attention; both directions read the pre-A↔V state.
        v0, a0 = vx, ax
        if run_a2v:
            scale_v, shift_v, gate = self._av_values(
                self.scale_shift_table_a2v_ca_video, video, slice(0, 2)
            )
            scale_a, shift_a, _ = self._av_values(
                self.scale_shift_table_a2v_ca_audio, audio, slice(0, 2)
            )
            h = self.audio_to_video_attn(
                _modulate(v0, scale_v, shift_v, self.eps),
                _modulate(a0, scale_a, shift_a, self.eps),
                pe=video.cross_pe,
                k_pe=audio.cross_pe,
            )
            h = h * gate
            vx = vx + (h if p.a2v_keep is None else h * p.a2v_keep)
        if run_v2a:
            scale_a, shift_a, gate = self._av_values(
                self.scale_shift_table_a2v_ca_audio, audio, slice(2, 4)
            )
            scale_v, shift_v, _ = self._av_values(
                self.scale_shift_table_a2v_ca_video, video, slice(2, 4)
            )
            h = self.video_to_audio_attn(
                _modulate(a0, scale_a, shift_a, self.eps),
                _modulate(v0, scale_v, shift_v, self.eps),
                pe=audio.cross_pe,
                k_pe=video.cross_pe,
            )
            h = h * gate
            ax = ax + (h if p.v2a_keep is None else h * p.v2a_keep)

        # 5-6. Feed-forwards (AdaLN rows 3-5).
        if run_v:
            vx = self._feed_forward(vx, video.mod, self.scale_shift_table, self.ff)
        if run_a:
            ax = self._feed_forward(ax, audio.mod, self.audio_scale_shift_table, self.audio_ff)
        return vx, ax


# --------------------------------------------------------------------------------------------
# Top model
# --------------------------------------------------------------------------------------------


def _unique_adaln(
    adaln: AdaLayerNormSingle, values: torch.Tensor, batch_size: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """AdaLN of `values` (B·T flattened) → `(mod, embedded)` of shape (B, 1 or T, ·).

    The MLP runs once per distinct value; rows are then broadcast when every sample is uniform
    or gathered per token. Same result as running it on every token, up to float rounding.
    """
    flat = values.reshape(batch_size, -1)
    if flat.shape[1] > 1 and bool((flat == flat[:, :1]).all()):
        flat = flat[:, :1]
    unique, inverse = torch.unique(flat.reshape(-1), return_inverse=True)
    if unique.numel() == flat.numel():
        mod, embedded = adaln(flat.reshape(-1), dtype)
    else:
        mod_u, emb_u = adaln(unique, dtype)
        mod, embedded = mod_u[inverse.reshape(-1)], emb_u[inverse.reshape(-1)]
    return mod.view(batch_size, flat.shape[1], -1), embedded.view(batch_size, flat.shape[1], -1)


def _additive_context_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    if mask is None or torch.is_floating_point(mask):
        return mask
    return (mask - 1).to(dtype).reshape(mask.shape[0], 1, -1, mask.shape[-1]) * torch.finfo(
        dtype
    ).max


def _additive_self_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """[0, 1] strengths → log-space bias (0 → dtype min), with a heads dim."""
    if mask is None:
        return None
    finfo = torch.finfo(dtype)
    bias = torch.full_like(mask, finfo.min, dtype=dtype)
    positive = mask > 0
    bias[positive] = torch.log(mask[positive].clamp(min=finfo.tiny)).to(dtype)
    return bias.unsqueeze(1)


class LTXTransformer(nn.Module):
    """The audio-video transformer; `forward(video, audio, perturbations)` → velocities."""

    def __init__(self, config: TransformerConfig, av_adaln: str = "current") -> None:
        super().__init__()
        if av_adaln not in AV_ADALN_VARIANTS:
            raise ValueError(f"av_adaln={av_adaln!r}; choose one of {AV_ADALN_VARIANTS}")
        self.config = cfg = config
        self.av_adaln = av_adaln
        self.gradient_checkpointing = False
        vd, ad = cfg.video_dim, cfg.audio_dim

        self.patchify_proj = nn.Linear(cfg.in_channels, vd)
        self.audio_patchify_proj = nn.Linear(cfg.audio_in_channels, ad)
        if not cfg.caption_proj_before_connector:
            # 19B in-model text projection (PixArt style): linear_1 → tanh-GELU → linear_2.
            self.caption_projection = TwoLayerMLP(cfg.caption_channels, vd, gelu_tanh)
            self.audio_caption_projection = TwoLayerMLP(cfg.caption_channels, ad, gelu_tanh)
        self.adaln_single = AdaLayerNormSingle(vd, cfg.adaln_rows)
        self.audio_adaln_single = AdaLayerNormSingle(ad, cfg.adaln_rows)
        if cfg.cross_attention_adaln and cfg.use_prompt_adaln_single:
            self.prompt_adaln_single = AdaLayerNormSingle(vd, 2)
            self.audio_prompt_adaln_single = AdaLayerNormSingle(ad, 2)
        self.av_ca_video_scale_shift_adaln_single = AdaLayerNormSingle(vd, 4)
        self.av_ca_audio_scale_shift_adaln_single = AdaLayerNormSingle(ad, 4)
        self.av_ca_a2v_gate_adaln_single = AdaLayerNormSingle(vd, 1)
        self.av_ca_v2a_gate_adaln_single = AdaLayerNormSingle(ad, 1)

        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(cfg) for _ in range(cfg.num_layers)
        )

        self.scale_shift_table = nn.Parameter(torch.empty(2, vd))
        self.audio_scale_shift_table = nn.Parameter(torch.empty(2, ad))
        self.proj_out = nn.Linear(vd, cfg.out_channels)
        self.audio_proj_out = nn.Linear(ad, cfg.audio_out_channels)

    @property
    def num_blocks(self) -> int:
        return len(self.transformer_blocks)

    def set_gradient_checkpointing(self, enable: bool) -> None:
        """Recompute each block in the backward pass (training only; no effect in eval mode)."""
        self.gradient_checkpointing = enable

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Deterministic random weights of a sensible scale (for tiny test checkpoints)."""
        init_module_weights(self, generator)

    # ---- preprocessing ---------------------------------------------------------------------

    def _prepare(self, m: Modality, other: Modality | None, video: bool) -> _Stream:
        cfg = self.config
        mult = cfg.timestep_scale_multiplier
        prefix = "" if video else "audio_"
        dim = cfg.video_dim if video else cfg.audio_dim
        heads = cfg.num_attention_heads if video else cfg.audio_num_attention_heads
        max_pos = (
            cfg.positional_embedding_max_pos if video else cfg.audio_positional_embedding_max_pos
        )
        dtype = m.latent.dtype
        b = m.latent.shape[0]

        # 1. Patchify projection (B, T, C) → (B, T, D).
        x = getattr(self, f"{prefix}patchify_proj")(m.latent)
        # 2. Timestep modulation; per token or per sample, whatever `timesteps` carries.
        scaled = m.timesteps * mult
        mod, embedded = _unique_adaln(getattr(self, f"{prefix}adaln_single"), scaled, b, dtype)
        prompt_mod = None
        if cfg.cross_attention_adaln and cfg.use_prompt_adaln_single:
            sigma = m.sigma.reshape(-1).expand(b) if m.sigma.numel() == 1 else m.sigma
            prompt_mod, _ = _unique_adaln(
                getattr(self, f"{prefix}prompt_adaln_single"), sigma * mult, b, dtype
            )
        # 3. Context: 19B projects the connector output here; 2.3 arrives at width D.
        context = m.context
        if not cfg.caption_proj_before_connector:
            context = getattr(self, f"{prefix}caption_projection")(context)
        context = context.view(b, -1, dim)
        # 4. RoPE tables, once for all blocks.
        pe = rope_tables(
            m.positions,
            dim,
            heads,
            cfg.positional_embedding_theta,
            max_pos,
            use_middle=True,
            double_precision=cfg.double_precision_rope,
            dtype=dtype,
        )
        stream = _Stream(
            x=x,
            context=context,
            context_mask=_additive_context_mask(m.context_mask, dtype),
            mod=mod,
            embedded=embedded,
            pe=pe,
            enabled=m.enabled,
            self_mask=_additive_self_mask(m.attention_mask, dtype),
            prompt_mod=prompt_mod,
        )
        if other is None:
            return stream

        # 5. Cross-modal extras: time-only RoPE and the A↔V AdaLN inputs.
        cross_max = max(
            cfg.positional_embedding_max_pos[0], cfg.audio_positional_embedding_max_pos[0]
        )
        stream.cross_pe = rope_tables(
            m.positions[:, 0:1],
            cfg.audio_cross_attention_dim,
            heads,
            cfg.positional_embedding_theta,
            [cross_max],
            use_middle=True,
            double_precision=cfg.double_precision_rope,
            dtype=dtype,
        )
        other_sigma = other.sigma.reshape(-1)
        if other_sigma.numel() == 1:
            other_sigma = other_sigma.expand(b)
        elif other_sigma.shape[0] != b:
            raise ValueError(
                f"cross-modality sigma has {other_sigma.shape[0]} entries for batch {b}"
            )
        ss_name = (
            "av_ca_video_scale_shift_adaln_single"
            if video
            else "av_ca_audio_scale_shift_adaln_single"
        )
        gate_name = "av_ca_a2v_gate_adaln_single" if video else "av_ca_v2a_gate_adaln_single"
        # 1.0.0 drove the scale/shift AdaLN with the other stream's sigma as well.
        ss_input = scaled if self.av_adaln == "current" else other_sigma * mult
        stream.cross_mod, _ = _unique_adaln(getattr(self, ss_name), ss_input, b, dtype)
        av_factor = cfg.av_ca_timestep_scale_multiplier / mult
        stream.cross_gate, _ = _unique_adaln(
            getattr(self, gate_name), other_sigma * mult * av_factor, b, dtype
        )
        return stream

    def _block_perturbation(
        self, perturbations: BatchedPerturbations | None, block: int, like: torch.Tensor
    ) -> _BlockPerturbation:
        if perturbations is None:
            return _BlockPerturbation()
        vk, vs = perturbations.for_block(PerturbationType.SKIP_VIDEO_SELF_ATTN, block, like)
        ak, as_ = perturbations.for_block(PerturbationType.SKIP_AUDIO_SELF_ATTN, block, like)
        a2vk, a2vs = perturbations.for_block(PerturbationType.SKIP_A2V_CROSS_ATTN, block, like)
        v2ak, v2as = perturbations.for_block(PerturbationType.SKIP_V2A_CROSS_ATTN, block, like)
        return _BlockPerturbation(vk, vs, ak, as_, a2vk, a2vs, v2ak, v2as)

    def _output(self, s: _Stream, table: torch.Tensor, proj: nn.Linear) -> torch.Tensor:
        values = table[None, None].to(s.x.dtype) + s.embedded[:, :, None]
        shift, scale = values[:, :, 0], values[:, :, 1]
        x = F.layer_norm(s.x, (s.x.shape[-1],), eps=self.config.norm_eps)
        return proj(x * (1 + scale) + shift)

    @cpu_inference_linears
    def forward(
        self,
        video: Modality | None,
        audio: Modality | None,
        perturbations: BatchedPerturbations | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Velocity per stream: video (B, T_v, out_channels), audio (B, T_a, audio_out_channels)."""
        if video is None and audio is None:
            raise ValueError("at least one of video or audio must be given")
        # 1-5. Per-stream preprocessing (patchify, AdaLN, context, RoPE, cross-modal inputs).
        v = self._prepare(video, audio, video=True) if video is not None else None
        a = self._prepare(audio, video, video=False) if audio is not None else None
        ref = (v or a).x
        if perturbations is not None and perturbations.batch_size != ref.shape[0]:
            raise ValueError(
                f"perturbations cover {perturbations.batch_size} samples, batch has {ref.shape[0]}"
            )

        # 6. Blocks.
        use_checkpoint = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for i, block in enumerate(self.transformer_blocks):
            p = self._block_perturbation(perturbations, i, ref)
            if use_checkpoint:
                vx, ax = checkpoint(block, v, a, p, use_reentrant=False)
            else:
                vx, ax = block(v, a, p)
            if v is not None:
                v = dataclasses.replace(v, x=vx)
            if a is not None:
                a = dataclasses.replace(a, x=ax)

        # 7. Output heads (also for a disabled stream).
        v_out = self._output(v, self.scale_shift_table, self.proj_out) if v is not None else None
        a_out = (
            self._output(a, self.audio_scale_shift_table, self.audio_proj_out)
            if a is not None
            else None
        )
        return v_out, a_out


@torch.no_grad()
def init_module_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Fill every parameter deterministically: Linear weights ~ N(0, 1/fan_in), biases and tables
    ~ N(0, 0.02²)·scaled, norm weights ~ 1 + N(0, 0.1²), registers ~ U(−1, 1)."""
    for name, param in module.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if param.is_meta:
            raise ValueError(
                f"cannot initialise meta parameter {name}; build the module on a real device"
            )
        if leaf == "learnable_registers":
            values = torch.rand(param.shape, generator=generator) * 2 - 1
        elif name.endswith(("norm.weight", "q_norm.weight", "k_norm.weight")):
            values = 1 + 0.1 * torch.randn(param.shape, generator=generator)
        elif leaf == "weight" and param.ndim == 2:
            values = torch.randn(param.shape, generator=generator) / param.shape[1] ** 0.5
        elif "scale_shift_table" in leaf:
            values = 0.1 * torch.randn(param.shape, generator=generator)
        else:
            values = 0.02 * torch.randn(param.shape, generator=generator)
        param.copy_(values.to(param.dtype))


def build_transformer(config: dict, **options: Any) -> LTXTransformer:
    """Build the transformer from a checkpoint's `config` metadata.

    Options: `av_adaln="current"` (default, reference 1.2.0) or `"1.0.0"` (cross-modal
    scale/shift AdaLN driven by the other stream's sigma, as in ltx-core 1.0.0).
    """
    av_adaln = options.pop("av_adaln", "current")
    if options:
        raise TypeError(f"unknown transformer options: {sorted(options)}")
    return LTXTransformer(TransformerConfig.from_checkpoint_config(config), av_adaln=av_adaln)
