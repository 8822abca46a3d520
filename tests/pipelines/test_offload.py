"""`--offload block`: the transformer's bytes on the compute device during a forward stay at
the non-block weights plus two blocks, and results equal the unstreamed model's."""

from __future__ import annotations

import copy

import torch
from test_pipelines import make_job

from ltx2cli.diffusion.patchify import AudioLatentShape, VideoLatentShape
from ltx2cli.diffusion.state import AudioGrid, VideoGrid
from ltx2cli.models.tiny import tiny_config
from ltx2cli.models.transformer import Modality, build_transformer
from ltx2cli.pipelines.offload import BlockStreamer, resident_bytes
from ltx2cli.pipelines.run import run_job

CPU = torch.device("cpu")
DEEP_LAYERS = 6  # deep enough that two blocks are far below all of them
VIDEO_SHAPE = VideoLatentShape(1, 16, 2, 2, 3)
AUDIO_SHAPE = AudioLatentShape(1, 8, 5, 16)
CONTEXT_TOKENS = 4
SIGMA = 0.6


def nbytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def inputs(model) -> tuple[Modality, Modality]:
    g = torch.Generator().manual_seed(1)
    cfg = model.config
    sigma = torch.tensor([SIGMA])

    def modality(tokens: int, channels: int, positions, width: int) -> Modality:
        return Modality(
            latent=torch.randn(1, tokens, channels, generator=g),
            sigma=sigma,
            timesteps=torch.full((1, tokens, 1), SIGMA),
            positions=positions,
            context=torch.randn(1, CONTEXT_TOKENS, width, generator=g),
        )

    video_positions = VideoGrid(VIDEO_SHAPE, 24.0).positions()
    video = modality(VIDEO_SHAPE.token_count, cfg.in_channels, video_positions, cfg.video_dim)
    audio = modality(
        AUDIO_SHAPE.frames, cfg.audio_in_channels, AudioGrid(AUDIO_SHAPE).positions(), cfg.audio_dim
    )
    return video, audio


def test_block_offload_keeps_at_most_two_blocks_on_the_device_during_a_forward():
    config = tiny_config()
    config["transformer"]["num_layers"] = DEEP_LAYERS
    model = build_transformer(config).eval()
    model.init_weights(torch.Generator().manual_seed(0))
    reference = copy.deepcopy(model)
    block = nbytes(model.transformer_blocks[0])
    non_block = nbytes(model) - DEEP_LAYERS * block
    video, audio = inputs(model)

    BlockStreamer(model, CPU)
    assert resident_bytes(model, CPU) == non_block  # nothing of the blocks between forwards
    seen: list[int] = []
    for b in model.transformer_blocks:  # runs after the streamer's own pre-hook
        b.register_forward_pre_hook(lambda *_: seen.append(resident_bytes(model, CPU)))
    with torch.inference_mode():
        streamed = model(video, audio)
        expected = reference(video, audio)

    assert len(seen) == DEEP_LAYERS
    assert max(seen) <= non_block + 2 * block
    assert min(seen) >= non_block + block  # the running block is there
    assert resident_bytes(model, CPU) == non_block
    for got, want in zip(streamed, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_a_pipeline_with_block_offload_gives_the_same_video(tiny_models):
    plain = run_job(make_job(tiny_models, "distilled", audio=False)).video
    streamed = run_job(make_job(tiny_models, "distilled", audio=False, offload="block")).video
    torch.testing.assert_close(streamed, plain, rtol=0, atol=0)
