"""The pipelines in-process on tiny checkpoints on the CPU: what is resident when, the latents
each stage leaves, determinism. (The written files are checked through `ltx2` in
tests/cli/test_generate.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ltx2cli.config.generation import GenerationSettings
from ltx2cli.models.loading import load_component
from ltx2cli.pipelines.events import Event
from ltx2cli.pipelines.job import ImageInput, Job, LoraInput
from ltx2cli.pipelines.run import run_job

HEIGHT, WIDTH, FRAMES, FPS = 64, 128, 9, 24.0
STEPS = 2
SEED = 5
TINY_STG_BLOCK = 1  # the tiny transformer has two blocks
PROMPT = "a red fox runs through the snow"
IMAGE_SIZE = (96, 160)  # (H, W) of the conditioning picture, cropped to the clip's aspect
DISTILLED_STEPS = (8, 3)


def make_job(tiny, pipeline: str, **overrides) -> Job:
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
    return Job(
        PROMPT,
        GenerationSettings.for_pipeline(pipeline, **values),
        Path("unused.mp4"),
        images=images,
        distilled_lora=LoraInput(str(tiny.distilled_lora)),
        upsampler=str(tiny.upsampler),
        text_encoder=str(tiny.text_encoder),
    )


@pytest.mark.parametrize("pipeline", ["distilled", "two-stage"])
def test_text_encoder_is_gone_before_the_transformer_loads(pipeline, tiny_models):
    events: list[Event] = []
    result = run_job(make_job(tiny_models, pipeline), events.append)

    order = [(e.kind, e.name) for e in events if e.kind in ("load", "free")]
    assert order.index(("free", "text_encoder")) < order.index(("load", "transformer"))
    loaded = [name for kind, name in order if kind == "load"]
    assert sorted(loaded) == sorted(name for kind, name in order if kind == "free")
    # The distilled pipeline keeps one transformer for both stages; two-stage builds two.
    assert loaded.count("transformer") == (1 if pipeline == "distilled" else 2)
    totals = [e.total for e in events if e.kind == "step"]
    stage1 = DISTILLED_STEPS[0] if pipeline == "distilled" else STEPS
    assert totals == [stage1] * stage1 + [DISTILLED_STEPS[1]] * DISTILLED_STEPS[1]
    assert result.video.shape == (FRAMES, 3, HEIGHT, WIDTH)
    assert result.audio is not None and result.audio.waveform.shape[0] == 2


def test_no_audio_runs_the_video_only_path(tiny_models):
    result = run_job(make_job(tiny_models, "two-stage", audio=False))
    assert result.audio is None
    assert set(result.latents) == {"video", "stage1_video"}


def test_same_seed_gives_the_same_frames_and_another_seed_does_not(tiny_models):
    def frames(seed: int) -> np.ndarray:
        video = run_job(make_job(tiny_models, "distilled", audio=False, seed=seed)).video
        return ((video + 1) * 127.5).round().to(torch.uint8).numpy()

    first, again, other = frames(SEED), frames(SEED), frames(SEED + 1)
    assert first.tobytes() == again.tobytes()
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
    result = run_job(make_job(tiny_models, "two-stage", audio=False, images=(image,)))

    encoder = load_component(tiny_models.checkpoint, "video_encoder", dtype=torch.float32)
    for key, (h, w) in (("stage1_video", (HEIGHT // 2, WIDTH // 2)), ("video", (HEIGHT, WIDTH))):
        pixels = prepare_conditioning_image(picture, h, w, crf=0)[None, :, None]
        with torch.inference_mode():
            expected = encoder(pixels)[:, :, 0]
        torch.testing.assert_close(result.latents[key][:, :, 0], expected, rtol=0, atol=1e-6)
        # The generated frames are not the image.
        assert (result.latents[key][:, :, 1] - expected).abs().max() > 0.1


def test_fp8_cast_stores_the_block_linears_in_one_byte_and_still_generates(tiny_models):
    from safetensors import safe_open

    from ltx2cli.pipelines.files import resolve_files
    from ltx2cli.pipelines.plan import component_bytes
    from ltx2cli.pipelines.runtime import make_runtime

    job = make_job(tiny_models, "distilled", audio=False, quantization="fp8-cast")
    files = resolve_files(job)
    plain = component_bytes(files, make_runtime(make_job(tiny_models, "distilled").settings))
    cast = component_bytes(files, make_runtime(job.settings))
    # Independently: every q/k/v/out/ff weight and bias of the blocks goes from 4 bytes to 1.
    suffixes = (".to_q", ".to_k", ".to_v", ".to_out.0", "ff.net.0.proj", "ff.net.2")
    with safe_open(str(tiny_models.checkpoint), "pt") as f:
        names = f.keys()
        linear = sum(
            int(np.prod(f.get_slice(k).get_shape()))
            for k in names
            if k.startswith("model.diffusion_model.transformer_blocks.")
            and k.rsplit(".", 1)[0].endswith(suffixes)
        )
    assert plain["transformer"] - cast["transformer"] == 3 * linear

    video = run_job(job).video
    assert torch.isfinite(video).all() and video.shape == (FRAMES, 3, HEIGHT, WIDTH)
