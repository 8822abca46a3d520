"""Neighbourhood attention against a direct per-query masked softmax (NATTEN semantics)."""

from __future__ import annotations

import itertools

import pytest
import torch

from ltx2cli.models.neighborhood_attention import (
    SCORE_BUDGET,
    neighborhood_attention_3d,
    window_starts,
)


def _direct(q, k, v, kernel):
    """For every query: softmax(q·k) over its window, the window shifted inward at borders."""
    b, t, h, w, heads, d = q.shape
    out = torch.zeros_like(v, dtype=torch.float64)
    qd, kd, vd = (x.double() for x in (q, k, v))
    for i, j, m in itertools.product(range(t), range(h), range(w)):
        lo = []
        for pos, n, kk in zip((i, j, m), (t, h, w), kernel, strict=True):
            start = pos - kk // 2
            start = max(0, min(start, n - kk))
            lo.append(start)
        keys = kd[
            :, lo[0] : lo[0] + kernel[0], lo[1] : lo[1] + kernel[1], lo[2] : lo[2] + kernel[2]
        ]
        vals = vd[
            :, lo[0] : lo[0] + kernel[0], lo[1] : lo[1] + kernel[1], lo[2] : lo[2] + kernel[2]
        ]
        keys = keys.reshape(b, -1, heads, d)
        vals = vals.reshape(b, -1, heads, d)
        scores = torch.einsum("bhd,bnhd->bhn", qd[:, i, j, m], keys)
        weights = torch.softmax(scores, dim=-1)
        out[:, i, j, m] = torch.einsum("bhn,bnhd->bhd", weights, vals)
    return out


@pytest.mark.parametrize(
    ("dims", "kernel"),
    [
        ((3, 7, 7), (3, 5, 5)),
        ((5, 6, 9), (3, 3, 5)),
        ((4, 4, 4), (3, 3, 3)),
        ((1, 5, 3), (1, 3, 3)),
    ],
)
def test_matches_direct_masked_softmax(dims, kernel) -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, *dims, 2, 4, generator=g) for _ in range(3))
    out = neighborhood_attention_3d(q, k, v, kernel, use_natten=False)
    torch.testing.assert_close(out.double(), _direct(q, k, v, kernel), rtol=1e-5, atol=1e-5)


def test_blocked_queries_match_direct_formula(monkeypatch) -> None:
    # A tiny score budget forces many query blocks, each with its own key slab.
    monkeypatch.setattr("ltx2cli.models.neighborhood_attention.SCORE_BUDGET", 64)
    assert SCORE_BUDGET > 64
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 5, 8, 7, 1, 4, generator=g) for _ in range(3))
    out = neighborhood_attention_3d(q, k, v, (3, 5, 3), use_natten=False)
    torch.testing.assert_close(out.double(), _direct(q, k, v, (3, 5, 3)), rtol=1e-5, atol=1e-5)


def test_kernel_as_large_as_the_volume_is_full_attention() -> None:
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 3, 3, 3, 2, 4, generator=g) for _ in range(3))
    out = neighborhood_attention_3d(q, k, v, (3, 3, 3), use_natten=False)
    flat = lambda x: x.reshape(1, 27, 2, 4).transpose(1, 2)  # noqa: E731
    full = torch.softmax(flat(q) @ flat(k).transpose(-1, -2), dim=-1) @ flat(v)
    torch.testing.assert_close(out, full.transpose(1, 2).reshape(1, 3, 3, 3, 2, 4))


def test_window_starts_shift_inward_at_borders() -> None:
    assert window_starts(7, 3).tolist() == [0, 0, 1, 2, 3, 4, 4]
    assert window_starts(5, 5).tolist() == [0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="larger"):
        window_starts(2, 3)


def test_axes_shorter_than_the_kernel_are_rejected() -> None:
    x = torch.zeros(1, 2, 5, 5, 1, 4)
    with pytest.raises(ValueError, match="kernel"):
        neighborhood_attention_3d(x, x, x, (3, 3, 3), use_natten=False)


def test_q_and_k_are_cast_to_the_value_dtype() -> None:
    g = torch.Generator().manual_seed(3)
    q, k = (torch.randn(1, 3, 3, 3, 1, 4, generator=g) for _ in range(2))
    v = torch.randn(1, 3, 3, 3, 1, 4, generator=g, dtype=torch.float64)
    out = neighborhood_attention_3d(q, k, v, (3, 3, 3), use_natten=False)
    assert out.dtype == torch.float64
