"""Steps and sampling loops over a sigma schedule.

- `euler_step`: x' = x + v·(σ' − σ) with v = (x − x0)/σ and the scalar schedule σ (even for
  partially conditioned tokens, whose x0 came from the per-token σ). Lands on x0 at σ' = 0.
- `euler_loop`: one denoiser evaluation per step; every x0 is first post-processed with the
  state's mask (re-imposing the conditioning).
- `gradient_estimation_loop`: Euler with the velocity extrapolated from the previous step,
  v = γ(v_cur − v_prev) + v_prev (γ = 2 by default; openreview o2ND9v0CeK).
- `res2s_loop`: the HQ pipeline's second-order exponential sampler with SDE noise: two
  evaluations per step (at σ and at the geometric midpoint), "bong" anchor refinement, and a
  final denoise at σ = 0.0011 when the schedule ends at 0 (so 2n+1 evaluations). Its SDE
  noise comes from the two generators of a `Res2sNoise` the pipeline passes in.

A loop takes `AV[LatentState]`, the sigmas and a `Denoiser` `(states, sigma, step) → x0`, and
returns the final states; `on_step(done, total)` reports progress.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from ltx2cli.diffusion.denoisers import Denoiser
from ltx2cli.diffusion.noise import high_precision, make_generator, standardized_noise
from ltx2cli.diffusion.state import AV, LatentState, timesteps_from_mask, to_denoised, to_velocity

ProgressFn = Callable[[int, int], None]

DEFAULT_GE_GAMMA = 2.0
RES2S_C2 = 0.5
RES2S_ETA = 0.5
RES2S_SIGMA_UP_CLAMP = 0.9999
RES2S_FINAL_SIGMA = 0.0011
RES2S_SUBSTEP_SEED_OFFSET = 10000
# Both reference releases seed the res_2s SDE noise with −1 (and −1 + 10000 for the substeps),
# whatever the user's seed: their HQ pipeline never passes its seed to the sampler.
RES2S_REFERENCE_SEED = -1
BONG_MAX_STEP = 0.5
BONG_MIN_SIGMA = 0.03
BONG_ITERATIONS = 100
PHI_TAYLOR_BELOW = 1e-10


def as_sigmas(sigmas: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """A 1-D float32 CPU tensor of at least two sigmas."""
    out = torch.as_tensor(sigmas, dtype=torch.float32).detach().cpu().reshape(-1)
    if out.numel() < 2:
        raise ValueError(f"a schedule needs at least two sigmas, got {out.tolist()}")
    return out


def euler_step(
    x: torch.Tensor, x0: torch.Tensor, sigma: float | torch.Tensor, sigma_next: float | torch.Tensor
) -> torch.Tensor:
    """One Euler step from σ to σ' given the x0 estimate, in float32, returned in x's dtype."""
    dt = torch.as_tensor(sigma_next, dtype=torch.float32) - torch.as_tensor(
        sigma, dtype=torch.float32
    )
    v = to_velocity(x, sigma, x0)
    return (x.float() + v.float() * dt.to(x.device)).to(x.dtype)


def _guided_x0(states: AV[LatentState], x0: AV[torch.Tensor]) -> AV[torch.Tensor]:
    """Post-processed x0 per modality; absent where the denoiser gave none."""

    def post(name: str, state: LatentState) -> torch.Tensor | None:
        pred = getattr(x0, name)
        return None if pred is None else state.post_process(pred)

    return states.map(post)


def euler_loop(
    states: AV[LatentState],
    sigmas: torch.Tensor | Sequence[float],
    denoise: Denoiser,
    on_step: ProgressFn | None = None,
) -> AV[LatentState]:
    """Deterministic Euler sampling: `len(sigmas) − 1` denoiser evaluations."""
    sig = as_sigmas(sigmas)
    total = len(sig) - 1
    for i in range(total):
        x0 = _guided_x0(states, denoise(states, float(sig[i]), i))
        updated = {
            name: state.with_latent(euler_step(state.latent, pred, sig[i], sig[i + 1]))
            for name, state in states.items()
            if (pred := getattr(x0, name)) is not None
        }
        states = replace(states, **updated)
        if on_step:
            on_step(i + 1, total)
    return states


def gradient_estimation_loop(
    states: AV[LatentState],
    sigmas: torch.Tensor | Sequence[float],
    denoise: Denoiser,
    ge_gamma: float = DEFAULT_GE_GAMMA,
    on_step: ProgressFn | None = None,
) -> AV[LatentState]:
    """Euler with gradient estimation; the first step is plain Euler, σ' = 0 returns x0."""
    sig = as_sigmas(sigmas)
    total = len(sig) - 1
    previous: dict[str, torch.Tensor] = {}
    for i in range(total):
        x0 = _guided_x0(states, denoise(states, float(sig[i]), i))
        last = float(sig[i + 1]) == 0
        updated: dict[str, LatentState] = {}
        for name, state in states.items():
            pred = getattr(x0, name)
            if pred is None:
                continue
            if last:
                updated[name] = state.with_latent(pred)
                continue
            v_cur = to_velocity(state.latent, sig[i], pred)
            if name in previous:
                v_total = ge_gamma * (v_cur - previous[name]) + previous[name]
                pred = to_denoised(state.latent, v_total, sig[i])
            previous[name] = v_cur
            updated[name] = state.with_latent(euler_step(state.latent, pred, sig[i], sig[i + 1]))
        states = replace(states, **updated)
        if on_step:
            on_step(i + 1, total)
        if last:
            break
    return states


# ---------------------------------------------------------------------------------------------
# res_2s


def phi(j: int, z: float) -> float:
    """φ_j(z) = (e^z − Σ_{k<j} z^k/k!) / z^j, with φ_j(0) = 1/j!."""
    if abs(z) < PHI_TAYLOR_BELOW:
        return 1.0 / math.factorial(j)
    partial = sum(z**k / math.factorial(k) for k in range(j))
    return (math.exp(z) - partial) / z**j


def res2s_coefficients(h: float, c2: float = RES2S_C2) -> tuple[float, float, float]:
    """(a21, b1, b2) of the two-stage exponential integrator for log-step h."""
    a21 = c2 * phi(1, -h * c2)
    b2 = phi(2, -h) / c2
    b1 = phi(1, -h) - b2
    return a21, b1, b2


def sde_coefficients(
    sigma_next: torch.Tensor,
    sigma_up: torch.Tensor | None = None,
    sigma_down: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(alpha_ratio, sigma_down, sigma_up) of a variance-preserving noise injection (σ_max 1).

    From sigma_up (clamped to 0.9999·σ'): alpha = (1 − σ') + sqrt(σ'² − up²), down = sqrt(…)/alpha.
    From sigma_down: alpha = (1 − σ')/(1 − down), up = sqrt(max(0, σ'² − down²·alpha²)).
    Neither: alpha 1, down σ', up 0. NaNs fall back to up 0, down σ', alpha 1.
    """
    sigma_next = torch.as_tensor(sigma_next)
    if sigma_down is not None:
        alpha = (1 - sigma_next) / (1 - sigma_down)
        sigma_up = (sigma_next**2 - sigma_down**2 * alpha**2).clamp(min=0).sqrt()
    elif sigma_up is not None:
        sigma_up = torch.minimum(torch.as_tensor(sigma_up), sigma_next * RES2S_SIGMA_UP_CLAMP)
        residual = (sigma_next**2 - sigma_up**2).clamp(min=0).sqrt()
        alpha = (1 - sigma_next) + residual
        sigma_down = residual / alpha
    else:
        alpha = torch.ones_like(sigma_next)
        sigma_down = sigma_next.clone()
        sigma_up = torch.zeros_like(sigma_next)
    sigma_up = torch.nan_to_num(sigma_up, nan=0.0)
    sigma_down = torch.where(torch.isnan(sigma_down), sigma_next.to(sigma_down.dtype), sigma_down)
    alpha = torch.nan_to_num(alpha, nan=1.0)
    return alpha, sigma_down, sigma_up


def res2s_sde_step(
    sample: torch.Tensor,
    target: torch.Tensor,
    sigma: torch.Tensor,
    sigma_next: torch.Tensor,
    noise: torch.Tensor,
    eta: float = RES2S_ETA,
) -> torch.Tensor:
    """Move `sample` (at σ) toward the deterministic update `target` (at σ') and re-noise with
    sigma_up = eta·σ'. Returns `target` unchanged where no noise would be added (any σ' or
    sigma_up of 0, as the reference checks over the whole tensor)."""
    sigma, sigma_next = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
    alpha, sigma_down, sigma_up = sde_coefficients(sigma_next, sigma_up=sigma_next * eta)
    if bool(torch.any(sigma_up == 0)) or bool(torch.any(sigma_next == 0)):
        return target
    eps = (sample - target) / (sigma - sigma_next)
    denoised = sample - sigma * eps
    out = alpha * (denoised + sigma_down * eps) + sigma_up * noise
    return out.to(target.dtype)


def _with_latents(
    states: AV[LatentState], latents: dict[str, torch.Tensor], dtype: torch.dtype | None
) -> AV[LatentState]:
    """Replace the given modalities' latents, cast to `dtype` (None: each state's own)."""
    updated = {
        name: replace(state, latent=latents[name].to(dtype or state.latent.dtype))
        for name, state in states.items()
        if name in latents
    }
    return replace(states, **updated)


@dataclass(frozen=True)
class Res2sNoise:
    """The two generators the res_2s SDE noise is drawn from: one for the full steps, one for
    the substeps (the midpoints). The pipeline owns them; `res2s_loop` only draws."""

    step: torch.Generator
    substep: torch.Generator

    @classmethod
    def seeded(cls, seed: int = RES2S_REFERENCE_SEED) -> Res2sNoise:
        """Fresh generators seeded `seed` (steps) and `seed` + 10000 (substeps).

        The reference seeds a new pair from −1 (the default) at every call of its sampler, so
        a pipeline reproducing it (either release: both ignore the user's seed here) makes a
        fresh `Res2sNoise.seeded()` for each stage. `seeded(user_seed)` instead ties the SDE
        noise to the user's seed.
        """
        return cls(make_generator(seed), make_generator(seed + RES2S_SUBSTEP_SEED_OFFSET))


def res2s_loop(
    states: AV[LatentState],
    sigmas: torch.Tensor | Sequence[float],
    denoise: Denoiser,
    noise: Res2sNoise,
    eta: float = RES2S_ETA,
    bongmath: bool = True,
    bongmath_iterations: int = BONG_ITERATIONS,
    legacy_mode: bool = True,
    model_dtype: torch.dtype | None = None,
    on_step: ProgressFn | None = None,
) -> AV[LatentState]:
    """res_2s sampling (HQ pipeline). The SDE noise is drawn from `noise`'s step and substep
    generators (see `Res2sNoise.seeded` for the reference's seeds). The substep noise always
    uses eta 0.5. `legacy_mode` (the reference default) injects noise with the scalar
    sigmas and re-imposes the conditioning afterwards; otherwise per-token sigmas are used.

    Precision follows the reference: the update runs in float64 (float32 on MPS); the midpoint
    pass gets its float64 sigma; the substep noise coefficients are float64, while in legacy
    mode the step noise coefficients come from the float32 schedule values. Midpoint and new
    latents are cast to `model_dtype` (the reference's default is bfloat16, the dtype of
    every pipeline's states; None keeps each state's own dtype).
    """
    sig = as_sigmas(sigmas)
    n_full = len(sig) - 1
    ends_at_zero = float(sig[-1]) == 0
    if ends_at_zero:
        sig = torch.cat([sig[:-1], torch.tensor([RES2S_FINAL_SIGMA, 0.0])])
    first = next(state for _, state in states.items())
    hp = high_precision(first.latent.device)
    log_steps = -torch.log(sig[1:].to(hp) / sig[:-1].to(hp))
    total = n_full + int(ends_at_zero)

    def inject(
        state: LatentState,
        sample: torch.Tensor,
        target: torch.Tensor,
        sigma: torch.Tensor,
        sigma_next: torch.Tensor,
        generator: torch.Generator,
        step_eta: float,
    ) -> torch.Tensor:
        drawn = standardized_noise(state.latent, generator)
        if not legacy_mode:
            mask = state.denoise_mask.to(hp)
            sigma = timesteps_from_mask(mask, sigma)
            sigma_next = timesteps_from_mask(mask, sigma_next)
        out = res2s_sde_step(sample, target, sigma, sigma_next, drawn, step_eta)
        return state.post_process(out) if legacy_mode else out

    for i in range(n_full):
        sigma = sig[i].to(hp)
        sigma_next = sig[i + 1].to(hp)
        # Legacy step noise reads the schedule itself (float32); per-token noise upcasts it.
        step_sigmas = (sig[i], sig[i + 1]) if legacy_mode else (sigma, sigma_next)
        h = float(log_steps[i])
        a21, b1, b2 = res2s_coefficients(h)
        sub_sigma = torch.sqrt(sigma * sigma_next)

        # 1. Evaluate at the current point.
        x0_1 = _guided_x0(states, denoise(states, float(sig[i]), i))
        anchor: dict[str, torch.Tensor] = {}
        eps_1: dict[str, torch.Tensor] = {}
        x_mid: dict[str, torch.Tensor] = {}
        for name, state in states.items():
            if getattr(x0_1, name) is None:
                continue
            anchor[name] = state.latent.to(hp)
            eps_1[name] = getattr(x0_1, name).to(hp) - anchor[name]
            x_mid[name] = anchor[name] + h * a21 * eps_1[name]
            # 2. Substep SDE noise toward the midpoint.
            x_mid[name] = inject(
                state, anchor[name], x_mid[name], sigma, sub_sigma, noise.substep, RES2S_ETA
            )

        # 3. Bong refinement of the anchor so that it is consistent with the noisy midpoint.
        if bongmath and h < BONG_MAX_STEP and float(sigma) > BONG_MIN_SIGMA:
            for _ in range(bongmath_iterations):
                for name in x_mid:
                    anchor[name] = x_mid[name] - h * a21 * eps_1[name]
                    eps_1[name] = getattr(x0_1, name).to(hp) - anchor[name]

        # 4. Evaluate at the midpoint (float64 sigma, step index 0, as the reference passes).
        mid_states = _with_latents(states, x_mid, model_dtype)
        x0_2 = _guided_x0(states, denoise(mid_states, sub_sigma, 0))

        # 5. Combine and inject the step noise.
        x_new: dict[str, torch.Tensor] = {}
        for name, state in states.items():
            pred = getattr(x0_2, name)
            if name not in anchor or pred is None:
                continue
            eps_2 = pred.to(hp) - anchor[name]
            x_next = anchor[name] + h * (b1 * eps_1[name] + b2 * eps_2)
            x_new[name] = inject(state, anchor[name], x_next, *step_sigmas, noise.step, eta)
        states = _with_latents(states, x_new, model_dtype)
        if on_step:
            on_step(i + 1, total)

    if ends_at_zero:
        x0 = _guided_x0(states, denoise(states, float(sig[n_full]), n_full))
        final = {name: x for name, _ in states.items() if (x := getattr(x0, name)) is not None}
        states = _with_latents(states, final, model_dtype)
        if on_step:
            on_step(total, total)
    return states
