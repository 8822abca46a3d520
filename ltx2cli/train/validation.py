"""Validation sampling during training (trainer.md §9) through the inference pipelines.

Each validation sample becomes a `generate` job: the `one-stage` pipeline (guided Euler at the
full size, no upsampler, as the reference's validation runs), or `t2a` when
`generate_video: false`. The transformer those jobs see is the one being trained, LoRA
included, in memory: `_TrainingLedger` hands it to the pipeline instead of loading the
checkpoint's, so nothing goes through a file. The other components (Gemma, connectors, VAEs,
vocoder) load from the checkpoint for each round and are freed as the pipeline frees them.

Outputs: `samples/step_{step:06d}_{i}.mp4` (i from 1; with the audio when `generate_audio`),
or `.wav` for audio-only samples, each with the pipelines' JSON sidecar.

Supported sample conditions: none and `first_frame` with an image. Every other condition
type needs a pipeline mode this build's validation does not drive; such configs are refused
before anything loads (`check_validation`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltx2cli.errors import ConfigError, Ltx2Error
from ltx2cli.train.config import TrainConfig, ValidationSample

log = logging.getLogger(__name__)

SAMPLES = "samples"
SUPPORTED_CONDITIONS = ("first_frame",)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def enabled(config: TrainConfig) -> bool:
    return config.validation.interval is not None and bool(config.validation.samples)


def sample_path(run_dir: Path, step: int, index: int, audio_only: bool) -> Path:
    """The reference's name for sample `index` (from 1) of `step`."""
    suffix = ".wav" if audio_only else ".mp4"
    return run_dir / SAMPLES / f"step_{step:06d}_{index}{suffix}"


def check_validation(config: TrainConfig, checkpoint: Path, source: str = "") -> list[Any]:
    """The jobs of every validation sample (nothing loaded); one-line `ConfigError`s for what
    cannot be sampled: no text encoder, an unsupported condition, a missing image, a size the
    pipeline refuses."""
    where = f"{source}: " if source else ""
    if not enabled(config):
        return []
    if not config.model.text_encoder_path:
        raise ConfigError(
            f"{where}validation needs model.text_encoder_path (the Gemma folder)",
            "set it, or turn validation off with --set validation.interval=null",
        )
    jobs = []
    for i, sample in enumerate(config.validation.samples):
        for j, condition in enumerate(sample.conditions):
            key = f"validation.samples[{i}].conditions[{j}]"
            if condition.type not in SUPPORTED_CONDITIONS:
                raise ConfigError(
                    f"{where}{key}: validation sampling with a {condition.type} condition is not "
                    "supported by ltx2 train (supported: none, first_frame with an image)",
                    "remove that sample or turn validation off with --set validation.interval=null",
                )
            image = Path(condition.image_or_video).expanduser()
            if image.suffix.lower() not in _IMAGE_SUFFIXES or not image.is_file():
                raise ConfigError(
                    f"{where}{key}.image_or_video: no image file at {image}",
                    "point it at a .png or .jpg file",
                )
        try:
            jobs.append(_job(config, checkpoint, sample, Path(), dtype_name="float32"))
        except Ltx2Error as exc:
            raise ConfigError(
                f"{where}validation.samples[{i}]: {exc.message}",
                "fix validation.video_dims (width and height multiples of 32, 8k+1 frames)",
            ) from None
    return jobs


def _job(config: TrainConfig, checkpoint: Path, sample: ValidationSample, output: Path, *,
         dtype_name: str, device: str = "cpu"):  # fmt: skip
    """The generation job of one validation sample."""
    from ltx2cli.config.generation import GenerationSettings
    from ltx2cli.pipelines.job import ImageInput, Job
    from ltx2cli.pipelines.t2a import AudioJob

    v = config.validation
    width, height, frames = sample.video_dims or v.video_dims
    video, audio = v.generate_video, v.generate_audio
    blocks = tuple(v.stg_blocks) if v.stg_blocks is not None else ()
    pipeline = "one-stage" if video else "t2a"
    settings = GenerationSettings.for_pipeline(
        pipeline,
        model=str(checkpoint),
        height=height,
        width=width,
        num_frames=frames,
        frame_rate=v.frame_rate,
        steps=v.inference_steps,
        seed=v.seed if sample.seed is None else sample.seed,
        negative_prompt=v.negative_prompt,
        video_cfg_scale=v.video_cfg_scale,
        video_stg_scale=v.video_stg_scale,
        video_stg_blocks=blocks,
        video_rescale_scale=v.guidance_rescale,
        # Without audio there is no other modality to guide towards (the reference sets 1).
        video_modality_scale=v.video_modality_guidance_scale if audio else 1.0,
        audio_cfg_scale=v.audio_cfg_scale,
        audio_stg_scale=v.audio_stg_scale,
        audio_stg_blocks=blocks,
        audio_rescale_scale=v.guidance_rescale,
        audio_modality_scale=v.audio_modality_guidance_scale if video else 1.0,
        audio=audio,
        # The reference encodes validation images without the H.264 round trip.
        image_crf=0,
        device=device,
        dtype=dtype_name,
    )
    common = {
        "prompt": sample.prompt,
        "settings": settings,
        "output": output,
        "text_encoder": config.model.text_encoder_path,
    }
    if not video:
        return AudioJob(**common, duration=frames / v.frame_rate)
    images = tuple(
        ImageInput(Path(c.image_or_video).expanduser(), 0, 1.0, 0)
        for c in sample.conditions
        if c.type == "first_frame"
    )
    return Job(**common, images=images)


def _training_ledger(files, runtime, compat, transformer):
    """The pipelines' ledger with `transformer` (the model being trained) in place of the
    checkpoint's transformer."""
    from ltx2cli.pipelines.ledger import ModelLedger

    class TrainingLedger(ModelLedger):
        def _build(self, component, loras, device):  # type: ignore[no-untyped-def]
            if component == "transformer":
                return transformer
            return super()._build(component, loras, device)

    return TrainingLedger(files, runtime, compat)


@dataclass
class Validator:
    """Samples the validation prompts with the current weights of `transformer`."""

    config: TrainConfig
    checkpoint: Path
    run_dir: Path
    dtype_name: str
    device: str

    def run(self, step: int, transformer) -> list[Path]:  # type: ignore[no-untyped-def]
        """Write every sample of `step`; the model is put in eval mode meanwhile."""
        from ltx2cli.pipelines.files import resolve_files
        from ltx2cli.pipelines.run import compat_of, run_job, save_result
        from ltx2cli.pipelines.runtime import make_runtime

        was_training = transformer.training
        transformer.eval()
        written = []
        try:
            for i, sample in enumerate(self.config.validation.samples, start=1):
                audio_only = not self.config.validation.generate_video
                path = sample_path(self.run_dir, step, i, audio_only)
                job = _job(
                    self.config, self.checkpoint, sample, path,
                    dtype_name=self.dtype_name, device=self.device,
                )  # fmt: skip
                files = resolve_files(job)
                runtime = make_runtime(job.settings)
                ledger = _training_ledger(files, runtime, compat_of(job), transformer)
                try:
                    result = run_job(job, files=files, runtime=runtime, ledger=ledger)
                finally:
                    ledger.close()
                path.parent.mkdir(parents=True, exist_ok=True)
                written.append(save_result(job, files, result, path))
                log.info("validation sample %s", path)
        finally:
            transformer.train(was_training)
        return written
