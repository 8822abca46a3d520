"""The passes of a guided step as one batched transformer call: the same x0 as the passes run
one by one (to float32 rounding), and split in halves when a call runs out of memory."""

from __future__ import annotations

import torch

from ltx2cli.diffusion.denoisers import GuidedDenoiser, ModelCall, transformer_velocity_model
from ltx2cli.diffusion.guidance import GuiderParams
from ltx2cli.diffusion.patchify import AudioLatentShape, VideoLatentShape
from ltx2cli.diffusion.state import AV, AudioGrid, VideoGrid
from ltx2cli.models.tiny import tiny_config
from ltx2cli.models.transformer import build_transformer

VIDEO_SHAPE = VideoLatentShape(1, 16, 2, 2, 3)
AUDIO_SHAPE = AudioLatentShape(1, 8, 5, 16)
CONTEXT_TOKENS = 6
SIGMA = 0.7
STG_BLOCK = 1  # the tiny transformer's last block
# cfg, STG and modality isolation all on: cond, uncond, perturbed, isolated.
VIDEO = GuiderParams(3.0, 1.0, (STG_BLOCK,), 0.7, 3.0)
AUDIO = GuiderParams(7.0, 1.0, (STG_BLOCK,), 0.7, 3.0)
PASSES = 4


def setup():
    model = build_transformer(tiny_config()).eval()
    model.init_weights(torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    video_grid, audio_grid = VideoGrid(VIDEO_SHAPE, 24.0), AudioGrid(AUDIO_SHAPE)
    states = AV(
        video=video_grid.initial_state(torch.randn(VIDEO_SHAPE.size, generator=g)),
        audio=audio_grid.initial_state(torch.randn(AUDIO_SHAPE.size, generator=g)),
    )
    cfg = model.config

    def contexts() -> AV:
        return AV(
            video=torch.randn(1, CONTEXT_TOKENS, cfg.video_dim, generator=g),
            audio=torch.randn(1, CONTEXT_TOKENS, cfg.audio_dim, generator=g),
        )

    return model, states, contexts(), contexts()


class Recording:
    """The transformer's velocity model, recording each call's batch size; calls above
    `limit` samples fail the way an exhausted allocator does."""

    def __init__(self, model, limit: int | None = None) -> None:
        self.inner, self.limit, self.batches = transformer_velocity_model(model), limit, []

    def __call__(self, call: ModelCall):
        batch = call.video.latent.shape[0]
        self.batches.append(batch)
        if self.limit is not None and batch > self.limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(call)


def x0(model, states, positive, negative, max_passes, limit=None):
    recording = Recording(model, limit)
    denoiser = GuidedDenoiser(recording, positive, negative, VIDEO, AUDIO, max_passes=max_passes)
    with torch.inference_mode():
        out = denoiser(states, SIGMA, 0)
    return out, recording.batches, denoiser.max_passes


def test_one_batched_call_equals_the_passes_run_one_by_one():
    model, states, positive, negative = setup()
    batched, batches, _ = x0(model, states, positive, negative, None)
    single, singles, _ = x0(model, states, positive, negative, 1)

    assert batches == [PASSES] and singles == [1] * PASSES
    for name in ("video", "audio"):
        torch.testing.assert_close(
            getattr(batched, name), getattr(single, name), rtol=1e-5, atol=1e-5
        )
        assert not torch.equal(getattr(batched, name), getattr(states, name).latent)


def test_a_call_that_runs_out_of_memory_is_split_in_halves():
    model, states, positive, negative = setup()
    split, batches, kept = x0(model, states, positive, negative, None, limit=2)
    single, _, _ = x0(model, states, positive, negative, 1)

    assert batches == [PASSES, 2, 2]
    assert kept == 2  # later steps start at the size that fitted
    for name in ("video", "audio"):
        got, want = getattr(split, name), getattr(single, name)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
