"""Seeded CPU noise and the flow-matching noiser in both reference formulations."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ltx2cli.compat import CURRENT, V1_0_0
from ltx2cli.diffusion.noise import (
    gaussian,
    make_generator,
    noise_state,
    noise_states,
    standardized_noise,
)
from ltx2cli.diffusion.patchify import VideoLatentShape, audio_latent_shape
from ltx2cli.diffusion.state import AV, AudioGrid, VideoGrid

SEED = 10
STAGE_2_NOISE_SCALE = 0.909375
SHAPE = VideoLatentShape(1, 4, 2, 2, 3)
FPS = 24.0
BF16_NOISE_SHAPE = (3, 40)


def video_state(clean: torch.Tensor | None = None):
    return VideoGrid(SHAPE, FPS).initial_state(clean)


def test_noise_is_drawn_on_the_cpu_from_the_seed():
    expected = torch.randn(3, 5, generator=torch.Generator().manual_seed(SEED))
    assert torch.equal(gaussian((3, 5), make_generator(SEED)), expected)


def test_noise_is_drawn_in_the_latent_dtype_like_the_reference():
    # The reference calls randn with the latent's dtype; for bf16 that is a different stream
    # from float32 randn rounded to bf16 (for tensors of 16+ elements).
    generator = torch.Generator().manual_seed(SEED)
    direct = torch.randn(BF16_NOISE_SHAPE, generator=generator, dtype=torch.bfloat16)
    rounded = torch.randn(BF16_NOISE_SHAPE, generator=torch.Generator().manual_seed(SEED))
    assert not torch.equal(direct, rounded.to(torch.bfloat16))
    half = gaussian(BF16_NOISE_SHAPE, make_generator(SEED), dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16 and torch.equal(half, direct)
    state = VideoGrid(SHAPE, FPS).initial_state(dtype=torch.bfloat16)
    noisy = noise_state(state, make_generator(SEED))
    assert noisy.latent.dtype == torch.bfloat16
    expected = torch.randn(state.latent.shape, generator=torch.Generator().manual_seed(SEED),
                           dtype=torch.bfloat16)  # fmt: skip
    assert torch.equal(noisy.latent, expected)


def test_fully_masked_tokens_become_pure_noise_at_scale_one():
    state = video_state(torch.randn(SHAPE.size))
    noisy = noise_state(state, make_generator(SEED))
    assert torch.equal(noisy.latent, gaussian(state.latent.shape, make_generator(SEED)))
    assert torch.equal(noisy.clean_latent, state.clean_latent)


def test_noiser_respects_the_mask_and_noise_scale():
    clean = torch.randn(SHAPE.size)
    state = video_state(clean)
    mask = state.denoise_mask.clone()
    mask[:, :6] = 0.0  # kept clean
    mask[:, 6:9] = 0.25  # partially conditioned
    state = replace(state, denoise_mask=mask)
    noisy = noise_state(state, make_generator(SEED), STAGE_2_NOISE_SCALE)
    noise = gaussian(state.latent.shape, make_generator(SEED))
    tokens = state.clean_latent
    assert torch.equal(noisy.latent[:, :6], tokens[:, :6])
    # latent == clean: x = (1 − m·s)·clean + m·s·noise
    ms = 0.25 * STAGE_2_NOISE_SCALE
    expected = (1 - ms) * tokens[:, 6:9] + ms * noise[:, 6:9]
    assert torch.allclose(noisy.latent[:, 6:9], expected, atol=1e-6)
    s = STAGE_2_NOISE_SCALE
    expected = (1 - s) * tokens[:, 9:] + s * noise[:, 9:]
    assert torch.allclose(noisy.latent[:, 9:], expected, atol=1e-6)


def test_video_is_noised_before_audio_from_one_generator():
    states = AV(video=video_state(), audio=AudioGrid(audio_latent_shape(5)).initial_state())
    noisy = noise_states(states, make_generator(SEED))
    generator = make_generator(SEED)
    video_noise = gaussian(states.video.latent.shape, generator)
    audio_noise = gaussian(states.audio.latent.shape, generator)
    assert torch.equal(noisy.video.latent, video_noise)
    assert torch.equal(noisy.audio.latent, audio_noise)


def test_standardized_noise_is_float64_with_zero_mean_unit_std_per_item():
    like = torch.zeros(2, 50, 8)
    noise = standardized_noise(like, make_generator(-1))
    assert noise.dtype == torch.float64
    assert noise.mean(dim=(-2, -1)).abs().max() < 1e-12
    assert noise.std(dim=(-2, -1)).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    assert torch.equal(noise, standardized_noise(like, make_generator(-1)))


def test_noiser_formulas_of_both_releases():
    # A state whose noisy latent differs from its clean latent, with masks 0, 0.25 and 1:
    # current x = lerp(clean, lerp(latent, ε, s), m) = (1 − m)·clean + m·((1 − s)·latent + s·ε);
    # 1.0.0   x = ε·m·s + latent·(1 − m·s) (clean_latent plays no part).
    state = video_state(torch.randn(SHAPE.size))
    latent = torch.randn(state.latent.shape)
    mask = torch.ones_like(state.denoise_mask)
    mask[:, :4] = 0.0
    mask[:, 4:8] = 0.25
    state = replace(state, latent=latent, denoise_mask=mask)
    noise = gaussian(latent.shape, make_generator(SEED))
    clean, m, s = state.clean_latent, mask, STAGE_2_NOISE_SCALE
    current = noise_state(state, make_generator(SEED), s, CURRENT).latent
    torch.testing.assert_close(current, (1 - m) * clean + m * ((1 - s) * latent + s * noise))
    v1 = noise_state(state, make_generator(SEED), s, V1_0_0).latent
    torch.testing.assert_close(v1, noise * m * s + latent * (1 - m * s))
    assert torch.equal(v1[:, :4], latent[:, :4]) and torch.equal(current[:, :4], clean[:, :4])


def test_noiser_releases_agree_where_latent_equals_clean():
    state = video_state(torch.randn(SHAPE.size))
    mask = torch.full_like(state.denoise_mask, 0.4)
    state = replace(state, denoise_mask=mask)
    current = noise_states(AV(video=state), make_generator(SEED), STAGE_2_NOISE_SCALE, CURRENT)
    v1 = noise_states(AV(video=state), make_generator(SEED), STAGE_2_NOISE_SCALE, V1_0_0)
    torch.testing.assert_close(current.video.latent, v1.video.latent)


def test_noiser_1_0_0_keeps_the_bf16_latent_dtype_and_draws_bf16_noise():
    state = VideoGrid(SHAPE, FPS).initial_state(dtype=torch.bfloat16)
    noisy = noise_state(state, make_generator(SEED), compat=V1_0_0)
    expected = torch.randn(state.latent.shape, generator=torch.Generator().manual_seed(SEED),
                           dtype=torch.bfloat16)  # fmt: skip
    assert noisy.latent.dtype == torch.bfloat16 and torch.equal(noisy.latent, expected)
