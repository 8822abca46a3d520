"""The retake pipeline in-process on tiny checkpoints: which latents it keeps and which it
regenerates (video window, audio window, foley, a source without audio, distilled)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ltx2cli.config.generation import GenerationSettings
from ltx2cli.media.audio import Audio
from ltx2cli.media.video import write_video
from ltx2cli.pipelines.retake import RetakeJob
from ltx2cli.pipelines.run import run_job

HEIGHT, WIDTH, FRAMES, FPS = 64, 96, 25, 24.0
PROMPT = "the dog jumps over the fence"
AUDIO_RATE = 48000
AUDIO_LATENTS_PER_SECOND = 25  # 16 kHz, hop 160, 4x temporal compression
MEL_SECONDS = 160 / 16000


def write_source(path: Path, *, audio: bool = True, seed: int = 0) -> Path:
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(FRAMES, 3, HEIGHT, WIDTH, generator=g) * 2 - 1
    sound = None
    if audio:
        t = torch.arange(round(FRAMES / FPS * AUDIO_RATE)) / AUDIO_RATE
        wave = 0.3 * torch.sin(2 * math.pi * 440 * t)
        sound = Audio(torch.stack([wave, wave]), AUDIO_RATE)
    write_video(path, frames, FPS, audio=sound, crf=0)
    return path


def make_job(tiny, source: Path, *, distilled: bool = False, **fields) -> RetakeJob:
    guided = {} if distilled else {"steps": 2}
    settings = GenerationSettings.for_pipeline(
        "one-stage",
        model=str(tiny.checkpoint),
        height=HEIGHT,
        width=WIDTH,
        num_frames=FRAMES,
        frame_rate=FPS,
        dtype="float32",
        seed=3,
        video_stg_blocks=(1,),
        audio_stg_blocks=(1,),
        **guided,
    )
    return RetakeJob(
        PROMPT,
        settings,
        Path("unused.mp4"),
        text_encoder=str(tiny.text_encoder),
        source=source,
        distilled=distilled,
        **fields,
    )


def video_frames_inside(start: float, end: float) -> torch.Tensor:
    """Latent frames whose causal pixel span [8i-7, 8i+1) (frame 0: [0, 1)) overlaps the
    window, computed from the VAE's 8x temporal compression."""
    latent_frames = (FRAMES - 1) // 8 + 1
    inside = []
    for i in range(latent_frames):
        first, last = (0, 1) if i == 0 else (8 * i - 7, 8 * i + 1)
        inside.append(last / FPS > start and first / FPS < end)
    return torch.tensor(inside)


def audio_frames_inside(start: float, end: float, frames: int) -> torch.Tensor:
    """Audio latent i spans mel frames [max(0, 4i-3), 4i+1) of 10 ms each (causal)."""
    inside = []
    for i in range(frames):
        first, last = max(0, 4 * i - 3) * MEL_SECONDS, (4 * i + 1) * MEL_SECONDS
        inside.append(last > start and first < end)
    return torch.tensor(inside)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_source(tmp_path_factory.mktemp("retake") / "source.mp4")


def test_video_window_keeps_the_source_latents_outside_bit_for_bit(tiny_models, source):
    start, end = 0.4, 0.7
    result = run_job(make_job(tiny_models, source, start=start, end=end, what="video"))

    out, src = result.latents["video"], result.latents["source_video"]
    inside = video_frames_inside(start, end)
    assert inside.any() and not inside.all()
    assert torch.equal(out[:, :, ~inside], src[:, :, ~inside])
    assert not torch.equal(out[:, :, inside], src[:, :, inside])
    # --what video keeps every audio latent.
    assert torch.equal(result.latents["audio"], result.latents["source_audio"])
    assert result.video.shape == (FRAMES, 3, HEIGHT, WIDTH)
    assert result.fps == FPS


def test_both_retakes_the_same_window_of_video_and_audio(tiny_models, source):
    start, end = 0.4, 0.7
    result = run_job(make_job(tiny_models, source, start=start, end=end, what="both"))

    audio, src = result.latents["audio"], result.latents["source_audio"]
    inside = audio_frames_inside(start, end, audio.shape[2])
    assert torch.equal(audio[:, :, ~inside], src[:, :, ~inside])
    assert not torch.equal(audio[:, :, inside], src[:, :, inside])
    video_inside = video_frames_inside(start, end)
    assert not torch.equal(result.latents["video"], result.latents["source_video"])
    assert torch.equal(
        result.latents["video"][:, :, ~video_inside],
        result.latents["source_video"][:, :, ~video_inside],
    )


def test_foley_regenerates_all_audio_and_keeps_every_video_latent(tiny_models, source):
    result = run_job(make_job(tiny_models, source, what="audio"))

    assert torch.equal(result.latents["video"], result.latents["source_video"])
    audio, src = result.latents["audio"], result.latents["source_audio"]
    assert audio.shape[2] == round(FRAMES / FPS * AUDIO_LATENTS_PER_SECOND)
    assert not torch.isclose(audio, src).all(dim=(0, 1, 3)).any()  # every audio frame is new
    assert result.audio.waveform.shape[0] == 2


def test_source_without_audio_gets_its_audio_generated(tiny_models, tmp_path):
    silent = write_source(tmp_path / "silent.mp4", audio=False)
    result = run_job(make_job(tiny_models, silent, start=0.4, end=0.7, what="video"))

    assert "source_audio" not in result.latents
    assert result.audio is not None and result.audio.num_channels == 2
    inside = video_frames_inside(0.4, 0.7)
    assert torch.equal(
        result.latents["video"][:, :, ~inside], result.latents["source_video"][:, :, ~inside]
    )


def test_distilled_retake_keeps_outside_and_runs_eight_steps(tiny_models, source):
    steps = []
    job = make_job(tiny_models, source, start=0.4, end=0.7, what="video", distilled=True)
    result = run_job(job, lambda e: steps.append(e.total) if e.kind == "step" else None)

    assert steps == [8] * 8
    inside = video_frames_inside(0.4, 0.7)
    assert torch.equal(
        result.latents["video"][:, :, ~inside], result.latents["source_video"][:, :, ~inside]
    )
    assert not torch.equal(
        result.latents["video"][:, :, inside], result.latents["source_video"][:, :, inside]
    )
