"""RoPE: frequency ladder precision, angle layout and rotation against hand-written formulas.
The position grids are tested with `ltx2cli.diffusion.patchify`."""

from __future__ import annotations

import math

import pytest
import torch

from ltx2cli.models.rope import apply_rope, frequency_grid, rope_tables

THETA = 10000.0
VIDEO_MAX_POS = (20, 2048, 2048)
FPS = 24.0
ANGLE_ATOL = 5e-3


def test_frequency_grid_uses_float64_ladder() -> None:
    # 19B video: dim 4096 over 3 axes → 682 frequencies.
    count = 4096 // 6
    grid = frequency_grid(THETA, 3, 4096, double_precision=True)
    by_hand = torch.tensor(
        [THETA ** (k / (count - 1)) * math.pi / 2 for k in range(count)], dtype=torch.float64
    ).to(torch.float32)
    assert grid.shape == (count,)
    assert torch.equal(grid, by_hand)
    assert grid[0].item() == pytest.approx(math.pi / 2)
    assert grid[-1].item() == pytest.approx(THETA * math.pi / 2, rel=1e-6)
    # The float32 ladder differs somewhere: the precision setting matters.
    assert not torch.equal(frequency_grid(THETA, 3, 4096, double_precision=False), grid)


def _video_bounds(t: tuple[float, float], y: tuple[float, float], x: tuple[float, float]):
    return torch.tensor([[[t], [y], [x]]], dtype=torch.float32).reshape(1, 3, 1, 2)


def test_video_table_matches_hand_formula_frequency_major() -> None:
    dim, heads = 12, 2  # 2 frequencies × 3 axes = 6 angles = dim / 2, no padding
    bounds = [
        ((0.0, 1 / FPS), (32.0, 64.0), (0.0, 32.0)),
        ((1 / FPS, 9 / FPS), (0.0, 32.0), (64.0, 96.0)),
    ]
    positions = torch.cat([_video_bounds(*b) for b in bounds], dim=2)  # (1, 3, 2, 2)
    cos, sin = rope_tables(positions, dim, heads, THETA, VIDEO_MAX_POS)
    assert cos.shape == (1, 2, heads, dim // (2 * heads))

    omega = [math.pi / 2, THETA * math.pi / 2]  # N = 2 → exponents 0 and 1
    for token, (t, y, x) in enumerate(bounds):
        u = [
            2 * ((lo + hi) / 2) / m - 1
            for (lo, hi), m in zip((t, y, x), VIDEO_MAX_POS, strict=True)
        ]
        angles = [omega[k] * u[a] for k in range(2) for a in range(3)]  # frequency-major
        flat_cos = cos[0, token].reshape(-1)
        flat_sin = sin[0, token].reshape(-1)
        # float32 angles of up to theta·π/2 ≈ 15708 carry ~1e-3 absolute rounding.
        assert torch.allclose(
            flat_cos, torch.tensor([math.cos(v) for v in angles]), atol=ANGLE_ATOL
        )
        assert torch.allclose(
            flat_sin, torch.tensor([math.sin(v) for v in angles]), atol=ANGLE_ATOL
        )


def test_missing_channels_pad_front_with_identity() -> None:
    dim, heads = 16, 2  # 6 angles for 8 slots → 2 identity slots at the front of head 0
    positions = _video_bounds((0.0, 1 / FPS), (0.0, 32.0), (0.0, 32.0))
    cos, sin = rope_tables(positions, dim, heads, THETA, VIDEO_MAX_POS)
    flat_cos, flat_sin = cos[0, 0].reshape(-1), sin[0, 0].reshape(-1)
    assert torch.equal(flat_cos[:2], torch.ones(2))
    assert torch.equal(flat_sin[:2], torch.zeros(2))
    u_t = 2 * (0.5 / FPS) / VIDEO_MAX_POS[0] - 1
    assert flat_cos[2].item() == pytest.approx(math.cos(math.pi / 2 * u_t), abs=1e-6)


def test_apply_rope_rotates_first_half_against_second_half() -> None:
    angles = torch.tensor([0.3, -1.1])  # one head, head dim 4
    cos, sin = angles.cos().view(1, 1, 1, 2), angles.sin().view(1, 1, 1, 2)
    a, b, c, d = 1.0, 2.0, 3.0, 4.0
    out = apply_rope(torch.tensor([[[a, b, c, d]]]), cos, sin)[0, 0]
    c0, c1, s0, s1 = (math.cos(0.3), math.cos(-1.1), math.sin(0.3), math.sin(-1.1))
    expected = torch.tensor([a * c0 - c * s0, b * c1 - d * s1, c * c0 + a * s0, d * c1 + b * s1])
    assert torch.allclose(out, expected, atol=1e-6)
