"""Gemma hidden states → transformer text context.

Flow: `hidden_states` (B, T, D_gemma, L) stacked on the LAST dim (L = Gemma layers + 1, the
embedding output first) and a binary `attention_mask` (B, T) → feature extractor → one
embeddings connector per stream → contexts (B, T, width) with an all-ones mask.

- Feature extractor V1 (19B, `aggregate_embed`): per sample and per layer, normalise over the
  valid tokens and all channels: `8·(x − mean)/(max − min + 1e-6)`; flatten with the layer index
  fastest; zero padded tokens; one bias-free Linear to D_gemma; the same features feed both
  connectors (the transformer then applies its caption projections).
- Feature extractor V2 (2.3, `video_aggregate_embed` / `audio_aggregate_embed`): per-token RMS over
  D_gemma for every layer, flatten, zero padded tokens, scale by √(out/D_gemma), biased Linears to
  the transformer's video and audio widths.
- Connector: valid tokens are moved to the front (stable), every padded slot p is replaced by
  `learnable_registers[p mod 128]`, then 1D split-RoPE blocks `x += attn(rms(x)); x += ff(rms(x))`
  attending over all positions, and a final weightless RMSNorm.

The Gemma model itself lives elsewhere; this module only needs its hidden size and the number of
hidden states, which are not in the LTX checkpoint config (options `gemma_hidden_size`, default
`caption_channels`, and `gemma_hidden_states`, default 49 for Gemma 3 12B).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ltx2cli.errors import CheckpointError
from ltx2cli.models.attention import Attention
from ltx2cli.models.layers import FeedForward, cpu_inference_linears, rms_norm
from ltx2cli.models.rope import rope_tables
from ltx2cli.models.transformer import init_module_weights, transformer_section

# The reference connector hard-codes these: `connector_num_learnable_registers` and
# `positional_embedding_theta` in the checkpoint config are not read for the connectors.
NUM_REGISTERS = 128
CONNECTOR_ROPE_THETA = 10000.0
GEMMA3_12B_HIDDEN_STATES = 49
EPS = 1e-6

# Feature-extractor V2 (LTX-2.3, per-token RMS norm) is selected by exactly these values.
_V2_CAPTION_KEYS: dict[str, bool] = {
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_projection_second_linear": False,
    "caption_proj_input_norm": False,
}


def caption_projection_in_feature_extractor(section: dict) -> bool:
    """True for LTX-2.3 (V2 feature extractor, no in-model caption projection); False for 19B."""
    present = section.keys() & _V2_CAPTION_KEYS.keys()
    if not present:
        return False
    for key, expected in _V2_CAPTION_KEYS.items():
        if section.get(key) != expected:
            raise CheckpointError(
                f"unsupported transformer config: {key}={section.get(key)!r} "
                f"(LTX-2.3 checkpoints use {expected!r})",
                "only the released 19B and 2.3 text-projection layouts are supported",
            )
    return True


@dataclass(frozen=True)
class ConnectorConfig:
    """One embeddings connector; defaults equal the 19B video connector."""

    num_attention_heads: int = 30
    attention_head_dim: int = 128
    num_layers: int = 2
    positional_embedding_max_pos: tuple[int, ...] = (4096,)
    double_precision_rope: bool = True
    gated_attention: bool = False
    ff_bias: bool = True

    def __post_init__(self) -> None:
        for name in ("num_attention_heads", "attention_head_dim", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "num_layers" else 1):
                raise CheckpointError(
                    f"connector config {name}={value!r} must be a positive integer"
                )
        if self.attention_head_dim % 2:
            raise CheckpointError(
                f"connector attention_head_dim={self.attention_head_dim} must be even"
            )

    @property
    def dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @classmethod
    def from_checkpoint_config(cls, config: dict, audio: bool = False) -> ConnectorConfig:
        """The video connector reads `connector_*`; the audio one `audio_connector_*` with
        fallback to the video values (19B has no audio-specific keys). Absent keys take the
        reference configurator's defaults (e.g. `connector_positional_embedding_max_pos` → [1])."""
        section = transformer_section(config)
        get = section.get
        if get("rope_type", "split") != "split":
            raise CheckpointError(
                f"unsupported transformer config: rope_type={get('rope_type')!r} "
                "(expected 'split')",
                "only the released LTX-2 19B and LTX-2.3 architectures are supported",
            )

        def pick(key: str, default: Any) -> Any:
            return get(f"audio_{key}", get(key, default)) if audio else get(key, default)

        return cls(
            num_attention_heads=pick("connector_num_attention_heads", 30),
            attention_head_dim=pick("connector_attention_head_dim", 128),
            num_layers=pick("connector_num_layers", 2),
            positional_embedding_max_pos=tuple(get("connector_positional_embedding_max_pos", (1,))),
            double_precision_rope=get("frequencies_precision") == "float64",
            gated_attention=bool(get("connector_apply_gated_attention", False)),
            ff_bias=bool(get("connector_ff_bias", True)),
        )


class ConnectorBlock(nn.Module):
    """`x += attn1(rms(x))`, `x += ff(rms(x))`; keys `attn1.*`, `ff.net.{0.proj,2}.*`."""

    def __init__(self, cfg: ConnectorConfig) -> None:
        super().__init__()
        self.attn1 = Attention(
            cfg.dim, cfg.num_attention_heads, cfg.attention_head_dim, gated=cfg.gated_attention
        )
        self.ff = FeedForward(cfg.dim, bias=cfg.ff_bias)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, pe: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        x = x + self.attn1(rms_norm(x, EPS), mask=mask, pe=pe)
        return x + self.ff(rms_norm(x, EPS))


class EmbeddingsConnector(nn.Module):
    """Registers replace padding, then 1D-RoPE transformer blocks and a final RMSNorm."""

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer_1d_blocks = nn.ModuleList(
            ConnectorBlock(config) for _ in range(config.num_layers)
        )
        self.learnable_registers = nn.Parameter(torch.empty(NUM_REGISTERS, config.dim))

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        init_module_weights(self, generator)

    @cpu_inference_linears
    def forward(
        self, features: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`features` (B, S, dim), binary `attention_mask` (B, S) with 1 = valid, any padding side.

        Returns `(context (B, S, dim), all-ones mask (B, S))`; S must be a multiple of 128.
        """
        cfg = self.config
        b, s, _ = features.shape
        if s % NUM_REGISTERS:
            raise ValueError(f"sequence length {s} must be a multiple of {NUM_REGISTERS}")
        if attention_mask is None:
            attention_mask = torch.ones(b, s, dtype=torch.int64, device=features.device)
        valid = attention_mask.to(torch.int32)
        # 1. Valid tokens first, keeping their order (left padding becomes right padding).
        order = torch.argsort(valid, dim=-1, descending=True, stable=True)
        x = torch.gather(features, 1, order.unsqueeze(-1).expand_as(features))
        valid = torch.gather(valid, 1, order).unsqueeze(-1).bool()
        # 2. Padded slot p takes register p mod 128.
        registers = self.learnable_registers.repeat(s // NUM_REGISTERS, 1).to(x.dtype)
        x = torch.where(valid, x, registers.unsqueeze(0))
        # 3. RoPE over plain indices 0..S-1 (no midpoint).
        index = torch.arange(s, dtype=torch.float32, device=x.device)[None, None].expand(b, -1, -1)
        pe = rope_tables(
            index,
            cfg.dim,
            cfg.num_attention_heads,
            CONNECTOR_ROPE_THETA,
            cfg.positional_embedding_max_pos,
            use_middle=False,
            double_precision=cfg.double_precision_rope,
            dtype=x.dtype,
        )
        # The reference attends with an all-zero additive mask once padding is gone; passing it
        # keeps the same SDPA code path.
        zero_mask = torch.zeros(b, 1, 1, s, dtype=x.dtype, device=x.device)
        # 4. Blocks, 5. final norm.
        for block in self.transformer_1d_blocks:
            x = block(x, zero_mask, pe)
        x = rms_norm(x, EPS)
        return x, torch.ones(b, s, dtype=torch.int64, device=x.device)


def _stack_layers(hidden_states: torch.Tensor | list | tuple) -> torch.Tensor:
    if isinstance(hidden_states, (list, tuple)):
        return torch.stack(hidden_states, dim=-1)
    return hidden_states


class FeatureExtractorV1(nn.Module):
    """19B: masked per-layer range normalisation → `aggregate_embed` (no bias) → D_gemma."""

    def __init__(self, hidden_size: int, num_hidden_states: int) -> None:
        super().__init__()
        self.aggregate_embed = nn.Linear(hidden_size * num_hidden_states, hidden_size, bias=False)

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        init_module_weights(self, generator)

    @cpu_inference_linears
    def forward(
        self, hidden_states: torch.Tensor | list | tuple, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D, L) + (B, T) → `(video_features, audio_features)`, the same tensor twice."""
        x = _stack_layers(hidden_states)
        b, _, d, layers = x.shape
        dtype = x.dtype
        mask = attention_mask.bool()[:, :, None, None]
        lengths = attention_mask.sum(dim=-1)
        mean = x.masked_fill(~mask, 0.0).sum(dim=(1, 2), keepdim=True) / (
            (lengths * d).view(b, 1, 1, 1) + EPS
        )
        x_min = x.masked_fill(~mask, float("inf")).amin(dim=(1, 2), keepdim=True)
        x_max = x.masked_fill(~mask, float("-inf")).amax(dim=(1, 2), keepdim=True)
        normed = 8 * (x - mean) / (x_max - x_min + EPS)
        normed = normed.reshape(b, -1, d * layers).masked_fill(~mask[..., 0], 0.0)
        features = self.aggregate_embed(normed.to(dtype))
        return features, features


class FeatureExtractorV2(nn.Module):
    """2.3: per-token RMS per layer → √(out/D)-rescaled `video_/audio_aggregate_embed` (biased)."""

    def __init__(
        self, hidden_size: int, num_hidden_states: int, video_dim: int, audio_dim: int
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        flat = hidden_size * num_hidden_states
        self.video_aggregate_embed = nn.Linear(flat, video_dim)
        self.audio_aggregate_embed = nn.Linear(flat, audio_dim)

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        init_module_weights(self, generator)

    @cpu_inference_linears
    def forward(
        self, hidden_states: torch.Tensor | list | tuple, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = _stack_layers(hidden_states)
        b, t, d, layers = x.shape
        variance = torch.mean(x**2, dim=2, keepdim=True)
        normed = (x * torch.rsqrt(variance + EPS)).reshape(b, t, d * layers)
        normed = torch.where(attention_mask.bool().unsqueeze(-1), normed, torch.zeros_like(normed))
        normed = normed.to(x.dtype)
        outputs = []
        for proj in (self.video_aggregate_embed, self.audio_aggregate_embed):
            outputs.append(proj(normed * math.sqrt(proj.out_features / self.hidden_size)))
        return outputs[0], outputs[1]


def build_video_connector(config: dict, **options: Any) -> EmbeddingsConnector:
    """The video embeddings connector (keys `learnable_registers`, `transformer_1d_blocks.*`)."""
    _reject(options)
    return EmbeddingsConnector(ConnectorConfig.from_checkpoint_config(config, audio=False))


def build_audio_connector(config: dict, **options: Any) -> EmbeddingsConnector:
    """The audio embeddings connector (2.3: its own width; 19B: the video connector's)."""
    _reject(options)
    return EmbeddingsConnector(ConnectorConfig.from_checkpoint_config(config, audio=True))


def build_text_projection(config: dict, **options: Any) -> FeatureExtractorV1 | FeatureExtractorV2:
    """The feature extractor: V1 for 19B, V2 for 2.3 (selected by the caption-projection keys).

    Options: `gemma_hidden_size` (default: the config's `caption_channels`, 3840) and
    `gemma_hidden_states` (default 49: Gemma 3 12B's 48 layers + embeddings).
    """
    section = transformer_section(config)
    hidden = options.pop("gemma_hidden_size", None) or section.get("caption_channels", 3840)
    layers = options.pop("gemma_hidden_states", None) or GEMMA3_12B_HIDDEN_STATES
    _reject(options)
    if not caption_projection_in_feature_extractor(section):
        return FeatureExtractorV1(hidden, layers)
    video_dim = section.get("num_attention_heads", 32) * section.get("attention_head_dim", 128)
    audio_dim = section.get("audio_num_attention_heads", 32) * section.get(
        "audio_attention_head_dim", 64
    )
    return FeatureExtractorV2(hidden, layers, video_dim, audio_dim)


def encode_text_context(
    hidden_states: torch.Tensor | list | tuple,
    attention_mask: torch.Tensor,
    extractor: FeatureExtractorV1 | FeatureExtractorV2,
    video_connector: EmbeddingsConnector,
    audio_connector: EmbeddingsConnector,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gemma hidden states → `(video_context, audio_context, mask)` for the transformer.

    19B contexts are D_gemma wide (the transformer projects them); 2.3 contexts already have the
    transformer's widths. The mask is all ones: registers fill the padding.
    """
    video_features, audio_features = extractor(hidden_states, attention_mask)
    video, mask = video_connector(video_features, attention_mask)
    audio, _ = audio_connector(audio_features, attention_mask)
    return video * mask.unsqueeze(-1).to(video.dtype), audio, mask


def _reject(options: dict) -> None:
    if options:
        raise TypeError(f"unknown options: {sorted(options)}")
