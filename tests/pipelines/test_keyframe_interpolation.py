"""Keyframe interpolation in-process on tiny checkpoints: keyframes are guiding tokens in both
stages (appended, never written into the clip's own latents) and are dropped before decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ltx2cli.config.generation import GenerationSettings
from ltx2cli.pipelines.events import Event
from ltx2cli.pipelines.job import ImageInput, Job, LoraInput
from ltx2cli.pipelines.run import run_job

HEIGHT, WIDTH, FRAMES, FPS = 64, 128, 17, 24.0


def picture(path: Path, value: int) -> Path:
    Image.fromarray(np.full((64, 128, 3), value, np.uint8)).save(path)
    return path


def make_job(tiny, images) -> Job:
    settings = GenerationSettings.for_pipeline(
        "keyframe-interpolation",
        model=str(tiny.checkpoint),
        height=HEIGHT,
        width=WIDTH,
        num_frames=FRAMES,
        frame_rate=FPS,
        steps=2,
        dtype="float32",
        seed=2,
        video_stg_blocks=(1,),
        audio_stg_blocks=(1,),
    )
    return Job(
        "a flower opens",
        settings,
        Path("unused.mp4"),
        images=tuple(images),
        distilled_lora=LoraInput(str(tiny.distilled_lora)),
        upsampler=str(tiny.upsampler),
        text_encoder=str(tiny.text_encoder),
    )


def test_keyframe_tokens_steer_the_clip_and_do_not_reach_the_output(tiny_models, tmp_path):
    dark, light = picture(tmp_path / "dark.png", 10), picture(tmp_path / "light.png", 240)
    first_last = [ImageInput(dark, 0), ImageInput(light, FRAMES - 1)]
    events: list[Event] = []
    result = run_job(make_job(tiny_models, first_last), events.append)
    swapped = run_job(make_job(tiny_models, [ImageInput(light, 0), ImageInput(dark, 16)]))

    # 17 frames → 3 latent frames of (64/32)x(128/32); stage 1 at half size: 1x2 per frame.
    assert result.latents["video"].shape[2:] == (3, 2, 4)
    assert result.latents["stage1_video"].shape[2:] == (3, 1, 2)
    assert result.video.shape == (FRAMES, 3, HEIGHT, WIDTH)
    assert not torch.equal(result.latents["video"], swapped.latents["video"])
    # Two stages; the VAE encoder stays loaded from stage 1 into the upsampling (§10.6).
    stages = [e.name for e in events if e.kind == "stage"]
    assert stages == ["prompt", "stage 1", "upsample", "stage 2", "decode"]
    loads = [e.name for e in events if e.kind == "load"]
    assert loads.count("video_encoder") == 1  # kept from stage 1 into the upsampling
