"""The a2v pipeline in-process on tiny checkpoints: the audio latent stays frozen in both
stages and the output carries the input waveform itself."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import torch

from ltx2cli.config.generation import GenerationSettings
from ltx2cli.pipelines.a2v import A2VJob
from ltx2cli.pipelines.job import LoraInput
from ltx2cli.pipelines.run import run_job

HEIGHT, WIDTH, FRAMES, FPS = 64, 128, 9, 24.0
RATE = 44100


def write_wav(path: Path, seconds: float, channels: int) -> np.ndarray:
    """A 16-bit wav of a 440 Hz tone; returns the samples as float in [-1, 1]."""
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    t = np.arange(round(seconds * RATE)) / RATE
    wave = np.round(0.25 * np.sin(2 * math.pi * 440 * t) * 32767).astype(np.int16)
    planes = np.tile(wave, (channels, 1))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=RATE, layout=layout)
        frame = av.AudioFrame.from_ndarray(planes.T.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return wave.astype(np.float32) / 32768


def make_job(tiny, audio: Path, start: float = 0.0) -> A2VJob:
    settings = GenerationSettings.for_pipeline(
        "a2v",
        model=str(tiny.checkpoint),
        height=HEIGHT,
        width=WIDTH,
        num_frames=FRAMES,
        frame_rate=FPS,
        steps=2,
        dtype="float32",
        seed=1,
        video_stg_blocks=(1,),
        audio_stg_blocks=(1,),
    )
    return A2VJob(
        "a singer on a rooftop",
        settings,
        Path("unused.mp4"),
        distilled_lora=LoraInput(str(tiny.distilled_lora)),
        upsampler=str(tiny.upsampler),
        text_encoder=str(tiny.text_encoder),
        audio=audio,
        audio_start=start,
    )


def test_audio_latent_is_frozen_and_the_output_is_the_input_waveform(tiny_models, tmp_path):
    wave = write_wav(tmp_path / "mono.wav", 1.0, channels=1)
    start = 0.1
    result = run_job(make_job(tiny_models, tmp_path / "mono.wav", start))

    source = result.latents["source_audio"]
    assert torch.equal(result.latents["stage1_audio"], source)
    assert torch.equal(result.latents["audio"], source)
    # 9 frames at 24 fps → round(9/24 · 25) audio latent frames.
    assert source.shape[2] == round(FRAMES / FPS * 25)
    # The original samples from 0.1 s for the clip's duration, mono duplicated to stereo.
    first, count = round(start * RATE), round(FRAMES / FPS * RATE)
    expected = torch.from_numpy(wave[first : first + count])
    assert result.audio.sample_rate == RATE
    assert torch.equal(result.audio.waveform, torch.stack([expected, expected]))
    assert result.video.shape == (FRAMES, 3, HEIGHT, WIDTH)
    assert not torch.equal(result.latents["video"], torch.zeros_like(result.latents["video"]))


def test_other_audio_gives_another_video(tiny_models, tmp_path):
    write_wav(tmp_path / "a.wav", 1.0, channels=2)
    quiet = tmp_path / "b.wav"
    with av.open(str(quiet), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=RATE, layout="stereo")
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 2 * RATE), np.int16), format="s16", layout="stereo"
        )
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    tone = run_job(make_job(tiny_models, tmp_path / "a.wav"))
    silence = run_job(make_job(tiny_models, quiet))
    assert not torch.equal(tone.latents["video"], silence.latents["video"])
