"""LatentState helpers: post-processing and the velocity/x0 conversions (x0 = x − σ·v)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ltx2cli.diffusion.patchify import VideoLatentShape
from ltx2cli.diffusion.state import VideoGrid, to_denoised, to_velocity

SHAPE = VideoLatentShape(1, 8, 2, 2, 2)
FPS = 24.0
PARTIAL_MASK = 0.3


def conditioned_state():
    torch.manual_seed(0)
    state = VideoGrid(SHAPE, FPS).initial_state(torch.randn(SHAPE.size))
    mask = torch.full_like(state.denoise_mask, PARTIAL_MASK)
    mask[:, :2] = 0.0
    mask[:, -2:] = 1.0
    return replace(state, denoise_mask=mask)


def test_post_process_reimposes_the_clean_tokens():
    state = conditioned_state()
    denoised = torch.randn_like(state.latent)
    out = state.post_process(denoised)
    assert torch.equal(out[:, :2], state.clean_latent[:, :2])
    assert torch.equal(out[:, -2:], denoised[:, -2:])
    middle = PARTIAL_MASK * denoised[:, 2:-2] + (1 - PARTIAL_MASK) * state.clean_latent[:, 2:-2]
    assert torch.allclose(out[:, 2:-2], middle, atol=1e-6)


def test_post_process_of_a_float64_update_rounds_the_clean_term_to_float32():
    # res_2s post-processes its float64 update; the reference forms clean·(1 − m) from the
    # float32 clean latent and float32 mask, so that product is rounded to float32.
    state = conditioned_state()
    denoised = torch.randn(state.latent.shape, dtype=torch.float64)
    mask = state.denoise_mask
    clean_term = (state.clean_latent.float() * (1 - mask)).double()
    expected = denoised * mask.double() + clean_term
    out = state.post_process(denoised)
    assert out.dtype == torch.float64
    assert torch.equal(out, expected)
    all_float64 = denoised * mask.double() + state.clean_latent.double() * (1 - mask.double())
    assert not torch.equal(out, all_float64)


def test_post_process_of_bf16_x0_is_computed_in_float32():
    state = conditioned_state()
    denoised = torch.randn_like(state.latent).to(torch.bfloat16)
    mask = state.denoise_mask
    expected = (denoised.float() * mask + state.clean_latent * (1 - mask)).to(torch.bfloat16)
    assert torch.equal(state.post_process(denoised), expected)


@pytest.mark.parametrize("sigma", [0.0, torch.tensor(0.0), torch.tensor([0.0])])
def test_velocity_at_sigma_zero_is_an_error(sigma):
    x = torch.ones(1, 2, 3)
    with pytest.raises(ValueError, match="sigma 0"):
        to_velocity(x, sigma, x)


def test_velocity_and_denoised_are_inverse_in_float32():
    x = torch.tensor([[[2.0, -1.0]]], dtype=torch.bfloat16)
    x0 = torch.tensor([[[0.5, 0.25]]], dtype=torch.bfloat16)
    v = to_velocity(x, torch.tensor(0.5), x0)
    assert v.dtype == torch.bfloat16
    assert v.float().tolist() == [[[3.0, -2.5]]]  # (2 − 0.5)/0.5, (−1 − 0.25)/0.5
    assert torch.equal(to_denoised(x, v, 0.5), x0)
