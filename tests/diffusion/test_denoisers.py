"""Denoisers: the forward passes they request, the inputs they build and how they combine."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ltx2cli.diffusion.denoisers import (
    DeltaGuidedDenoiser,
    GuidedDenoiser,
    ModelCall,
    Pass,
    SimpleDenoiser,
)
from ltx2cli.diffusion.guidance import (
    LTX_2_3_DEFAULTS,
    LTX_2_3_HQ_DEFAULTS,
    GuiderParams,
    cfg_delta,
)
from ltx2cli.diffusion.patchify import VideoLatentShape, audio_latent_shape
from ltx2cli.diffusion.state import AV, AudioGrid, VideoGrid, freeze
from ltx2cli.models.transformer import BatchedPerturbations, PerturbationType

SIGMA = 0.5
SIGMA_64 = 0.7745966692414834  # sqrt(0.6), a res_2s midpoint
MASK = 0.3
VIDEO_SHAPE = VideoLatentShape(1, 4, 2, 2, 2)
AUDIO_FRAMES = 3
NUM_BLOCKS = 48
# Velocity the fake model returns per pass; with zero latents x0 = −v·σ.
VELOCITY = {Pass.COND: 1.0, Pass.UNCOND: 3.0, Pass.PERTURBED: 2.0, Pass.ISOLATED: 0.5}


class FakeModel:
    """Returns a constant velocity per pass kind and records every call."""

    def __init__(self) -> None:
        self.calls: list[ModelCall] = []

    def __call__(self, call: ModelCall) -> AV[torch.Tensor]:
        self.calls.append(call)
        v = VELOCITY[call.kind]
        return AV(
            video=None if call.video is None else torch.full_like(call.video.latent, v),
            audio=None if call.audio is None else torch.full_like(call.audio.latent, v),
        )


def states() -> AV:
    return AV(
        video=VideoGrid(VIDEO_SHAPE, 24.0).initial_state(),
        audio=AudioGrid(audio_latent_shape(AUDIO_FRAMES)).initial_state(),
    )


POSITIVE = AV(video=torch.ones(1, 5, 8), audio=torch.ones(1, 5, 4))
NEGATIVE = AV(video=-torch.ones(1, 5, 8), audio=-torch.ones(1, 5, 4))


@pytest.mark.parametrize(
    ("video", "audio", "passes"),
    [
        (GuiderParams(), GuiderParams(), [Pass.COND]),
        (GuiderParams(), GuiderParams(cfg_scale=7.0), [Pass.COND, Pass.UNCOND]),
        (GuiderParams(stg_scale=1.0), GuiderParams(), [Pass.COND, Pass.PERTURBED]),
        (GuiderParams(), GuiderParams(modality_scale=3.0), [Pass.COND, Pass.ISOLATED]),
        (
            LTX_2_3_DEFAULTS.video,
            LTX_2_3_DEFAULTS.audio,
            [Pass.COND, Pass.UNCOND, Pass.PERTURBED, Pass.ISOLATED],
        ),
        (
            LTX_2_3_HQ_DEFAULTS.video,
            LTX_2_3_HQ_DEFAULTS.audio,
            [Pass.COND, Pass.UNCOND, Pass.ISOLATED],
        ),
    ],
)
def test_only_passes_with_an_active_scale_are_run(video, audio, passes):
    model = FakeModel()
    denoiser = GuidedDenoiser(model, POSITIVE, NEGATIVE, video=video, audio=audio)
    steps = 3
    for step in range(steps):
        denoiser(states(), SIGMA, step)
    assert len(model.calls) == steps * len(passes)
    assert [call.kind for call in model.calls[: len(passes)]] == passes


def test_an_absent_modalitys_guidance_adds_no_passes():
    model = FakeModel()
    denoiser = GuidedDenoiser(model, POSITIVE, NEGATIVE, audio=LTX_2_3_DEFAULTS.audio)
    denoiser(AV(video=states().video), SIGMA, 0)
    assert [call.kind for call in model.calls] == [Pass.COND]


def keep_mask(call: ModelCall) -> torch.Tensor:
    """`[4, NUM_BLOCKS]` keep mask (1 = keep) the transformer gets for this pass."""
    return BatchedPerturbations([call.perturbations], NUM_BLOCKS).keep[..., 0]


VIDEO_SELF = PerturbationType.SKIP_VIDEO_SELF_ATTN
AUDIO_SELF = PerturbationType.SKIP_AUDIO_SELF_ATTN
A2V = PerturbationType.SKIP_A2V_CROSS_ATTN
V2A = PerturbationType.SKIP_V2A_CROSS_ATTN


def test_perturbed_and_isolated_passes_skip_the_right_attention():
    model = FakeModel()
    video = GuiderParams(stg_scale=1.0, stg_blocks=(28,), modality_scale=3.0)
    GuidedDenoiser(model, POSITIVE, video=video)(states(), SIGMA, 0)
    by_kind = {call.kind: call for call in model.calls}
    assert by_kind[Pass.COND].perturbations == ()
    stg = keep_mask(by_kind[Pass.PERTURBED])
    assert stg.shape == (len(PerturbationType), NUM_BLOCKS)
    assert not stg[VIDEO_SELF, 28]
    assert stg[VIDEO_SELF, 27]
    assert stg[AUDIO_SELF, 28]  # audio STG is off
    assert stg.sum() == len(PerturbationType) * NUM_BLOCKS - 1
    isolated = keep_mask(by_kind[Pass.ISOLATED])
    assert not isolated[A2V].any() and not isolated[V2A].any()  # every block
    assert isolated[VIDEO_SELF].all() and isolated[AUDIO_SELF].all()


@pytest.mark.parametrize(("blocks", "skipped"), [(None, NUM_BLOCKS), ((), 0), ((3, 5), 2)])
def test_stg_blocks_none_skips_every_block_and_empty_skips_none(blocks, skipped):
    model = FakeModel()
    both = GuiderParams(stg_scale=1.0, stg_blocks=blocks)
    GuidedDenoiser(model, POSITIVE, video=both, audio=both)(states(), SIGMA, 0)
    stg = keep_mask(next(call for call in model.calls if call.kind is Pass.PERTURBED))
    for row in (VIDEO_SELF, AUDIO_SELF):
        assert (~stg[row]).sum() == skipped
    assert stg[A2V].all() and stg[V2A].all()


def test_uncond_pass_uses_each_modalitys_negative_context():
    model = FakeModel()
    negative = AV(video=NEGATIVE.video)
    denoiser = GuidedDenoiser(model, POSITIVE, negative, video=GuiderParams(cfg_scale=3.0))
    denoiser(states(), SIGMA, 0)
    uncond = next(call for call in model.calls if call.kind is Pass.UNCOND)
    assert uncond.video.context is NEGATIVE.video
    assert uncond.audio.context is POSITIVE.audio  # audio has no CFG and no negative prompt
    with pytest.raises(ValueError, match="negative context"):
        GuidedDenoiser(FakeModel(), POSITIVE, audio=GuiderParams(cfg_scale=7.0))(states(), SIGMA, 0)


def test_guided_x0_combines_the_passes():
    params = GuiderParams(cfg_scale=3.0, stg_scale=1.0, modality_scale=3.0)
    out = GuidedDenoiser(FakeModel(), POSITIVE, NEGATIVE, video=params)(states(), SIGMA, 0)
    cond, uncond, perturbed, isolated = (-VELOCITY[kind] * SIGMA for kind in Pass)
    expected = cond + 2 * (cond - uncond) + 1 * (cond - perturbed) + 2 * (cond - isolated)
    assert torch.allclose(out.video, torch.full_like(out.video, expected))
    assert torch.allclose(out.audio, torch.full_like(out.audio, cond))  # neutral audio guider


def test_model_inputs_carry_per_token_timesteps_and_x0_is_per_token():
    base = states().video
    latent = torch.arange(base.latent.numel(), dtype=torch.float32).view_as(base.latent)
    mask = base.denoise_mask.clone()
    mask[:, :4] = 0.0
    video = replace(base, latent=latent, denoise_mask=mask)
    model = FakeModel()
    out = SimpleDenoiser(model, POSITIVE)(AV(video=video), SIGMA, 0)
    (call,) = model.calls
    assert call.audio is None
    assert call.video.sigma.tolist() == [SIGMA]
    assert torch.equal(call.video.timesteps, mask * SIGMA)
    assert call.video.positions is video.positions and call.video.enabled
    assert torch.equal(out.video[:, :4], latent[:, :4])  # clean tokens come back unchanged
    expected = latent[:, 4:] - VELOCITY[Pass.COND] * SIGMA
    assert torch.allclose(out.video[:, 4:], expected)


def test_frozen_stream_reports_sigma_zero():
    model = FakeModel()
    frozen = replace(states(), audio=freeze(states().audio))
    out = SimpleDenoiser(model, POSITIVE)(frozen, SIGMA, 0)
    call = model.calls[0]
    assert call.audio.sigma.tolist() == [0.0]
    assert not call.audio.timesteps.any()
    assert torch.equal(out.audio, frozen.audio.latent)


def test_skip_step_disables_the_modality_and_reuses_its_last_x0():
    model = FakeModel()
    denoiser = GuidedDenoiser(model, POSITIVE, video=GuiderParams(skip_step=1))
    first = denoiser(states(), SIGMA, 0)
    second = denoiser(states(), SIGMA, 1)
    assert [c.video.enabled for c in model.calls] == [True, False]
    assert [c.audio.enabled for c in model.calls] == [True, True]
    assert second.video is first.video

    both = GuidedDenoiser(
        model, POSITIVE, video=GuiderParams(skip_step=1), audio=GuiderParams(skip_step=1)
    )
    last = both(states(), SIGMA, 0)
    calls_before = len(model.calls)
    assert both(states(), SIGMA, 1) is last
    assert len(model.calls) == calls_before


def test_delta_guided_denoiser_adds_the_delta_to_cond():
    model = FakeModel()
    denoiser = DeltaGuidedDenoiser(model, POSITIVE, NEGATIVE, lambda c, u: cfg_delta(c, u, 4.0))
    out = denoiser(AV(video=states().video), SIGMA, 0)
    assert [call.kind for call in model.calls] == [Pass.COND, Pass.UNCOND]
    assert model.calls[1].video.context is NEGATIVE.video
    cond, uncond = -VELOCITY[Pass.COND] * SIGMA, -VELOCITY[Pass.UNCOND] * SIGMA
    assert torch.allclose(out.video, torch.full_like(out.video, cond + 3.0 * (cond - uncond)))


def test_a_float64_sigma_gives_float64_timesteps_and_x0_from_them():
    # The res_2s midpoint: timesteps = mask·σ formed in float64 as the model sees them, and
    # x0 = x − v·float32(timesteps), the X0 wrapper's conversion.
    base = states().video
    torch.manual_seed(4)
    latent = torch.randn_like(base.latent)
    video = replace(base, latent=latent, denoise_mask=torch.full_like(base.denoise_mask, MASK))
    sigma = torch.tensor(SIGMA_64, dtype=torch.float64)
    model = FakeModel()
    out = SimpleDenoiser(model, POSITIVE)(AV(video=video), sigma, 0)
    (call,) = model.calls
    assert call.video.sigma.dtype == torch.float64 and call.video.sigma.tolist() == [SIGMA_64]
    timesteps = torch.full_like(base.denoise_mask, MASK).double() * SIGMA_64
    assert call.video.timesteps.dtype == torch.float64
    assert torch.equal(call.video.timesteps, timesteps)
    expected = latent - VELOCITY[Pass.COND] * timesteps.float()
    assert torch.equal(out.video, expected)
    rounded_first = latent - VELOCITY[Pass.COND] * (MASK * torch.tensor(SIGMA_64).float())
    assert not torch.equal(out.video, rounded_first)
