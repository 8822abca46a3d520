"""The upscale pipeline in-process on tiny checkpoints: x2 latents and pixels, refinement
strength 0 leaves the upsampled latent as it is, any other strength refines it."""

from __future__ import annotations

from pathlib import Path

import torch

from ltx2cli.config.generation import GenerationSettings
from ltx2cli.media.audio import Audio
from ltx2cli.media.video import write_video
from ltx2cli.pipelines.events import Event
from ltx2cli.pipelines.run import run_job
from ltx2cli.pipelines.upscale import UpscaleJob

FRAMES, HEIGHT, WIDTH, FPS = 9, 64, 96, 24.0


def make_job(tiny, source: Path, strength: float) -> UpscaleJob:
    settings = GenerationSettings.for_pipeline(
        "upscale",
        model=str(tiny.checkpoint),
        height=2 * HEIGHT,
        width=2 * WIDTH,
        num_frames=FRAMES,
        frame_rate=FPS,
        dtype="float32",
        seed=4,
        audio=False,
    )
    return UpscaleJob(
        "a harbour",
        settings,
        Path("unused.mp4"),
        upsampler=str(tiny.upsampler),
        text_encoder=str(tiny.text_encoder),
        source=source,
        strength=strength,
    )


def test_upscale_doubles_the_latent_grid_and_refines_by_strength(tiny_models, tmp_path):
    frames = torch.rand(FRAMES, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0))
    wave = torch.rand(2, 48000, generator=torch.Generator().manual_seed(1)) * 0.2 - 0.1
    source = write_video(tmp_path / "s.mp4", frames * 2 - 1, FPS, audio=Audio(wave, 48000))

    events: list[Event] = []
    refined = run_job(make_job(tiny_models, source, 1.0), events.append)
    plain = run_job(make_job(tiny_models, source, 0.0))

    src = refined.latents["source_video"]
    assert src.shape[2:] == (2, HEIGHT // 32, WIDTH // 32)
    assert refined.latents["upsampled"].shape[2:] == (2, HEIGHT // 16, WIDTH // 16)
    assert torch.equal(plain.latents["video"], plain.latents["upsampled"])
    assert not torch.equal(refined.latents["video"], refined.latents["upsampled"])
    assert [e.total for e in events if e.kind == "step"] == [3, 3, 3]  # distilled stage 2
    assert refined.video.shape == (FRAMES, 3, 2 * HEIGHT, 2 * WIDTH)
    assert refined.audio.sample_rate == 48000 and refined.audio.num_channels == 2
