"""Running a job: resolve its files, set up the run, call its pipeline, write the outputs.

- `Context` is what every pipeline file receives: the job, its files, the ledger, the compat
  record, the run's one `torch.Generator` (seeded once; every noise draw of every stage comes
  from it, video before audio), the reporter and the stage timings.
- `run_job` returns a `Result` (pixels, waveform, latents after each stage, timings);
  `save_result` writes the mp4 (H.264 yuv420p CRF 19, AAC stereo at the vocoder's rate; video
  only without audio) to a temporary file and renames it, with the settings embedded in the
  container's `comment` tag, then the JSON sidecar beside it.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import platform
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ltx2cli import __version__
from ltx2cli.compat import Compat, get_compat
from ltx2cli.diffusion.conditioning import ConditioningItem
from ltx2cli.diffusion.schedules import DISTILLED_SIGMAS_STAGE_2, distilled_sigmas
from ltx2cli.diffusion.state import AV
from ltx2cli.media.audio import Audio
from ltx2cli.pipelines import stages
from ltx2cli.pipelines.events import Event, Reporter, silent
from ltx2cli.pipelines.files import ModelFiles, fingerprint, resolve_files
from ltx2cli.pipelines.job import Job
from ltx2cli.pipelines.ledger import ModelLedger
from ltx2cli.pipelines.runtime import Runtime, make_runtime
from ltx2cli.pipelines.stages import DenoiserFactory, Grids, Prompts, Timings

METADATA_FORMAT = "ltx2-generate/1"
#: Stage 2 starts at its first sigma: x = 0.909375·noise + 0.090625·upsampled latent.
STAGE_2_NOISE_SCALE = DISTILLED_SIGMAS_STAGE_2[0]
OUTPUT_CRF = 19


@dataclass
class Context:
    job: Job
    files: ModelFiles
    ledger: ModelLedger
    compat: Compat
    generator: torch.Generator
    report: Reporter = silent
    timings: Timings = field(default_factory=lambda: Timings({}))

    @property
    def settings(self):
        return self.job.settings

    # -- the steps every pipeline file composes --------------------------------------------
    def prompts(self, negative: bool = True, enhance_seed: int | None = None) -> Prompts:
        """The prompt (and the negative prompt) encoded; enhancement seeded with the user's
        seed unless the pipeline says otherwise."""
        s = self.settings
        with self.timings.stage("prompt", self.report):
            return stages.encode_prompts(
                self.ledger,
                self.job.prompt,
                s.negative_prompt if negative else None,
                audio=s.audio,
                enhance=s.enhance_prompt,
                enhance_seed=s.seed if enhance_seed is None else enhance_seed,
                image=self.job.images[0] if self.job.images else None,
            )

    def images(self, divisor: int = 1, *, guiding: bool = False) -> list:
        """The `--image` conditioning items at 1/`divisor` of the output size (`guiding`:
        every image an appended keyframe guide, frame 0 too)."""
        s = self.settings
        height, width = s.height // divisor, s.width // divisor
        return stages.image_conditionings(
            self.ledger, self.job.images, height, width, s.image_crf, guiding=guiding
        )

    def refine(
        self,
        stage1: AV[torch.Tensor],
        full: Grids,
        make_denoiser: DenoiserFactory,
        loras: tuple,
        sampler: str = "euler",
        *,
        guiding: bool = False,
        audio_items: Sequence[ConditioningItem] = (),
    ) -> AV[torch.Tensor]:
        """The shared second stage: x2 upsampling, the images at full size (VAE encoder
        freed), then the distilled sigmas from 0.909375 over the upsampled latent. `guiding`
        as for `images`; `audio_items` condition the audio (a2v keeps it frozen)."""
        with self.timings.stage("upsample", self.report):
            upsampled = stages.upsample_video(self.ledger, stage1.video)
            items = self.images(guiding=guiding)
            self.ledger.free("video_encoder")
        with self.timings.stage("stage 2", self.report):
            states = stages.initial_states(
                full,
                items,
                self.generator,
                self.ledger,
                noise_scale=STAGE_2_NOISE_SCALE,
                initial=replace(stage1, video=upsampled),
                audio_items=audio_items,
            )
            states = stages.denoise(
                self.ledger,
                states,
                distilled_sigmas(2),
                make_denoiser,
                self.report,
                loras=loras,
                sampler=sampler,
            )
            return stages.final_latents(states, full)

    def decode(
        self, video_latent: torch.Tensor, audio_latent: torch.Tensor | None
    ) -> tuple[torch.Tensor, Audio | None]:
        """Pixels (tiled when large) and, with audio, the waveform."""
        with self.timings.stage("decode", self.report):
            video = stages.decode_video(self.ledger, video_latent, self.generator)
            audio = None
            if self.settings.audio and audio_latent is not None:
                audio = stages.decode_audio(self.ledger, audio_latent)
            return video, audio


@dataclass
class Result:
    video: torch.Tensor | None  # (F, 3, H, W) float in [-1, 1]; None: audio only
    audio: Audio | None
    fps: float
    latents: dict[str, torch.Tensor]  # "stage1_video", "stage1_audio", "video", "audio"
    enhanced_prompt: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    peak_memory: dict[str, int] = field(default_factory=dict)


#: The registry's pipelines that `ltx2 generate` runs (the others have commands of their own).
GENERATE_PIPELINES = ("two-stage", "two-stage-hq", "one-stage", "distilled")


def check_pipeline(pipeline: str) -> None:
    """A one-line error for a registered pipeline that `ltx2 generate` does not run."""
    from ltx2cli.errors import UsageError

    if pipeline not in GENERATE_PIPELINES:
        raise UsageError(
            f"--pipeline {pipeline} is not a text/image-to-video pipeline of `ltx2 generate`",
            f"use one of: {', '.join(GENERATE_PIPELINES)}",
        )


def pipeline_module(pipeline: str):
    """The module the registry names for `pipeline` (`ltx2 generate` checks its own choice
    with `check_pipeline`; editing commands run theirs)."""
    from ltx2cli.pipelines.registry import get_pipeline

    return importlib.import_module(get_pipeline(pipeline).module)


def compat_of(job: Job) -> Compat:
    return get_compat(job.settings.compat)


def run_job(
    job: Job,
    report: Reporter = silent,
    *,
    files: ModelFiles | None = None,
    runtime: Runtime | None = None,
    ledger: ModelLedger | None = None,
) -> Result:
    """Run `job` through its pipeline. A `ledger` passed in is reused (batch items keep models
    loaded across items that share them) and left open."""
    from ltx2cli.models.noise import make_generator

    files = files or resolve_files(job)
    runtime = runtime or make_runtime(job.settings)
    compat = compat_of(job)
    own = ledger is None
    ledger = ledger or ModelLedger(files, runtime, compat, report)
    ledger.report = report
    if runtime.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(runtime.device)
    context = Context(job, files, ledger, compat, make_generator(job.settings.seed), report)
    try:
        result = pipeline_module(job.pipeline).run(context)
    finally:
        if own:
            ledger.close()
    result.timings = dict(context.timings.seconds)
    result.device = str(runtime.device)
    result.peak_memory = peak_memory(runtime.device)
    return result


def peak_memory(device: torch.device) -> dict[str, int]:
    """Peak bytes: host (the process's max RSS) and, on CUDA, the device's allocator peak."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"host": rss if sys.platform == "darwin" else rss * 1024}
    if device.type == "cuda":
        out["device"] = int(torch.cuda.max_memory_allocated(device))
    return out


def metadata(job: Job, files: ModelFiles, result: Result) -> dict[str, Any]:
    """What the sidecar and the mp4 comment hold: enough to replay the run."""
    settings = dataclasses.asdict(job.settings)
    models = {
        role: {"name": files.names.get(role, str(p)), "path": str(p), "hash": fingerprint(p)}
        for role, p in files.all_files().items()
        if not role.startswith("lora:")
    }
    return {
        "format": METADATA_FORMAT,
        "prompt": job.prompt,
        "enhanced_prompt": result.enhanced_prompt,
        "seed": job.settings.seed,
        "settings": settings,
        "sources": dict(job.sources),
        "images": [image.to_spec() for image in job.images],
        "loras": [
            {"name": lora.name, "strength": lora.strength, "hash": fingerprint(lora.path)}
            for lora in files.loras
        ],
        "distilled_lora": None
        if files.distilled_lora is None
        else {"name": files.distilled_lora.name, "strength": files.distilled_lora.strength},
        "upsampler": job.upsampler,
        "text_encoder": job.text_encoder,
        "models": models,
        "demo": files.demo,
        "versions": {
            "ltx2": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "device": result.device,
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "peak_memory": result.peak_memory,
        **({"duration": job.seconds} if result.video is None else {}),
    }


def save_result(job: Job, files: ModelFiles, result: Result, path: Path | None = None) -> Path:
    """Write the mp4 (or, audio only, the audio file) atomically and its sidecar; return the
    output's path."""
    from ltx2cli.media.audio import write_audio
    from ltx2cli.media.sidecar import write_sidecar
    from ltx2cli.media.video import write_video

    target = Path(path or job.output)
    start = time.perf_counter()
    meta = metadata(job, files, result)
    if result.video is None:
        write_audio(target, result.audio)
    else:
        write_video(
            target,
            result.video,
            result.fps,
            audio=result.audio,
            crf=OUTPUT_CRF,
            comment=json.dumps(meta, separators=(",", ":"), default=str),
        )
    meta["timings"]["write"] = round(time.perf_counter() - start, 3)
    write_sidecar(target, meta)
    return target


def generate(job: Job, report: Reporter = silent, **kwargs: Any) -> tuple[Path, Result]:
    """Run `job` and write its outputs; returns the mp4's path and the result."""
    files = kwargs.pop("files", None) or resolve_files(job)
    result = run_job(job, report, files=files, **kwargs)
    report(Event("stage", "write"))
    return save_result(job, files, result), result


def read_metadata(path: Path) -> dict[str, Any]:
    """The run metadata of an output: its sidecar (`.json`), or the mp4's own comment tag,
    falling back to the sidecar beside it."""
    from ltx2cli.errors import UsageError
    from ltx2cli.media.sidecar import read_sidecar, sidecar_path
    from ltx2cli.media.video import probe_video

    path = Path(path)
    if path.suffix.lower() != ".json":
        comment = probe_video(path).comment
        if comment:
            try:
                data = json.loads(comment)
            except json.JSONDecodeError:
                data = None
            if isinstance(data, dict) and data.get("format") == METADATA_FORMAT:
                return data
        if not sidecar_path(path).is_file():
            raise UsageError(
                f"--from-metadata {path}: the video carries no ltx2 settings",
                "pass a video made by `ltx2 generate`, or its .json sidecar",
            )
    data = read_sidecar(path)
    if data.get("format") != METADATA_FORMAT:
        raise UsageError(f"--from-metadata {path}: not an ltx2 generate sidecar")
    return data
