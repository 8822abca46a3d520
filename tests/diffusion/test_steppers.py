"""Euler, gradient estimation and res_2s sampling loops with synthetic denoisers."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from ltx2cli.diffusion.denoisers import ModelCall, SimpleDenoiser
from ltx2cli.diffusion.noise import make_generator, noise_states, standardized_noise
from ltx2cli.diffusion.patchify import VideoLatentShape, audio_latent_shape
from ltx2cli.diffusion.schedules import DISTILLED_SIGMAS_STAGE_1, ltx2_sigmas
from ltx2cli.diffusion.state import AV, AudioGrid, VideoGrid
from ltx2cli.diffusion.steppers import (
    Res2sNoise,
    euler_loop,
    euler_step,
    gradient_estimation_loop,
    phi,
    res2s_coefficients,
    res2s_loop,
    res2s_sde_step,
    sde_coefficients,
)

SEED = 10
SHAPE = VideoLatentShape(1, 4, 2, 3, 3)
AUDIO = audio_latent_shape(5)
FPS = 24.0
CONTEXTS = AV(video=torch.zeros(1, 2, 3), audio=torch.zeros(1, 2, 3))
RES2S_FINAL_SIGMA = 0.0011
SUBSTEP_SEED_OFFSET = 10000  # the reference's substep seed: step seed + 10000
MID_SIGMA = 0.6


def noisy_states(clean: AV) -> tuple[AV, AV]:
    """States whose clean latents are `clean`, fully noised; also returns the noise."""
    base = AV(
        video=VideoGrid(SHAPE, FPS).initial_state(clean.video),
        audio=AudioGrid(AUDIO).initial_state(clean.audio),
    )
    noisy = noise_states(base, make_generator(SEED))
    noise = AV(video=noisy.video.latent, audio=noisy.audio.latent)
    return noisy, noise


def clean_latents() -> AV:
    torch.manual_seed(1)
    return AV(video=torch.randn(SHAPE.size), audio=torch.randn(AUDIO.size))


class PerfectVelocity:
    """A model that knows the clean latents: v = (x − x0)/t, the velocity that points each
    token exactly at its clean value (on the straight path this is noise − x0)."""

    def __init__(self, clean: AV) -> None:
        self.x0 = AV(
            video=clean.video.flatten(2).transpose(1, 2),
            audio=clean.audio.permute(0, 2, 1, 3).flatten(2),
        )
        self.calls = 0

    def __call__(self, call: ModelCall) -> AV[torch.Tensor]:
        self.calls += 1
        return AV(
            video=(call.video.latent - self.x0.video) / call.video.timesteps,
            audio=(call.audio.latent - self.x0.audio) / call.audio.timesteps,
        )


def test_euler_step_formula_and_landing_on_x0():
    x, x0 = torch.tensor([2.0]), torch.tensor([0.5])
    # v = (2 − 0.5)/0.8 = 1.875; x' = 2 + 1.875·(0.3 − 0.8)
    assert euler_step(x, x0, 0.8, 0.3).item() == pytest.approx(2 - 1.875 * 0.5)
    assert euler_step(x, x0, 0.8, 0.0).item() == pytest.approx(0.5)


@pytest.mark.parametrize(
    "sigmas", [ltx2_sigmas(8), torch.tensor(DISTILLED_SIGMAS_STAGE_1)], ids=["ltx2", "distilled"]
)
def test_euler_with_a_perfect_velocity_recovers_the_clean_latent(sigmas):
    clean = clean_latents()
    states, _ = noisy_states(clean)
    model = PerfectVelocity(clean)
    progress: list[tuple[int, int]] = []
    out = euler_loop(states, sigmas, SimpleDenoiser(model, CONTEXTS), lambda *p: progress.append(p))
    steps = len(sigmas) - 1
    assert model.calls == steps
    assert progress[-1] == (steps, steps)
    assert torch.allclose(VideoGrid(SHAPE, FPS).unpatchify(out.video), clean.video, atol=1e-5)
    assert torch.allclose(AudioGrid(AUDIO).unpatchify(out.audio), clean.audio, atol=1e-5)


def test_euler_follows_the_straight_flow_matching_path():
    clean = clean_latents()
    states, noise = noisy_states(clean)
    model = PerfectVelocity(clean)
    half = euler_loop(states, [1.0, 0.5], SimpleDenoiser(model, CONTEXTS))
    expected = 0.5 * model.x0.video + 0.5 * noise.video
    assert torch.allclose(half.video.latent, expected, atol=1e-6)


def test_loop_keeps_clean_conditioning_tokens_whatever_the_model_says():
    clean = clean_latents()
    states, _ = noisy_states(clean)
    mask = states.video.denoise_mask.clone()
    mask[:, :9] = 0.0
    video = replace(states.video, denoise_mask=mask)
    video = replace(video, latent=torch.where(mask.bool(), video.latent, video.clean_latent))

    def garbage(current: AV, sigma: float, step: int) -> AV:
        return AV(video=torch.full_like(current.video.latent, 7.0))

    out = euler_loop(AV(video=video), ltx2_sigmas(4), garbage)
    assert torch.equal(out.video.latent[:, :9], video.clean_latent[:, :9])
    assert torch.allclose(out.video.latent[:, 9:], torch.full_like(out.video.latent[:, 9:], 7.0))


def test_gradient_estimation_extrapolates_the_velocity():
    # One scalar token, sigmas 1 → 0.5 → 0.25 → 0, x0 estimates 0, 0.2, 0.9.
    # Step 0: v0 = 1, x1 = 0.5. Step 1: v1 = (0.5 − 0.2)/0.5 = 0.6,
    # v = 2·(0.6 − 1) + 1 = 0.2, x2 = 0.5 − 0.25·0.2 = 0.45 (plain Euler: 0.35).
    base = VideoGrid(VideoLatentShape(1, 1, 1, 1, 1), FPS).initial_state(torch.ones(1, 1, 1, 1, 1))
    estimates = [0.0, 0.2, 0.9]
    seen: list[float] = []

    def denoise(current: AV, sigma: float, step: int) -> AV:
        seen.append(current.video.latent.item())
        return AV(video=torch.full_like(current.video.latent, estimates[step]))

    out = gradient_estimation_loop(AV(video=base), [1.0, 0.5, 0.25, 0.0], denoise)
    assert seen == pytest.approx([1.0, 0.5, 0.45])
    assert out.video.latent.item() == pytest.approx(0.9)
    seen.clear()
    euler_loop(AV(video=base), [1.0, 0.5, 0.25, 0.0], denoise)
    assert seen == pytest.approx([1.0, 0.5, 0.35])


def test_phi_functions_and_res2s_coefficients():
    assert phi(1, 0.0) == 1.0 and phi(2, 0.0) == 0.5
    h = math.log(2.0)
    assert phi(1, -h) == pytest.approx((math.exp(-h) - 1) / -h)
    assert phi(2, -h) == pytest.approx((math.exp(-h) - 1 + h) / h**2)
    a21, b1, b2 = res2s_coefficients(h)
    assert a21 == pytest.approx(0.5 * (math.exp(-h / 2) - 1) / (-h / 2))
    assert b1 + b2 == pytest.approx(phi(1, -h))
    # Tiny steps reduce to the explicit midpoint rule: a21 = 1/2, b1 = 0, b2 = 1.
    assert res2s_coefficients(1e-12) == pytest.approx((0.5, 0.0, 1.0))


def test_sde_coefficients_are_variance_preserving():
    sigma_next = torch.tensor(0.5, dtype=torch.float64)
    alpha, down, up = sde_coefficients(sigma_next, sigma_up=0.5 * sigma_next)
    assert up.item() == pytest.approx(0.25)
    residual = math.sqrt(0.5**2 - 0.25**2)
    assert alpha.item() == pytest.approx(0.5 + residual)
    assert (alpha * down).item() == pytest.approx(residual)
    assert (alpha * (1 - down)).item() == pytest.approx(1 - 0.5)  # signal coefficient 1 − σ'
    alpha, down, up = sde_coefficients(sigma_next)
    assert (alpha.item(), down.item(), up.item()) == (1.0, 0.5, 0.0)


def test_res2s_sde_step_on_the_straight_path():
    x0, eps, fresh = torch.tensor([0.3]), torch.tensor([-1.2]), torch.tensor([0.7])
    sigma, sigma_next = torch.tensor(0.8), torch.tensor(0.4)
    sample = (1 - sigma) * x0 + sigma * eps
    target = (1 - sigma_next) * x0 + sigma_next * eps
    out = res2s_sde_step(sample, target, sigma, sigma_next, fresh)
    up = 0.5 * 0.4
    expected = (1 - 0.4) * x0 + math.sqrt(0.4**2 - up**2) * eps + up * fresh
    assert torch.allclose(out, expected, atol=1e-6)
    assert res2s_sde_step(sample, target, sigma, torch.tensor(0.0), fresh) is target


def test_res2s_evaluates_twice_per_step_plus_a_final_denoise():
    clean = clean_latents()
    states, _ = noisy_states(clean)
    seen: list[tuple[float, int]] = []
    model = PerfectVelocity(clean)
    simple = SimpleDenoiser(model, CONTEXTS)

    def denoise(current: AV, sigma: float, step: int) -> AV:
        seen.append((sigma, step))
        return simple(current, sigma, step)

    sigmas = ltx2_sigmas(3)
    out = res2s_loop(states, sigmas, denoise, Res2sNoise.seeded())
    assert len(seen) == 2 * 3 + 1
    s0, s1 = float(sigmas[0]), float(sigmas[1])
    assert seen[0] == (pytest.approx(s0), 0)
    assert seen[1] == (pytest.approx(math.sqrt(s0 * s1)), 0)
    assert seen[-1] == (pytest.approx(RES2S_FINAL_SIGMA), 3)
    # The final denoise returns the model's x0, exact for a perfect model.
    assert torch.allclose(out.video.latent, model.x0.video, atol=1e-5)
    assert out.video.latent.dtype == states.video.latent.dtype

    seen.clear()
    res2s_loop(states, [1.0, 0.5, 0.2], denoise, Res2sNoise.seeded())
    assert len(seen) == 2 * 2  # no trailing zero: no final denoise


def test_res2s_draws_its_sde_noise_only_from_the_generators_passed_in():
    states, _ = noisy_states(clean_latents())

    def run(noise: Res2sNoise) -> list[torch.Tensor]:
        latents: list[torch.Tensor] = []

        def denoise(current: AV, sigma: float, step: int) -> AV:
            latents.append(current.video.latent.clone())
            return AV(video=torch.zeros_like(current.video.latent), audio=current.audio.latent)

        res2s_loop(states, [1.0, 0.6, 0.3, 0.0], denoise, noise)
        return latents

    torch.manual_seed(123)  # the global generator plays no part
    first = run(Res2sNoise.seeded())
    torch.manual_seed(456)
    again = run(Res2sNoise(make_generator(-1), make_generator(-1 + SUBSTEP_SEED_OFFSET)))
    other = run(Res2sNoise.seeded(5))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[1], other[1])  # the midpoint carries the substep noise


def test_res2s_continues_the_streams_of_the_generators_it_is_given():
    # The loop neither reseeds nor replaces the pipeline's generators: a second run on the
    # same Res2sNoise draws the next noise, a fresh Res2sNoise repeats the first run.
    states, _ = noisy_states(clean_latents())

    def denoise(current: AV, sigma: float, step: int) -> AV:
        return AV(video=torch.zeros_like(current.video.latent), audio=current.audio.latent)

    shared = Res2sNoise.seeded()
    first = res2s_loop(states, [1.0, MID_SIGMA], denoise, shared)
    second = res2s_loop(states, [1.0, MID_SIGMA], denoise, shared)
    fresh = res2s_loop(states, [1.0, MID_SIGMA], denoise, Res2sNoise.seeded())
    assert torch.equal(first.video.latent, fresh.video.latent)
    assert not torch.equal(first.video.latent, second.video.latent)


def test_res2s_midpoint_pass_gets_the_float64_sigma():
    clean = clean_latents()
    states, _ = noisy_states(clean)
    model = PerfectVelocity(clean)
    calls: list[ModelCall] = []

    def recording(call: ModelCall) -> AV[torch.Tensor]:
        calls.append(call)
        return model(call)

    denoise = SimpleDenoiser(recording, CONTEXTS)
    res2s_loop(states, [1.0, MID_SIGMA, 0.0], denoise, Res2sNoise.seeded())
    first, midpoint = calls[0].video, calls[1].video
    assert first.sigma.dtype == first.timesteps.dtype == torch.float32
    # sqrt(σ·σ') of the float32 schedule values, in float64, reaches the model unrounded
    sub_sigma = math.sqrt(1.0 * float(torch.tensor(MID_SIGMA)))
    assert midpoint.sigma.dtype == midpoint.timesteps.dtype == torch.float64
    assert midpoint.sigma.tolist() == [sub_sigma]
    assert calls[1].audio.sigma.dtype == torch.float64


def test_res2s_step_against_the_formula_with_float32_step_noise_coefficients():
    # One full step 1 → 0.6 (h = 0.51, no bong refinement), video only, a constant x0.
    # The substep noise uses float64 coefficients; in legacy mode the step noise reads the
    # float32 schedule, so its coefficients are float32. The SDE noise comes from seeds −1
    # (steps) and 9999 (substeps), the reference's fixed seeds.
    torch.manual_seed(2)
    x0 = torch.randn(1, SHAPE.token_count, SHAPE.channels)
    state = VideoGrid(SHAPE, FPS).initial_state(torch.randn(SHAPE.size))

    def denoise(current: AV, sigma: float, step: int) -> AV:
        return AV(video=x0.to(current.video.latent.dtype))

    noise = Res2sNoise.seeded()
    out = res2s_loop(AV(video=state), [1.0, MID_SIGMA], denoise, noise, model_dtype=torch.float64)
    assert out.video.latent.dtype == torch.float64

    s0 = torch.tensor(1.0, dtype=torch.float64)
    s1_32 = torch.tensor(MID_SIGMA)
    s1 = s1_32.double()
    h = -math.log(float(s1 / s0))
    a21 = 0.5 * (math.exp(-h / 2) - 1) / (-h / 2)
    b2 = (math.exp(-h) - 1 + h) / h**2 / 0.5
    b1 = (math.exp(-h) - 1) / -h - b2
    anchor = state.latent.double()
    eps_1 = x0.double() - anchor
    x_mid = anchor + h * a21 * eps_1
    sub = torch.sqrt(s0 * s1)
    x_mid = sde(anchor, x_mid, s0, sub, standardized_noise(anchor, make_generator(9999)))
    x_next = anchor + h * (b1 * eps_1 + b2 * (x0.double() - anchor))
    step_noise = standardized_noise(anchor, make_generator(-1))
    expected = sde(anchor, x_next, torch.tensor(1.0), s1_32, step_noise)
    assert torch.allclose(out.video.latent, expected, rtol=0, atol=1e-12)
    in_float64 = sde(anchor, x_next, s0, s1, step_noise)
    assert not torch.allclose(out.video.latent, in_float64, rtol=0, atol=1e-10)


def sde(sample, target, sigma, sigma_next, noise):
    """The variance-preserving re-noising of the res_2s SDE step: sigma_up = 0.5·σ',
    alpha = (1 − σ') + sqrt(σ'² − up²), down = sqrt(σ'² − up²)/alpha, in sigma's dtype."""
    up = sigma_next * 0.5
    residual = (sigma_next**2 - up**2) ** 0.5
    alpha = (1 - sigma_next) + residual
    down = residual / alpha
    eps = (sample - target) / (sigma - sigma_next)
    return alpha * (sample - sigma * eps + down * eps) + up * noise


def test_res2s_casts_midpoint_and_new_latents_to_model_dtype():
    states, _ = noisy_states(clean_latents())
    seen: list[torch.dtype] = []

    def denoise(current: AV, sigma: float, step: int) -> AV:
        seen.append(current.video.latent.dtype)
        return AV(video=torch.zeros_like(current.video.latent), audio=current.audio.latent)

    noise = Res2sNoise.seeded()
    out = res2s_loop(states, [1.0, MID_SIGMA, 0.0], denoise, noise, model_dtype=torch.bfloat16)
    # 2 full steps (evaluations at σ and at the midpoint) and the final denoise
    assert seen == [torch.float32] + [torch.bfloat16] * 4
    assert out.video.latent.dtype == out.audio.latent.dtype == torch.bfloat16
