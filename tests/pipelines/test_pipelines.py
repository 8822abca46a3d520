"""Each pipeline end to end on tiny checkpoints on the CPU, its mp4 read back with PyAV."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_files import TINY_STG_BLOCK, read_back

from ltx2cli.config.generation import GenerationSettings
from ltx2cli.models.loading import load_component
from ltx2cli.pipelines.events import Event
from ltx2cli.pipelines.job import ImageInput, Job, LoraInput
from ltx2cli.pipelines.run import generate

HEIGHT, WIDTH, FRAMES, FPS = 64, 128, 9, 24.0
STEPS = 2
SEED = 5
PROMPT = "a red fox runs through the snow"
AAC_FRAME = 1024  # samples per AAC frame: the encoder pads the end to whole frames
IMAGE_SIZE = (96, 160)  # (H, W) of the conditioning picture, cropped to the clip's aspect


def make_job(tiny, pipeline: str, out: Path, **overrides) -> Job:
    guided = {} if pipeline == "distilled" else {"steps": STEPS}
    values = dict(
        model=str(tiny.checkpoint),
        height=HEIGHT,
        width=WIDTH,
        num_frames=FRAMES,
        frame_rate=FPS,
        dtype="float32",
        seed=SEED,
        video_stg_blocks=(TINY_STG_BLOCK,),
        audio_stg_blocks=(TINY_STG_BLOCK,),
        **guided,
    )
    values.update(overrides)
    images = values.pop("images", ())
    settings = GenerationSettings.for_pipeline(pipeline, **values)
    return Job(
        PROMPT,
        settings,
        out,
        images=images,
        distilled_lora=LoraInput(str(tiny.distilled_lora)),
        upsampler=str(tiny.upsampler),
        text_encoder=str(tiny.text_encoder),
    )


@pytest.mark.parametrize("pipeline", ["distilled", "two-stage"])
def test_pipeline_writes_the_requested_video_and_audio(pipeline, tiny_models, tmp_path):
    events: list[Event] = []
    out = tmp_path / "fox.mp4"
    path, _ = generate(make_job(tiny_models, pipeline, out), events.append)

    assert path == out
    written = read_back(out)
    assert written.frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert written.fps == FPS
    assert (written.audio_rate, written.audio_channels) == (tiny_models.audio_rate, 2)
    duration = FRAMES / FPS
    assert duration <= written.audio_seconds <= duration + 2 * AAC_FRAME / tiny_models.audio_rate
    # The text encoder is gone before the transformer loads; every load is freed again.
    order = [(e.kind, e.name) for e in events if e.kind in ("load", "free")]
    assert order.index(("free", "text_encoder")) < order.index(("load", "transformer"))
    loaded = [name for kind, name in order if kind == "load"]
    freed = [name for kind, name in order if kind == "free"]
    assert sorted(loaded) == sorted(freed)
    steps = [e for e in events if e.kind == "step"]
    stage1 = 8 if pipeline == "distilled" else STEPS
    assert [e.total for e in steps] == [stage1] * stage1 + [3] * 3


def test_sidecar_and_mp4_comment_both_hold_the_settings(tiny_models, tmp_path):
    out = tmp_path / "clip.mp4"
    generate(make_job(tiny_models, "distilled", out, audio=False))
    sidecar = json.loads(out.with_suffix(".json").read_text())
    embedded = json.loads(read_back(out).comment)
    for meta in (sidecar, embedded):
        assert meta["prompt"] == PROMPT
        assert meta["seed"] == SEED
        assert meta["settings"]["num_frames"] == FRAMES
        assert meta["settings"]["pipeline"] == "distilled"
        assert meta["models"]["checkpoint"]["path"] == str(tiny_models.checkpoint)
        assert len(meta["models"]["checkpoint"]["hash"]) == 12
    assert set(sidecar["timings"]) >= {"prompt", "stage 1", "upsample", "stage 2", "decode"}


def test_no_audio_writes_a_video_only_file(tiny_models, tmp_path):
    out = tmp_path / "silent.mp4"
    _, result = generate(make_job(tiny_models, "two-stage", out, audio=False))
    written = read_back(out)
    assert written.audio_rate is None
    assert written.frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert result.audio is None and "audio" not in result.latents


def test_same_seed_gives_the_same_frames_and_another_seed_does_not(tiny_models, tmp_path):
    def frames(seed: int, name: str) -> np.ndarray:
        out = tmp_path / name
        generate(make_job(tiny_models, "distilled", out, audio=False, seed=seed))
        return read_back(out).frames

    first, again, other = frames(SEED, "a.mp4"), frames(SEED, "b.mp4"), frames(SEED + 1, "c.mp4")
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def write_picture(path: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (*IMAGE_SIZE, 3), dtype=np.uint8)).save(path)
    return path


def test_image_at_frame_zero_keeps_its_latent_in_both_stages(tiny_models, tmp_path):
    from ltx2cli.media.image import prepare_conditioning_image

    picture = write_picture(tmp_path / "first.png")
    image = ImageInput(picture, frame=0, strength=1.0, crf=0)
    job = make_job(tiny_models, "two-stage", tmp_path / "i2v.mp4", audio=False, images=(image,))
    _, result = generate(job)

    encoder = load_component(tiny_models.checkpoint, "video_encoder", dtype=torch.float32)
    for key, (h, w) in (("stage1_video", (HEIGHT // 2, WIDTH // 2)), ("video", (HEIGHT, WIDTH))):
        pixels = prepare_conditioning_image(picture, h, w, crf=0)[None, :, None]
        with torch.inference_mode():
            expected = encoder(pixels)[:, :, 0]
        torch.testing.assert_close(result.latents[key][:, :, 0], expected, rtol=0, atol=1e-6)
        assert not torch.allclose(result.latents[key][:, :, 1], torch.zeros_like(expected))
