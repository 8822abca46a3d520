"""LTX-2.5 duration head: the natural length of a shot, predicted from the prompt (ltx-2.5.md §3.6).

- Inputs are the text connectors' outputs for the positive prompt (video [B, S, 4096] and/or
  audio [B, S, 2048]); each stream is projected to 256 channels plus a learned modality vector,
  the streams are concatenated along the token axis and pooled by one learned query through
  `nn.MultiheadAttention` (the file's fused `in_proj` layout). No mask: the connectors already
  replaced padding with registers.
- The MLP predicts log-seconds; `forward` returns seconds (`exp`).
- `frames_for_duration` turns seconds into a frame count the pipelines accept (8k+1).
- The file holds `duration_head.*`; dimensions come from `config.transformer` and the optional
  `config.duration_head` dict, defaults as the reference configurator.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ltx2cli.errors import UsageError
from ltx2cli.models.layers import gelu_tanh

logger = logging.getLogger(__name__)

# Range used when auto-duration is on and the user gave none (seconds).
DEFAULT_DURATION_RANGE = (1.0, 20.0)


@dataclass(frozen=True)
class DurationHeadConfig:
    """Architecture of `DurationHead`; defaults equal the released file."""

    video_dim: int = 4096
    audio_dim: int = 2048
    pooler_hidden_dim: int = 256
    num_queries: int = 1
    num_pooler_heads: int = 4
    mlp_hidden: int = 256

    @classmethod
    def from_checkpoint_config(cls, config: Mapping[str, Any]) -> DurationHeadConfig:
        transformer = config.get("transformer", {}) or {}
        head = config.get("duration_head", {}) or {}
        return cls(
            video_dim=int(transformer.get("cross_attention_dim", 4096)),
            audio_dim=int(transformer.get("audio_cross_attention_dim", 2048)),
            pooler_hidden_dim=int(head.get("pooler_hidden_dim", 256)),
            num_queries=int(head.get("num_queries", 1)),
            num_pooler_heads=int(head.get("num_pooler_heads", 4)),
            mlp_hidden=int(head.get("mlp_hidden", 256)),
        )


class AttentionPooler(nn.Module):
    """`num_queries` learned tokens cross-attend to the input tokens. Keys `query_tokens`,
    `cross_attn.{in_proj_weight,in_proj_bias,out_proj.*}`."""

    def __init__(self, hidden_dim: int, num_queries: int, num_heads: int) -> None:
        super().__init__()
        self.query_tokens = nn.Parameter(torch.empty(num_queries, hidden_dim))
        self.cross_attn = nn.MultiheadAttention(hidden_dim, num_heads, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        queries = self.query_tokens.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        pooled, _ = self.cross_attn(queries, tokens, tokens, need_weights=False)
        return pooled


class DurationHead(nn.Module):
    """`forward(video_tokens, audio_tokens)` → predicted seconds, shape (B,)."""

    def __init__(self, config: DurationHeadConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DurationHeadConfig()
        hidden = cfg.pooler_hidden_dim
        self.video_input_proj = nn.Linear(cfg.video_dim, hidden)
        self.video_modality_emb = nn.Parameter(torch.empty(hidden))
        self.audio_input_proj = nn.Linear(cfg.audio_dim, hidden)
        self.audio_modality_emb = nn.Parameter(torch.empty(hidden))
        self.attention_pooler = AttentionPooler(hidden, cfg.num_queries, cfg.num_pooler_heads)
        self.mlp_hidden = nn.Linear(hidden * cfg.num_queries, cfg.mlp_hidden)
        self.mlp_out = nn.Linear(cfg.mlp_hidden, 1)

    def forward(
        self, video_tokens: torch.Tensor | None = None, audio_tokens: torch.Tensor | None = None
    ) -> torch.Tensor:
        if video_tokens is None and audio_tokens is None:
            raise ValueError("the duration head needs video tokens, audio tokens or both")
        groups = []
        if video_tokens is not None:
            groups.append(self.video_input_proj(video_tokens) + self.video_modality_emb)
        if audio_tokens is not None:
            groups.append(self.audio_input_proj(audio_tokens) + self.audio_modality_emb)
        pooled = self.attention_pooler(torch.cat(groups, dim=1))
        hidden = gelu_tanh(self.mlp_hidden(pooled.reshape(pooled.shape[0], -1)))
        return self.mlp_out(hidden).squeeze(-1).exp()

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Deterministic random weights (tiny checkpoints, tests)."""
        for name, param in self.named_parameters():
            if param.ndim == 2 and name.endswith("weight"):
                values = torch.randn(param.shape, generator=generator) / param.shape[1] ** 0.5
            else:
                values = 0.1 * torch.randn(param.shape, generator=generator)
            param.copy_(values.to(param.dtype))


def build_duration_head(config: Mapping[str, Any]) -> DurationHead:
    """Build the head from a checkpoint's `config` metadata (the duration-head file's)."""
    return DurationHead(DurationHeadConfig.from_checkpoint_config(config))


def _snap_down(frames: int) -> int:
    return ((frames - 1) // 8) * 8 + 1


def frames_for_duration(
    seconds: float,
    fps: float,
    min_seconds: float = DEFAULT_DURATION_RANGE[0],
    max_seconds: float = DEFAULT_DURATION_RANGE[1],
) -> int:
    """Predicted seconds → a frame count of the form 8k+1 (ltx-2.5.md §3.6).

    `round(seconds·fps)` is clamped to `[round(min·fps), round(max·fps)]`, then snapped down to
    8k+1; if that falls below the minimum it goes up to the next 8k+1, capped at the maximum.
    A prediction outside the range is logged as a warning.
    """
    if fps <= 0:
        raise UsageError(f"fps must be positive, got {fps}", "pass --fps with a positive value")
    if not 0 < min_seconds <= max_seconds:
        raise UsageError(
            f"auto-duration range {min_seconds}..{max_seconds} s is invalid",
            "give --auto-duration MIN MAX with 0 < MIN <= MAX",
        )
    lo, hi = round(min_seconds * fps), round(max_seconds * fps)
    frames = _snap_down(min(max(round(seconds * fps), lo), hi))
    if frames < lo:
        frames = min(-(-(lo - 1) // 8) * 8 + 1, hi)
    if not min_seconds <= seconds <= max_seconds:
        logger.warning(
            "predicted duration %.2f s is outside %.2f..%.2f s; using %.2f s (%d frames, %.2f fps)",
            seconds,
            min_seconds,
            max_seconds,
            frames / fps,
            frames,
            fps,
        )
    else:
        logger.info("predicted duration %.2f s (%d frames at %.2f fps)", seconds, frames, fps)
    return frames


@torch.no_grad()
def predict_num_frames(
    head: DurationHead,
    fps: float,
    *,
    video_encoding: torch.Tensor | None = None,
    audio_encoding: torch.Tensor | None = None,
    min_seconds: float = DEFAULT_DURATION_RANGE[0],
    max_seconds: float = DEFAULT_DURATION_RANGE[1],
) -> int:
    """Frames for one prompt from its connector outputs (the positive prompt's only)."""
    seconds = head(video_encoding, audio_encoding)
    if seconds.numel() != 1:
        raise UsageError(
            f"auto-duration predicts one prompt at a time, got a batch of {seconds.numel()}",
            "pass --num-frames for batched prompts",
        )
    return frames_for_duration(float(seconds.item()), fps, min_seconds, max_seconds)
