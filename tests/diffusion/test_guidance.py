"""Guider formulas on synthetic predictions, guidance schedules and default params."""

from __future__ import annotations

import pytest
import torch

from ltx2cli.compat import CURRENT, V1_0_0
from ltx2cli.diffusion.guidance import (
    LTX_2_3_DEFAULTS,
    LTX_2_3_HQ_DEFAULTS,
    LTX_2_DEFAULTS,
    GuidanceSchedule,
    GuiderParams,
    MomentumAPG,
    apg_delta,
    cfg_delta,
    cfg_star_delta,
    defaults_for_version,
    stg_delta,
)

COND, UNCOND, PERTURBED, ISOLATED = 2.0, 0.5, 1.25, 3.0


def full(value: float) -> torch.Tensor:
    return torch.full((1, 4, 3), value)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (GuiderParams(), COND),
        (GuiderParams(cfg_scale=3.0), COND + 2.0 * (COND - UNCOND)),
        (GuiderParams(stg_scale=0.5), COND + 0.5 * (COND - PERTURBED)),
        (GuiderParams(modality_scale=4.0), COND + 3.0 * (COND - ISOLATED)),
        (
            GuiderParams(cfg_scale=3.0, stg_scale=0.5, modality_scale=4.0),
            COND + 2.0 * (COND - UNCOND) + 0.5 * (COND - PERTURBED) + 3.0 * (COND - ISOLATED),
        ),
    ],
)
def test_each_guidance_term_in_isolation(params, expected):
    out = params.combine(full(COND), full(UNCOND), full(PERTURBED), full(ISOLATED))
    assert torch.allclose(out, full(expected))


def test_terms_whose_pass_did_not_run_may_be_zero():
    out = GuiderParams(cfg_scale=2.0).combine(full(COND), full(UNCOND))
    assert torch.allclose(out, full(COND + (COND - UNCOND)))


def test_rescale_uses_the_std_of_the_whole_tensor():
    torch.manual_seed(0)
    cond = torch.randn(2, 6, 4) * torch.tensor([1.0, 3.0]).view(2, 1, 1)
    uncond = torch.randn(2, 6, 4)
    plain = GuiderParams(cfg_scale=4.0).combine(cond, uncond)
    full_rescale = GuiderParams(cfg_scale=4.0, rescale_scale=1.0).combine(cond, uncond)
    assert float(full_rescale.std()) == pytest.approx(float(cond.std()), rel=1e-5)
    # one factor for every batch item, not one per item
    ratio = full_rescale / plain
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-5)
    partial = GuiderParams(cfg_scale=4.0, rescale_scale=0.7).combine(cond, uncond)
    factor = 0.7 * cond.std() / plain.std() + 0.3
    assert torch.allclose(partial, plain * factor, rtol=1e-5)


def guided_by_formula(cond, uncond, perturbed, isolated, cfg, stg, modality, rescale):
    """pred = cond + (cfg−1)(cond−uncond) + stg(cond−perturbed) + (modality−1)(cond−isolated),
    times rescale·f + 1 − rescale with f = std(cond)/std(pred), in the tensors' dtype."""
    pred = (
        cond
        + (cfg - 1) * (cond - uncond)
        + stg * (cond - perturbed)
        + (modality - 1) * (cond - isolated)
    )
    factor = cond.std() / pred.std()
    return pred * (rescale * factor + (1 - rescale))


def test_combine_runs_in_float32_currently_and_in_the_latent_dtype_for_1_0_0():
    torch.manual_seed(4)
    passes = [torch.randn(1, 64, 16).to(torch.bfloat16) for _ in range(4)]
    scales = (3.0, 1.0, 3.0, 0.7)  # the released video defaults
    params = GuiderParams(
        cfg_scale=scales[0], stg_scale=scales[1], modality_scale=scales[2], rescale_scale=scales[3]
    )
    current = params.combine(*passes, compat=CURRENT)
    v1 = params.combine(*passes, compat=V1_0_0)
    assert current.dtype == v1.dtype == torch.bfloat16
    in_float32 = guided_by_formula(*(x.float() for x in passes), *scales).to(torch.bfloat16)
    in_bf16 = guided_by_formula(*passes, *scales)
    assert torch.equal(current, in_float32)
    assert torch.equal(v1, in_bf16)
    assert not torch.equal(current, v1)


def test_combine_keeps_the_input_dtype():
    cond = full(COND).to(torch.bfloat16)
    out = GuiderParams(cfg_scale=3.0, rescale_scale=0.7).combine(cond, full(UNCOND))
    assert out.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("skip_step", "computed"),
    [(0, [0, 1, 2, 3, 4, 5, 6]), (1, [0, 2, 4, 6]), (2, [0, 3, 6])],
)
def test_skip_step_computes_every_n_plus_first_step(skip_step, computed):
    params = GuiderParams(skip_step=skip_step)
    assert [step for step in range(7) if not params.skips(step)] == computed


def test_active_passes_follow_the_neutral_values():
    neutral = GuiderParams()
    assert not (neutral.uses_uncond or neutral.uses_perturbed or neutral.uses_isolated)
    active = GuiderParams(cfg_scale=1.5, stg_scale=0.1, modality_scale=0.9)
    assert active.uses_uncond and active.uses_perturbed and active.uses_isolated


def test_guidance_schedule_picks_the_bin_by_upper_bound():
    high, low = GuiderParams(cfg_scale=5.0), GuiderParams(cfg_scale=2.0)
    schedule = GuidanceSchedule.from_mapping({0.5: low, 1.0: high})
    assert schedule.at(0.9) is high
    assert schedule.at(1.0) is high
    assert schedule.at(0.5) is low
    assert schedule.at(0.1) is low
    assert schedule.at(2.0) is high  # above every bound: the largest
    assert GuidanceSchedule.constant(low).at(0.7) is low


def test_default_params_per_generation():
    assert LTX_2_DEFAULTS.steps == 40
    video, audio = LTX_2_DEFAULTS.video, LTX_2_DEFAULTS.audio
    assert (video.cfg_scale, video.stg_scale, video.rescale_scale, video.modality_scale) == (
        3.0, 1.0, 0.7, 3.0
    )  # fmt: skip
    assert (audio.cfg_scale, audio.stg_scale, audio.rescale_scale, audio.modality_scale) == (
        7.0, 1.0, 0.7, 3.0
    )  # fmt: skip
    assert video.stg_blocks == audio.stg_blocks == (29,)
    assert LTX_2_3_DEFAULTS.steps == 30
    assert LTX_2_3_DEFAULTS.video.stg_blocks == LTX_2_3_DEFAULTS.audio.stg_blocks == (28,)
    assert LTX_2_3_DEFAULTS.audio.cfg_scale == 7.0
    hq = LTX_2_3_HQ_DEFAULTS
    assert hq.steps == 15
    assert (hq.video.stg_scale, hq.video.rescale_scale, hq.video.stg_blocks) == (0.0, 0.45, ())
    assert (hq.audio.cfg_scale, hq.audio.rescale_scale, hq.audio.modality_scale) == (7.0, 1.0, 3.0)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.3.0", LTX_2_3_DEFAULTS),
        ("2.3", LTX_2_3_DEFAULTS),
        ("2.3.rc1", LTX_2_3_DEFAULTS),
        ("2.3-rc2", LTX_2_3_DEFAULTS),
        ("2.4", LTX_2_3_DEFAULTS),  # newer generations inherit the newest known one
        ("3", LTX_2_3_DEFAULTS),
        ("2.0", LTX_2_DEFAULTS),
        ("2", LTX_2_DEFAULTS),
        ("2.2.9", LTX_2_DEFAULTS),
        ("v2.3", LTX_2_DEFAULTS),  # not numeric: unversioned
        ("", LTX_2_DEFAULTS),
        (None, LTX_2_DEFAULTS),
    ],
)
def test_defaults_follow_the_checkpoint_version(version, expected):
    assert defaults_for_version(version) is expected


def test_simple_guider_deltas():
    cond, uncond = full(COND), full(UNCOND)
    assert torch.allclose(cfg_delta(cond, uncond, 3.0), full(2.0 * (COND - UNCOND)))
    assert torch.allclose(stg_delta(cond, uncond, 0.5), full(0.5 * (COND - UNCOND)))
    # uncond parallel to cond projects onto cond exactly, so CFG-star sees no difference
    assert torch.allclose(cfg_star_delta(cond, uncond, 3.0), torch.zeros_like(cond), atol=1e-6)


def test_apg_weights_the_parallel_part_by_eta():
    cond = torch.tensor([[[1.0, 0.0]]])
    parallel_uncond = torch.tensor([[[0.5, 0.0]]])  # g = (0.5, 0) ∥ cond
    orthogonal_uncond = torch.tensor([[[1.0, -2.0]]])  # g = (0, 2) ⊥ cond
    assert torch.allclose(
        apg_delta(cond, parallel_uncond, 3.0, eta=0.5), 2.0 * 0.5 * (cond - parallel_uncond)
    )
    assert torch.allclose(
        apg_delta(cond, orthogonal_uncond, 3.0, eta=0.5), 2.0 * (cond - orthogonal_uncond)
    )
    # norm clipping: ‖g‖ = 2 clipped to 1 halves it
    clipped = apg_delta(cond, orthogonal_uncond, 3.0, norm_threshold=1.0)
    assert torch.allclose(clipped, (cond - orthogonal_uncond))


def test_momentum_apg_accumulates_per_instance():
    cond = torch.tensor([[[1.0, 0.0]]])
    first, second = torch.tensor([[[1.0, -1.0]]]), torch.tensor([[[1.0, -3.0]]])
    guider = MomentumAPG(scale=2.0, eta=1.0, norm_threshold=0.0, momentum=0.5)
    assert torch.allclose(guider(cond, first), 2.0 * (cond - first))
    # running = 0.5·(0, 1) + (0, 3) = (0, 3.5)
    assert torch.allclose(guider(cond, second), torch.tensor([[[0.0, 7.0]]]))


def test_simple_guiders_compute_in_the_input_dtype():
    # The reference's CFG-star and APG never upcast: bf16 in, bf16 arithmetic, bf16 out.
    torch.manual_seed(5)
    cond = torch.randn(1, 6, 4).to(torch.bfloat16)
    uncond = torch.randn(1, 6, 4).to(torch.bfloat16)
    coef = (cond * uncond).sum() / ((uncond * uncond).sum() + 1e-8)
    expected = 2.0 * (cond - coef * uncond)
    out = cfg_star_delta(cond, uncond, 3.0)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, expected)
    assert apg_delta(cond, uncond, 3.0).dtype == torch.bfloat16
