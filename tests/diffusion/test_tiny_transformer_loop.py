"""Guided Euler sampling through tiny random transformers of both generations.

The denoisers drive a real `LTXTransformer` through `transformer_velocity_model`: real RoPE
positions from the grids, an image-conditioned first latent frame, the generation's default
guidance (CFG, STG and modality guidance all on, so every step runs all four passes). A forward
hook on the transformer observes what really reaches it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest
import torch

from ltx2cli.diffusion.conditioning import ReplaceLatent, apply_conditioning
from ltx2cli.diffusion.denoisers import (
    GuidedDenoiser,
    Pass,
    SimpleDenoiser,
    transformer_velocity_model,
)
from ltx2cli.diffusion.guidance import (
    LTX_2_3_DEFAULTS,
    LTX_2_3_HQ_DEFAULTS,
    LTX_2_DEFAULTS,
    GenerationDefaults,
)
from ltx2cli.diffusion.noise import make_generator, noise_states
from ltx2cli.diffusion.patchify import VideoLatentShape, audio_latent_shape, patchify_video
from ltx2cli.diffusion.schedules import ltx2_sigmas
from ltx2cli.diffusion.state import AV, AudioGrid, LatentState, VideoGrid
from ltx2cli.diffusion.steppers import Res2sNoise, euler_loop, res2s_loop
from ltx2cli.families import GEN_2_0, GEN_2_3
from ltx2cli.models.tiny import tiny_config
from ltx2cli.models.transformer import (
    BatchedPerturbations,
    LTXTransformer,
    Modality,
    PerturbationType,
    TransformerConfig,
    build_transformer,
    velocity_to_x0,
)

GENERATIONS = (GEN_2_0, GEN_2_3)
DEFAULTS: dict[str, GenerationDefaults] = {GEN_2_0: LTX_2_DEFAULTS, GEN_2_3: LTX_2_3_DEFAULTS}
WEIGHT_SEED = 0
INPUT_SEED = 1  # image latent and text contexts
SEED = 7
OTHER_SEED = 8
STEPS = 3
FPS = 24.0
LATENT_FRAMES, LATENT_HEIGHT, LATENT_WIDTH = 2, 2, 3
TOKENS_PER_FRAME = LATENT_HEIGHT * LATENT_WIDTH  # the image-conditioned first frame
AUDIO_FRAMES = 5
CONTEXT_TOKENS = 4
# The tiny models have 2 blocks; the released STG blocks (28 / 29) do not exist there.
TINY_STG_BLOCK = 1
PASSES_PER_STEP = 4  # cond, uncond, perturbed, isolated
PASS_ORDER = (Pass.COND, Pass.UNCOND, Pass.PERTURBED, Pass.ISOLATED)
SELF_ROWS = (PerturbationType.SKIP_VIDEO_SELF_ATTN, PerturbationType.SKIP_AUDIO_SELF_ATTN)
CROSS_ROWS = (PerturbationType.SKIP_A2V_CROSS_ATTN, PerturbationType.SKIP_V2A_CROSS_ATTN)
HQ_PASSES_PER_STEP = 3  # STG is off in the HQ defaults
RES2S_EVALUATIONS = 2 * STEPS + 1  # two per step plus the final denoise

Loop = Callable[..., AV[LatentState]]


def tiny_transformer(generation: str) -> LTXTransformer:
    model = build_transformer(tiny_config(generation)).eval()
    model.init_weights(torch.Generator().manual_seed(WEIGHT_SEED))
    return model


def context_widths(cfg: TransformerConfig) -> tuple[int, int]:
    """2.0 projects caption-width contexts in the model; 2.3 gets them at the streams' widths."""
    if cfg.caption_proj_before_connector:
        return cfg.video_dim, cfg.audio_dim
    return cfg.caption_channels, cfg.caption_channels


@dataclass
class Forward:
    video: Modality
    audio: Modality
    perturbations: BatchedPerturbations | None
    output: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass
class Recorder:
    """Hooks on the transformer recording every forward's inputs and outputs."""

    forwards: list[Forward] = field(default_factory=list)

    def attach(self, model: LTXTransformer) -> None:
        model.register_forward_pre_hook(self._before, with_kwargs=True)
        model.register_forward_hook(self._after)

    def _before(self, _module, args, kwargs) -> None:
        bound = dict(zip(("video", "audio", "perturbations"), args, strict=False)) | kwargs
        self.forwards.append(Forward(bound["video"], bound["audio"], bound.get("perturbations")))

    def _after(self, _module, _args, output) -> None:
        self.forwards[-1].output = output


@dataclass
class Run:
    final: AV[LatentState]
    start: AV[LatentState]
    image: torch.Tensor
    sigmas: torch.Tensor
    contexts: AV[torch.Tensor]
    negatives: AV[torch.Tensor]


def sample(
    model: LTXTransformer,
    generation: str,
    seed: int = SEED,
    loop: Loop = euler_loop,
    defaults: GenerationDefaults | None = None,
) -> Run:
    """`STEPS` guided steps of `loop` from noise, the first latent frame conditioned on an image,
    with `defaults` (the generation's) moved to the tiny model's STG block."""
    cfg = model.config
    inputs = torch.Generator().manual_seed(INPUT_SEED)
    shape = VideoLatentShape(1, cfg.in_channels, LATENT_FRAMES, LATENT_HEIGHT, LATENT_WIDTH)
    video_grid, audio_grid = VideoGrid(shape, FPS), AudioGrid(audio_latent_shape(AUDIO_FRAMES))
    image = torch.randn(1, cfg.in_channels, 1, LATENT_HEIGHT, LATENT_WIDTH, generator=inputs)
    video = apply_conditioning(video_grid.initial_state(), [ReplaceLatent(image)], video_grid)
    start = noise_states(AV(video=video, audio=audio_grid.initial_state()), make_generator(seed))

    video_width, audio_width = context_widths(cfg)

    def text(width: int) -> torch.Tensor:
        return torch.randn(1, CONTEXT_TOKENS, width, generator=inputs)

    contexts = AV(video=text(video_width), audio=text(audio_width))
    negatives = AV(video=text(video_width), audio=text(audio_width))
    defaults = defaults or DEFAULTS[generation]
    denoiser = GuidedDenoiser(
        transformer_velocity_model(model),
        contexts,
        negatives,
        video=replace(defaults.video, stg_blocks=(TINY_STG_BLOCK,)),
        audio=replace(defaults.audio, stg_blocks=(TINY_STG_BLOCK,)),
    )
    sigmas = ltx2_sigmas(STEPS, tokens=shape.token_count)
    final = loop(start, sigmas, denoiser)
    return Run(final, start, image, sigmas, contexts, negatives)


@pytest.mark.parametrize("generation", GENERATIONS)
def test_guided_euler_loop_runs_every_pass_through_the_transformer(generation):
    model = tiny_transformer(generation)
    recorder = Recorder()
    recorder.attach(model)
    run = sample(model, generation)
    cfg = model.config

    # Shapes, finiteness, and the image frame kept exactly.
    video, audio = run.final.video.latent, run.final.audio.latent
    assert video.shape == (1, LATENT_FRAMES * TOKENS_PER_FRAME, cfg.in_channels)
    assert audio.shape == (1, AUDIO_FRAMES, cfg.audio_in_channels)
    assert torch.isfinite(video).all() and torch.isfinite(audio).all()
    assert not video.requires_grad and not audio.requires_grad
    assert torch.equal(video[:, :TOKENS_PER_FRAME], patchify_video(run.image))
    assert not torch.equal(
        video[:, TOKENS_PER_FRAME:], run.start.video.latent[:, TOKENS_PER_FRAME:]
    )

    # One forward per pass per step, in the planned order.
    assert len(recorder.forwards) == STEPS * PASSES_PER_STEP
    num_blocks = cfg.num_layers
    for step in range(STEPS):
        passes = dict(zip(PASS_ORDER, recorder.forwards[step * PASSES_PER_STEP :], strict=False))
        sigma = run.sigmas[step]
        for kind, forward in passes.items():
            assert forward.video.sigma.tolist() == [sigma.item()]
            assert not forward.video.timesteps[:, :TOKENS_PER_FRAME].any()  # clean image frame
            assert torch.equal(forward.video.timesteps[:, TOKENS_PER_FRAME:].unique(), sigma[None])
            expected = run.negatives if kind is Pass.UNCOND else run.contexts
            assert forward.video.context is expected.video
            assert forward.audio.context is expected.audio
        assert passes[Pass.COND].perturbations is None
        assert passes[Pass.UNCOND].perturbations is None

        # STG: both self-attentions skipped in the configured block only.
        stg = passes[Pass.PERTURBED].perturbations.keep[..., 0]
        assert stg.shape == (len(PerturbationType), num_blocks)
        for row in SELF_ROWS:
            assert stg[row].tolist() == [b != TINY_STG_BLOCK for b in range(num_blocks)]
        assert all(stg[row].all() for row in CROSS_ROWS)
        # Modality isolation: both A↔V cross-attentions in every block, nothing else.
        isolated = passes[Pass.ISOLATED].perturbations.keep[..., 0]
        assert not any(isolated[row].any() for row in CROSS_ROWS)
        assert all(isolated[row].all() for row in SELF_ROWS)

        # The perturbations change what the transformer returns.
        cond_video = passes[Pass.COND].output[0]
        assert not torch.equal(passes[Pass.PERTURBED].output[0], cond_video)
        assert not torch.equal(passes[Pass.ISOLATED].output[0], cond_video)


@pytest.mark.parametrize("generation", GENERATIONS)
def test_same_seed_same_samples_other_seed_differs(generation):
    model = tiny_transformer(generation)
    first, again, other = (sample(model, generation, s).final for s in (SEED, SEED, OTHER_SEED))
    for name in ("video", "audio"):
        latent = getattr(first, name).latent
        assert torch.equal(latent, getattr(again, name).latent)
        assert not torch.equal(latent, getattr(other, name).latent)


@pytest.mark.parametrize("generation", GENERATIONS)
def test_simple_denoiser_x0_is_the_transformer_velocity_converted_per_token(generation):
    model = tiny_transformer(generation)
    run = sample(model, generation)
    states, sigma = run.start, run.sigmas[0]
    x0 = SimpleDenoiser(transformer_velocity_model(model), run.contexts)(states, sigma, 0)

    def by_hand(name: str) -> Modality:
        state = getattr(states, name)
        return Modality(
            latent=state.latent,
            sigma=sigma.reshape(1),
            timesteps=state.denoise_mask * sigma,
            positions=state.positions,
            context=getattr(run.contexts, name),
        )

    video, audio = by_hand("video"), by_hand("audio")
    with torch.no_grad():
        v_video, v_audio = model(video, audio)
    assert torch.equal(x0.video, velocity_to_x0(video.latent, v_video, video.timesteps))
    assert torch.equal(x0.audio, velocity_to_x0(audio.latent, v_audio, audio.timesteps))
    assert torch.equal(x0.video[:, :TOKENS_PER_FRAME], patchify_video(run.image))


@pytest.mark.parametrize("generation", GENERATIONS)
def test_res2s_hq_loop_gives_the_transformer_the_float64_midpoint_sigma(generation):
    model = tiny_transformer(generation)
    recorder = Recorder()
    recorder.attach(model)
    hq = functools.partial(res2s_loop, noise=Res2sNoise.seeded())
    run = sample(model, generation, loop=hq, defaults=LTX_2_3_HQ_DEFAULTS)
    assert len(recorder.forwards) == RES2S_EVALUATIONS * HQ_PASSES_PER_STEP
    dtypes = [f.video.sigma.dtype for f in recorder.forwards[::HQ_PASSES_PER_STEP]]
    midpoint = [i % 2 == 1 and i < 2 * STEPS for i in range(RES2S_EVALUATIONS)]
    assert dtypes == [torch.float64 if mid else torch.float32 for mid in midpoint]
    video, audio = run.final.video.latent, run.final.audio.latent
    assert torch.isfinite(video).all() and torch.isfinite(audio).all()
    assert torch.equal(video[:, :TOKENS_PER_FRAME], patchify_video(run.image))


def test_stg_block_beyond_the_model_is_an_error():
    model = tiny_transformer(GEN_2_3)
    defaults = LTX_2_3_DEFAULTS  # STG block 28 of the released 48-block model
    run = sample(model, GEN_2_3)
    denoiser = GuidedDenoiser(
        transformer_velocity_model(model),
        run.contexts,
        run.negatives,
        video=defaults.video,
        audio=defaults.audio,
    )
    with pytest.raises(ValueError, match=f"block {defaults.video.stg_blocks[0]} outside"):
        denoiser(run.start, run.sigmas[0].item(), 0)
