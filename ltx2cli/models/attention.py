"""Multi-head attention of the LTX-2 transformer and text connectors.

- q/k/v/out Linears all biased; `q_norm`/`k_norm` are RMSNorms with a weight over the WHOLE inner
  dim (all heads jointly), applied before RoPE.
- RoPE on q with `pe` and on k with `k_pe` (or `pe`); text cross-attention gets none.
- Attention is `F.scaled_dot_product_attention` (scale 1/√d, no dropout, not causal).
- STG perturbation: a per-sample keep mask blends `attn·keep + v·(1 − keep)`; when every sample is
  perturbed the q/k path is skipped and the value projection passes through.
- LTX-2.3 gated attention: `out_h *= 2·sigmoid(to_gate_logits(x))_h` per head, after the
  perturbation blend and before `to_out`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ltx2cli.models.rope import apply_rope

RopeTables = tuple[torch.Tensor, torch.Tensor]


class Attention(nn.Module):
    """Keys: `to_q`, `to_k`, `to_v`, `to_out.0`, `q_norm.weight`, `k_norm.weight`,
    optional `to_gate_logits`."""

    def __init__(
        self,
        query_dim: int,
        heads: int,
        dim_head: int,
        context_dim: int | None = None,
        norm_eps: float = 1e-6,
        gated: bool = False,
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.dim_head = dim_head
        self.q_norm = nn.RMSNorm(inner, eps=norm_eps)
        self.k_norm = nn.RMSNorm(inner, eps=norm_eps)
        self.to_q = nn.Linear(query_dim, inner)
        self.to_k = nn.Linear(context_dim, inner)
        self.to_v = nn.Linear(context_dim, inner)
        self.to_gate_logits = nn.Linear(query_dim, heads) if gated else None
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Identity())

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        pe: RopeTables | None = None,
        k_pe: RopeTables | None = None,
        keep: torch.Tensor | None = None,
        skip_attention: bool = False,
    ) -> torch.Tensor:
        """`x` (B, T, query_dim), `context` (B, S, context_dim) → (B, T, query_dim).

        `mask`: additive bias broadcastable to (B, H, T, S). `keep`: (B, 1, 1) in {0, 1} for a
        batch where only some samples are perturbed; `skip_attention`: every sample is.
        """
        context = x if context is None else context
        v = self.to_v(context)
        if skip_attention:
            out = v
        else:
            q = self.q_norm(self.to_q(x))
            k = self.k_norm(self.to_k(context))
            if pe is not None:
                q = apply_rope(q, *pe)
                k = apply_rope(k, *(pe if k_pe is None else k_pe))
            out = self._sdpa(q, k, v, mask)
            if keep is not None:
                out = out * keep + v * (1 - keep)
        if self.to_gate_logits is not None:
            b, t, _ = out.shape
            gates = 2.0 * torch.sigmoid(self.to_gate_logits(x))  # (B, T, H)
            out = (out.view(b, t, self.heads, self.dim_head) * gates.unsqueeze(-1)).view(b, t, -1)
        return self.to_out(out)

    def _sdpa(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        b, t, _ = q.shape
        q, k, v = (z.view(b, -1, self.heads, self.dim_head).transpose(1, 2) for z in (q, k, v))
        if mask is not None:
            while mask.ndim < 4:
                mask = mask.unsqueeze(-3) if mask.ndim == 3 else mask.unsqueeze(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, d)
        return out.transpose(1, 2).reshape(b, t, self.heads * self.dim_head)
