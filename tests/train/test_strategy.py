"""Each strategy's noising, conditioning masks, loss tokens and positions on a tiny batch."""

from __future__ import annotations

import math

import pytest
import torch

from ltx2cli.diffusion.patchify import ScaleFactors
from ltx2cli.train import config as cfg
from ltx2cli.train.samplers import ShiftedLogitNormalTimestepSampler, UniformTimestepSampler
from ltx2cli.train.strategy import Strategy, strategy_spec

B, C, F, H, W = 2, 4, 3, 2, 3  # video latent grid: 3 frames of 2x3 tokens
PER_FRAME, N = H * W, F * H * W
T_AUDIO = 5
SIGMA = 0.25
FPS = 24.0


class FixedSigma:
    def sample(self, batch):
        return torch.full((batch.shape[0],), SIGMA)


def _batch(**extra):
    g = torch.Generator().manual_seed(0)
    batch = {
        "video_latents": {
            "latents": torch.randn(B, C, F, H, W, generator=g),
            "fps": torch.tensor([FPS] * B),
        },
        "audio_latents": {"latents": torch.randn(B, 8, T_AUDIO, 16, generator=g)},
    }
    batch.update(extra)
    return batch


def _prepare(strategy_config, batch=None, seed=0):
    strategy = Strategy(strategy_spec(strategy_config), FixedSigma(), ScaleFactors())
    torch.manual_seed(seed)
    ctx_v, ctx_a = torch.zeros(B, 8, 16), torch.zeros(B, 8, 8)
    return strategy, strategy.prepare(batch or _batch(), ctx_v, ctx_a, None)


def _flex(video_conditions=(), audio=True, video_generated=True, audio_generated=True):
    data = {
        "name": "flexible",
        "video": {
            "is_generated": video_generated,
            "latents_dir": "latents",
            "conditions": list(video_conditions),
        },
    }
    if audio:
        data["audio"] = {"is_generated": audio_generated, "latents_dir": "audio_latents"}
    return cfg.FlexibleConfig.model_validate(data)


def _tokens(batch):
    x0 = batch["video_latents"]["latents"]
    return x0.reshape(B, C, -1).transpose(1, 2)  # (B, N, C), frame-major


def test_generated_modalities_are_noised_with_velocity_targets():
    batch = _batch()
    _, p = _prepare(_flex(), batch)
    x0 = _tokens(batch)
    # latent = (1−σ)x0 + σε and target = ε − x0  ⇒  latent = x0 + σ·target
    torch.testing.assert_close(p.video.latent, x0 + SIGMA * p.targets["video"])
    assert torch.all(p.video.timesteps == SIGMA)
    assert p.loss_masks["video"].all() and p.loss_masks["audio"].all()
    assert p.audio.latent.shape == (B, T_AUDIO, 128)
    assert p.video.positions.shape == (B, 3, N, 2) and p.audio.positions.shape == (B, 1, T_AUDIO, 2)


@pytest.mark.parametrize(
    ("condition", "kept"),
    [
        ({"type": "first_frame"}, list(range(PER_FRAME))),
        ({"type": "prefix", "temporal_boundary": 2}, list(range(2 * PER_FRAME))),
        ({"type": "suffix", "temporal_boundary": 1}, list(range(N - PER_FRAME, N))),
        # rows 0..1 (pixels 0..63), column 1 (pixels 32..63) of every frame
        (
            {"type": "spatial_crop", "spatial_region": [0, 32, 64, 64]},
            [f * PER_FRAME + r * W + 1 for f in range(F) for r in range(H)],
        ),
    ],
)
def test_intrinsic_conditions_keep_tokens_clean_and_out_of_the_loss(condition, kept):
    batch = _batch()
    _, p = _prepare(_flex([condition]), batch)
    x0 = _tokens(batch)
    keep = torch.zeros(N, dtype=torch.bool)
    keep[kept] = True
    for b in range(B):
        assert torch.equal(~p.loss_masks["video"][b], keep)
        torch.testing.assert_close(p.video.latent[b, keep], x0[b, keep])
        assert torch.all(p.video.timesteps[b, keep] == 0)
        assert torch.all(p.video.timesteps[b, ~keep] == SIGMA)
        assert not torch.allclose(p.video.latent[b, ~keep], x0[b, ~keep])


def test_mask_condition_reads_the_mask_folder():
    mask = torch.zeros(B, F, H, W)
    mask[0, 1, 0, 2] = 1.0
    mask[1, 2] = 0.9
    batch = _batch(video_masks={"mask": mask})
    _, p = _prepare(_flex([{"type": "mask", "mask_dir": "video_masks"}]), batch)
    assert torch.equal(~p.loss_masks["video"], mask.reshape(B, -1) > 0.5)


def test_condition_probability_is_drawn_per_sample():
    draws = []
    for seed in range(40):
        _, p = _prepare(_flex([{"type": "first_frame", "probability": 0.5}]), seed=seed)
        draws += [bool((~p.loss_masks["video"][b]).any()) for b in range(B)]
    assert 0.25 < sum(draws) / len(draws) < 0.75
    _, p = _prepare(_flex([{"type": "first_frame", "probability": 0.0}]))
    assert p.loss_masks["video"].all()


def test_frozen_modality_is_clean_with_zero_timesteps_and_no_loss():
    batch = _batch()
    _, p = _prepare(_flex(audio_generated=False), batch)
    expected = batch["audio_latents"]["latents"].permute(0, 2, 1, 3).reshape(B, T_AUDIO, 128)
    torch.testing.assert_close(p.audio.latent, expected)
    assert torch.all(p.audio.timesteps == 0) and torch.all(p.audio.sigma == 0)
    assert "audio" not in p.targets and "audio" not in p.loss_masks
    _, p = _prepare(_flex(video_generated=False))
    assert set(p.targets) == {"audio"} and torch.all(p.video.timesteps == 0)


def test_reference_tokens_are_prepended_clean_with_scaled_positions():
    target = torch.randn(B, C, 3, 2, 2)
    ref = torch.randn(B, C, 2, 1, 1)  # half the spatial size, (3−1)/(2−1) = 2x fewer frames
    batch = {
        "video_latents": {"latents": target, "fps": torch.tensor([FPS] * B)},
        "reference_latents": {"latents": ref, "fps": torch.tensor([FPS / 2] * B)},
    }
    condition = {"type": "reference", "latents_dir": "reference_latents"}
    strategy, p = _prepare(_flex([condition], audio=False), batch)
    refs, n = 2, 3 * 2 * 2
    assert p.video.latent.shape == (B, refs + n, C)
    torch.testing.assert_close(p.video.latent[:, :refs], ref.reshape(B, C, -1).transpose(1, 2))
    assert torch.all(p.video.timesteps[:, :refs] == 0)
    assert not p.loss_masks["video"][:, :refs].any() and p.loss_masks["video"][:, refs:].all()
    # Spatial positions ×2 (a 32-px reference cell covers 64 target pixels); time shifted by
    # −(S−1)/target_fps and clamped at 0.
    ref_pos = p.video.positions[0, :, :refs]
    assert ref_pos[1, 0].tolist() == [0.0, 64.0] and ref_pos[2, 0].tolist() == [0.0, 64.0]
    # reference frame 1 covers pixel frames [1, 9) at fps/2 → seconds [2/24, 18/24) − 1/24
    assert ref_pos[0, 1].tolist() == pytest.approx([1 / FPS, 17 / FPS])
    assert strategy.metadata["reference_downscale_factor"] == "2"
    assert strategy.metadata["reference_temporal_scale_factor"] == "2"


def test_loss_is_the_mean_over_unmasked_target_tokens():
    condition = {"type": "prefix", "temporal_boundary": 1}
    strategy, p = _prepare(_flex([condition], audio=False))
    target = p.targets["video"]
    pred = target.clone()
    pred[:, PER_FRAME:] += 1.0  # error 1 on every generated token, none on the kept frame
    pred[:, :PER_FRAME] += 5.0  # errors on kept tokens must not count
    loss = strategy.loss(p, {"video": pred})
    assert loss.shape == (B,)
    torch.testing.assert_close(loss, torch.ones(B))


def test_legacy_text_to_video_shares_one_sigma():
    legacy = cfg.TextToVideoConfig(first_frame_conditioning_p=0.0, with_audio=True)
    batch = {"latents": _batch()["video_latents"], "audio_latents": _batch()["audio_latents"]}
    sampler = UniformTimestepSampler()
    strategy = Strategy(strategy_spec(legacy), sampler, ScaleFactors())
    p = strategy.prepare(batch, torch.zeros(B, 8, 16), torch.zeros(B, 8, 8), None)
    assert torch.equal(p.sigmas["video"], p.sigmas["audio"])


def test_uniform_sampler_range():
    sigmas = UniformTimestepSampler(0.2, 0.4).sample(torch.zeros(1000, 7, 3))
    assert sigmas.shape == (1000,) and sigmas.min() >= 0.2 and sigmas.max() <= 0.4


def _reference_shifted_logit_normal(n_tokens, batch, std=1.0, eps=1e-3, uniform_prob=0.1):
    """trainer.md §5 step by step, with the same draws (randn, then rand, then rand)."""
    m = (2.05 - 0.95) / (4096 - 1024)
    mu = m * n_tokens + (0.95 - m * 1024)
    s = torch.sigmoid(torch.randn(batch) * std + mu)
    lo = 1 / (1 + math.exp(-(mu - 2.5758 * std)))
    hi = 1 / (1 + math.exp(-(mu + 3.0902 * std)))
    z = (s - lo) / (hi - lo)
    z = torch.where(z < eps, 2 * eps - z, z).clamp(0, 1)
    uniform = (1 - eps) * torch.rand(batch) + eps
    return torch.where(torch.rand(batch) < uniform_prob, uniform, z)


@pytest.mark.parametrize("tokens", [126, 4096, 20000])
def test_shifted_logit_normal_sampler_matches_the_reference_formula(tokens):
    torch.manual_seed(3)
    got = ShiftedLogitNormalTimestepSampler().sample(torch.zeros(512, tokens, 1))
    torch.manual_seed(3)
    expected = _reference_shifted_logit_normal(tokens, 512)
    torch.testing.assert_close(got, expected, rtol=0, atol=5e-5)  # float32 vs float64 bounds
    assert got.min() >= 0 and got.max() <= 1


def test_longer_sequences_get_larger_sigmas():
    sampler = ShiftedLogitNormalTimestepSampler(uniform_prob=0.0)
    torch.manual_seed(0)
    short = sampler.sample(torch.zeros(4000, 100, 1)).mean()
    long = sampler.sample(torch.zeros(4000, 6000, 1)).mean()
    assert long > short + 0.2
