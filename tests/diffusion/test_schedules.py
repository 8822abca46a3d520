"""Sigma schedules against their formulas and the reference implementation's published values."""

from __future__ import annotations

import math

import pytest
import torch

from ltx2cli.diffusion.schedules import (
    DISTILLED_SIGMAS_STAGE_1,
    DISTILLED_SIGMAS_STAGE_2,
    beta_ppf,
    beta_sigmas,
    distilled_sigmas,
    linear_quadratic_sigmas,
    ltx2_shift,
    ltx2_sigmas,
    video_token_count,
)

ANCHOR_LOW, SHIFT_LOW = 1024, 0.95
ANCHOR_HIGH, SHIFT_HIGH = 4096, 2.05
TERMINAL = 0.1
FLOAT32_TOL = 2e-6
TABLE_TOL = 6e-5  # the reference table is rounded to 4 decimals

# The reference's LTX-2 schedules (float64, 4 decimals): shift 2.05 (the default 4096 tokens),
# and the HQ pipeline's 1920x1088 stage 1 (8160 tokens, shift 3.5052).
REFERENCE_4096_TOKENS = {
    8: [1.0, 0.9657, 0.9219, 0.8639, 0.7834, 0.6646, 0.4710, 0.1, 0.0],
    15: [
        1.0, 0.9872, 0.9728, 0.9564, 0.9374, 0.9154, 0.8894, 0.8583,
        0.8205, 0.7735, 0.7135, 0.6341, 0.5243, 0.3625, 0.1, 0.0,
    ],
    20: [
        1.0, 0.9915, 0.9821, 0.9718, 0.9605, 0.9478, 0.9337, 0.9178, 0.8998, 0.8792, 0.8554,
        0.8276, 0.7948, 0.7553, 0.7071, 0.6467, 0.5690, 0.4652, 0.3194, 0.1, 0.0,
    ],
    30: [
        1.0, 0.9950, 0.9896, 0.9839, 0.9778, 0.9714, 0.9644, 0.9570, 0.9490, 0.9403, 0.9310,
        0.9209, 0.9098, 0.8977, 0.8845, 0.8699, 0.8537, 0.8356, 0.8153, 0.7924, 0.7664,
        0.7364, 0.7017, 0.6608, 0.6121, 0.5531, 0.4802, 0.3875, 0.2661, 0.1, 0.0,
    ],
    40: [
        1.0, 0.9964, 0.9927, 0.9889, 0.9848, 0.9805, 0.9760, 0.9713, 0.9663, 0.9611, 0.9556,
        0.9498, 0.9436, 0.9370, 0.9300, 0.9226, 0.9147, 0.9062, 0.8972, 0.8874, 0.8769,
        0.8656, 0.8533, 0.8399, 0.8253, 0.8093, 0.7918, 0.7723, 0.7507, 0.7265, 0.6993,
        0.6685, 0.6332, 0.5924, 0.5448, 0.4884, 0.4207, 0.3378, 0.2339, 0.1, 0.0,
    ],
}  # fmt: skip
REFERENCE_15_STEPS_8160 = [
    1.0, 0.9935, 0.9860, 0.9773, 0.9672, 0.9550, 0.9403, 0.9221,
    0.8991, 0.8689, 0.8277, 0.7680, 0.6739, 0.5034, 0.1, 0.0,
]  # fmt: skip
HQ_TOKENS = 16 * 17 * 30
HQ_SHIFT = 3.5052


def hand_ltx2(steps: int, tokens: int) -> list[float]:
    """The LTX-2 schedule in float64: shift linear in tokens through (1024, 0.95) and
    (4096, 2.05), σ = e^shift/(e^shift + 1/s − 1), stretched so the last nonzero σ is 0.1."""
    slope = (SHIFT_HIGH - SHIFT_LOW) / (ANCHOR_HIGH - ANCHOR_LOW)
    shift = slope * tokens + (SHIFT_LOW - slope * ANCHOR_LOW)
    grid = [1 - i / steps for i in range(steps + 1)]
    shifted = [math.exp(shift) / (math.exp(shift) + 1 / s - 1) if s else 0.0 for s in grid]
    scale = (1 - shifted[-2]) / (1 - TERMINAL)
    return [1 - (1 - s) / scale if s else 0.0 for s in shifted]


def test_distilled_sigma_lists_are_exact():
    assert DISTILLED_SIGMAS_STAGE_1 == (
        1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0
    )  # fmt: skip
    assert DISTILLED_SIGMAS_STAGE_2 == (0.909375, 0.725, 0.421875, 0.0)
    float32_list = torch.tensor(DISTILLED_SIGMAS_STAGE_1, dtype=torch.float32)
    assert torch.equal(distilled_sigmas(1), float32_list)
    assert distilled_sigmas(2).dtype == torch.float32
    with pytest.raises(ValueError):
        distilled_sigmas(3)


@pytest.mark.parametrize(
    ("tokens", "shift"),
    [(ANCHOR_LOW, SHIFT_LOW), (ANCHOR_HIGH, SHIFT_HIGH), (HQ_TOKENS, HQ_SHIFT)],
)
def test_shift_is_linear_in_token_count(tokens, shift):
    assert ltx2_shift(tokens) == pytest.approx(shift, abs=1e-4)


@pytest.mark.parametrize(
    ("steps", "tokens"), [(8, 4096), (15, 4096), (30, 4096), (40, 4096), (15, 8160), (20, 1024)]
)
def test_ltx2_schedule_matches_hand_formula(steps, tokens):
    sigmas = ltx2_sigmas(steps, tokens=tokens)
    assert sigmas.dtype == torch.float32
    assert sigmas.tolist() == pytest.approx(hand_ltx2(steps, tokens), abs=FLOAT32_TOL)


def float32_ltx2(steps: int, tokens: int) -> torch.Tensor:
    """The LTX-2 schedule evaluated as the reference does: float32 tensors, Python-float shift,
    zero entries masked out after the shift, stretch on the nonzero entries."""
    slope = (SHIFT_HIGH - SHIFT_LOW) / (ANCHOR_HIGH - ANCHOR_LOW)
    exp_shift = math.exp(tokens * slope + (SHIFT_LOW - slope * ANCHOR_LOW))
    grid = torch.linspace(1.0, 0.0, steps + 1)
    shifted = torch.where(grid != 0, exp_shift / (exp_shift + (1 / grid - 1)), 0.0)
    nonzero = shifted != 0
    one_minus = 1.0 - shifted[nonzero]
    shifted[nonzero] = 1.0 - one_minus / (one_minus[-1] / (1.0 - TERMINAL))
    return shifted


@pytest.mark.parametrize("steps", [2, 8, 15, 30, 40])
@pytest.mark.parametrize("tokens", [ANCHOR_LOW, ANCHOR_HIGH, HQ_TOKENS])
def test_ltx2_schedule_is_the_float32_formula_bit_for_bit(steps, tokens):
    assert torch.equal(ltx2_sigmas(steps, tokens=tokens), float32_ltx2(steps, tokens))


@pytest.mark.parametrize("steps", sorted(REFERENCE_4096_TOKENS))
def test_default_ltx2_schedule_uses_4096_tokens_and_matches_reference_table(steps):
    default = ltx2_sigmas(steps)
    assert default.tolist() == pytest.approx(REFERENCE_4096_TOKENS[steps], abs=TABLE_TOL)
    assert torch.equal(default, ltx2_sigmas(steps, tokens=ANCHOR_HIGH))


def test_hq_schedule_uses_the_stage_1_token_count_and_matches_reference_table():
    hq = ltx2_sigmas(15, tokens=video_token_count((1, 128, 16, 17, 30)))
    assert hq.tolist() == pytest.approx(REFERENCE_15_STEPS_8160, abs=TABLE_TOL)


@pytest.mark.parametrize("steps", [2, 8, 30, 40])
def test_ltx2_schedule_is_monotone_from_one_to_zero_with_terminal(steps):
    sigmas = ltx2_sigmas(steps)
    assert len(sigmas) == steps + 1
    assert float(sigmas[0]) == pytest.approx(1.0, abs=FLOAT32_TOL) and sigmas[-1] == 0.0
    assert bool((sigmas[1:] < sigmas[:-1]).all())
    assert float(sigmas[-2]) == pytest.approx(TERMINAL, abs=FLOAT32_TOL)


def test_single_step_schedule_is_one_then_zero():
    for tokens in (ANCHOR_HIGH, HQ_TOKENS):
        assert ltx2_sigmas(1, tokens=tokens).tolist() == pytest.approx([1.0, 0.0], abs=FLOAT32_TOL)


def test_unstretched_schedule_is_the_plain_time_shift():
    sigmas = ltx2_sigmas(4, stretch=False)
    # s = 0.5 with shift 2.05: e^2.05 / (e^2.05 + 1)
    assert float(sigmas[2]) == pytest.approx(math.exp(2.05) / (math.exp(2.05) + 1), abs=1e-6)


def test_linear_quadratic_schedule_hand_computed():
    # 4 steps, threshold 0.025, 2 linear steps: levels 0, 0.0125, then the quadratic part
    # 0.2375 i² − 0.9375 i + 0.95 at i = 2, 3 → 0.025, 0.275, then 1; flipped.
    expected = [1.0, 0.9875, 0.975, 0.725, 0.0]
    assert linear_quadratic_sigmas(4).tolist() == pytest.approx(expected, abs=1e-6)
    assert linear_quadratic_sigmas(1).tolist() == [1.0, 0.0]


@pytest.mark.parametrize("steps", [2, 7, 20])
def test_linear_quadratic_schedule_is_monotone(steps):
    sigmas = linear_quadratic_sigmas(steps)
    assert len(sigmas) == steps + 1 and sigmas[0] == 1.0 and sigmas[-1] == 0.0
    assert bool((sigmas[1:] < sigmas[:-1]).all())


@pytest.mark.parametrize("x", [0.1, 0.3, 0.5, 0.8])
def test_beta_ppf_inverts_the_closed_form_beta_2_5_cdf(x):
    # Beta(2, 5) CDF = P(Binomial(6, x) >= 2)
    cdf = sum(math.comb(6, j) * x**j * (1 - x) ** (6 - j) for j in range(2, 7))
    assert beta_ppf(cdf, 2.0, 5.0) == pytest.approx(x, abs=1e-9)


def test_beta_ppf_symmetric_case():
    assert beta_ppf(0.5, 0.6, 0.6) == pytest.approx(0.5, abs=1e-12)
    assert beta_ppf(0.2, 0.6, 0.6) == pytest.approx(1 - beta_ppf(0.8, 0.6, 0.6), abs=1e-12)


def test_beta_schedule_values():
    # 2 steps: quantiles 1 and 0.5 → table indices 9999 and round(0.5·9999) = 5000 (half to
    # even), i.e. t = 1 and t = 0.5001 through the 2.37 shift.
    shift = math.exp(2.37)
    t = 5001 / 10000
    expected = [1.0, shift / (shift + 1 / t - 1), 0.0]
    assert beta_sigmas(2).tolist() == pytest.approx(expected, abs=1e-6)
    sigmas = beta_sigmas(12)
    assert float(sigmas[0]) == pytest.approx(1.0, abs=FLOAT32_TOL)
    assert sigmas[-1] == 0.0 and len(sigmas) <= 13
    assert bool((sigmas[1:] < sigmas[:-1]).all())
