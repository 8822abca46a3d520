"""`ltx2 generate`: text (and images) → video with audio. Parse → validate → resolve → run → report.

Settings flags are the `GenerationSettings` fields (`--num-frames` = `num_frames`), resolved
with presets and `LTX2_*` variables by `config.resolve`; everything else (images, LoRAs, the
model roles, output) belongs to the job. Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import math
import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import typer

from ltx2cli.cli import generate_options as o
from ltx2cli.cli.options import examples
from ltx2cli.cli.output import out
from ltx2cli.errors import UsageError

EXAMPLES = examples(
    'ltx2 generate "a fox runs through snow" --model demo',
    'ltx2 generate "a fox wakes up" --image fox.png@0 -o fox.mp4',
    "ltx2 generate --from-metadata fox.mp4 --seed 11 -o fox2.mp4",
    'ltx2 generate "rain on a tin roof" --audio-only --duration 8 -o rain.wav',
)


def generate(
    prompt: o.Prompt = None,
    output: o.Output = None,
    overwrite: o.Overwrite = False,
    preset: o.Preset = None,
    pipeline: o.Pipeline = None,
    model: o.Model = None,
    height: o.Height = None,
    width: o.Width = None,
    num_frames: o.NumFrames = None,
    frame_rate: o.FrameRate = None,
    steps: o.Steps = None,
    seed: o.Seed = None,
    negative_prompt: o.NegativePrompt = None,
    video_cfg_scale: o.VideoCfgScale = None,
    video_stg_scale: o.VideoStgScale = None,
    video_stg_blocks: o.VideoStgBlocks = None,
    video_rescale_scale: o.VideoRescaleScale = None,
    video_modality_scale: o.VideoModalityScale = None,
    video_skip_step: o.VideoSkipStep = None,
    audio_cfg_scale: o.AudioCfgScale = None,
    audio_stg_scale: o.AudioStgScale = None,
    audio_stg_blocks: o.AudioStgBlocks = None,
    audio_rescale_scale: o.AudioRescaleScale = None,
    audio_modality_scale: o.AudioModalityScale = None,
    audio_skip_step: o.AudioSkipStep = None,
    no_audio: o.NoAudio = False,
    audio_only: o.AudioOnly = False,
    duration: o.Duration = None,
    reference_video: o.ReferenceVideo = None,
    reference_mask: o.ReferenceMask = None,
    skip_stage_2: o.SkipStage2 = False,
    enhance_prompt: o.EnhancePrompt = False,
    image: o.Image = None,
    image_crf: o.ImageCrf = None,
    lora: o.Lora = None,
    distilled_lora: o.DistilledLora = None,
    upsampler: o.Upsampler = None,
    text_encoder: o.TextEncoder = None,
    quantization: o.Quantization = None,
    offload: o.Offload = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    compile: o.Compile = False,
    from_metadata: o.FromMetadata = None,
    dry_run: o.DryRun = False,
    prompts_file: o.PromptsFile = None,
    skip_existing: o.SkipExisting = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Generate a video with synchronized audio from a prompt (and images)."""
    out.configure(json=json, quiet=quiet)
    flags = {
        "pipeline": pipeline, "model": model, "height": height, "width": width,
        "num_frames": num_frames, "frame_rate": frame_rate, "steps": steps, "seed": seed,
        "negative_prompt": negative_prompt, "video_cfg_scale": video_cfg_scale,
        "video_stg_scale": video_stg_scale, "video_stg_blocks": _blocks(video_stg_blocks, "video"),
        "video_rescale_scale": video_rescale_scale, "video_modality_scale": video_modality_scale,
        "video_skip_step": video_skip_step, "audio_cfg_scale": audio_cfg_scale,
        "audio_stg_scale": audio_stg_scale, "audio_stg_blocks": _blocks(audio_stg_blocks, "audio"),
        "audio_rescale_scale": audio_rescale_scale, "audio_modality_scale": audio_modality_scale,
        "audio_skip_step": audio_skip_step, "audio": False if no_audio else None,
        "enhance_prompt": True if enhance_prompt else None, "image_crf": image_crf,
        "quantization": quantization, "offload": offload, "device": device, "dtype": dtype,
    }  # fmt: skip
    cli = {
        "images": image, "loras": lora, "distilled_lora": distilled_lora,
        "upsampler": upsampler, "text_encoder": text_encoder,
    }  # fmt: skip
    if audio_only or duration is not None:
        flags["pipeline"] = _audio_only(audio_only, duration, flags, image)
    # An editing mode turns each job into its own kind (audio only, IC-LoRA).
    convert = _AudioOnly(duration) if audio_only else None
    if reference_video is not None or reference_mask is not None or skip_stage_2:
        if convert is not None:
            raise UsageError("--audio-only makes no video to guide", "drop --reference-video")
        convert = _Reference(reference_video, reference_mask, skip_stage_2, flags["pipeline"])
        flags["pipeline"] = "ic-lora"
    editing = convert is not None
    if editing and dry_run:  # the plan models the video pipelines' stages only
        raise UsageError(
            "--dry-run plans text/image-to-video runs only", "drop --dry-run for this mode"
        )
    run = _Runner(overwrite=overwrite, compile=compile, dry_run=dry_run, editing=editing)
    try:
        if prompts_file is not None:
            if prompt is not None or from_metadata is not None:
                raise UsageError(
                    "--prompts-file takes its prompts from the file",
                    "drop the PROMPT argument and --from-metadata",
                )
            _batch(run, prompts_file, preset, flags, cli, output, skip_existing, convert)
            return
        replay = _replay(from_metadata) if from_metadata is not None else {}
        job = _job(prompt, preset, flags, cli, replay=replay)
        job = job if output is None else replace(job, output=output)
        run(job if convert is None else convert(job, default_output=output is None))
    finally:
        run.close()


def _audio_only(audio_only: bool, duration: float | None, flags: dict, images) -> str:
    """The `t2a` pipeline for `--audio-only --duration S`, checked before anything loads."""
    if not audio_only:
        raise UsageError("--duration sets the length of --audio-only output", "add --audio-only")
    if duration is None:
        raise UsageError("--audio-only needs --duration SECONDS", "e.g. --duration 8")
    if not (math.isfinite(duration) and duration > 0):
        raise UsageError(f"--duration {duration:g} is not a positive number of seconds", "e.g. 8")
    if flags["audio"] is False:
        raise UsageError("--audio-only and --no-audio leave nothing to generate", "drop one")
    if images:
        raise UsageError("--image conditions the video, which --audio-only leaves out", "drop it")
    if flags["pipeline"] not in (None, "t2a"):
        raise UsageError(
            f"--audio-only runs the t2a pipeline, not {flags['pipeline']}", "drop --pipeline"
        )
    return "t2a"


class _AudioOnly:
    """Turns a generate job into an audio-only job of `duration` seconds (a .wav by default)."""

    def __init__(self, duration: float) -> None:
        self.duration = duration

    def __call__(self, job: Any, default_output: bool) -> Any:
        """`default_output`: the job's output name is ltx2's own, so it becomes a .wav."""
        from ltx2cli.pipelines.t2a import AudioJob

        base = {f.name: getattr(job, f.name) for f in fields(job)}
        output = job.output.with_suffix(".wav") if default_output else job.output
        return AudioJob(**{**base, "output": output}, duration=self.duration)


class _Reference:
    """Turns a generate job into an IC-LoRA video-to-video job (`--reference-video`)."""

    def __init__(self, video: str | None, mask: str | None, skip: bool, pipeline: str | None):
        from ltx2cli.pipelines.ic_lora import parse_spec

        if video is None:
            raise UsageError(
                "--reference-mask and --skip-stage-2 belong to IC-LoRA runs",
                "add --reference-video PATH[:STRENGTH] and the IC-LoRA with --lora",
            )
        if pipeline not in (None, "ic-lora"):
            raise UsageError(
                f"--reference-video runs the ic-lora pipeline, not {pipeline}", "drop --pipeline"
            )
        self.video = parse_spec(video, "--reference-video")
        self.mask = parse_spec(mask, "--reference-mask") if mask is not None else (None, 1.0)
        self.skip = skip

    def __call__(self, job: Any, default_output: bool) -> Any:
        from ltx2cli.pipelines.ic_lora import ICLoraJob

        base = {f.name: getattr(job, f.name) for f in fields(job)}
        return ICLoraJob(
            **base,
            reference=self.video[0],
            reference_strength=self.video[1],
            mask=self.mask[0],
            mask_strength=self.mask[1],
            skip_stage_2=self.skip,
        )


def _blocks(text: str | None, modality: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise UsageError(
            f"--{modality}-stg-blocks {text!r} is not a list of block numbers", "write e.g. 28,29"
        ) from None


def _replay(path: Path) -> dict[str, Any]:
    """An output's metadata in the shape of a batch item (job fields) plus its settings."""
    from ltx2cli.pipelines.run import read_metadata

    meta = read_metadata(path)

    def spec(item: dict[str, Any] | None) -> str | None:
        return f"{item['name']}:{item['strength']}" if item else None

    return {
        "prompt": meta.get("prompt"),
        "settings": meta.get("settings") or {},
        "images": meta.get("images") or [],
        "loras": [spec(item) for item in meta.get("loras") or []],
        "distilled_lora": spec(meta.get("distilled_lora")),
        "upsampler": meta.get("upsampler"),
        "text_encoder": meta.get("text_encoder"),
    }


def _job(
    prompt: str | None,
    preset: str | None,
    flags: dict[str, Any],
    cli: dict[str, Any],
    *,
    replay: dict[str, Any] | None = None,
    item: dict[str, Any] | None = None,
) -> Any:
    """One job: a batch item wins over the command line, which wins over a replayed output."""
    from ltx2cli.pipelines.batch import JOB_KEYS
    from ltx2cli.pipelines.job import ImageInput, Job, LoraInput

    replay, item = replay or {}, item or {}
    prompt = item.get("prompt") or prompt or replay.get("prompt")
    if not prompt:
        raise UsageError("no prompt given", 'pass one: ltx2 generate "a fox runs through snow"')
    item_settings = {k: v for k, v in item.items() if k not in JOB_KEYS}
    resolved = _resolve(preset, {**flags, **item_settings}, replay.get("settings"))

    def pick(key: str) -> Any:
        for layer in (item, cli, replay):
            if layer.get(key):
                return layer[key]
        return None

    distilled = pick("distilled_lora")
    return Job(
        prompt=prompt,
        settings=resolved.settings,
        output=Path(item["output"]) if item.get("output") else _default_output(prompt),
        sources=resolved.sources,
        images=tuple(ImageInput.parse(str(spec)) for spec in pick("images") or ()),
        loras=tuple(LoraInput.parse(str(spec)) for spec in pick("loras") or ()),
        distilled_lora=LoraInput.parse(distilled) if distilled else None,
        upsampler=pick("upsampler"),
        text_encoder=pick("text_encoder"),
    )


def _resolve(preset: str | None, flags: dict[str, Any], replayed: dict[str, Any] | None):
    from ltx2cli.config.generation import GenerationSettings
    from ltx2cli.config.resolve import resolve
    from ltx2cli.hub.resolve import is_demo

    overrides = {k: v for k, v in (replayed or {}).items() if v is not None}
    model = flags.get("model") or overrides.get("model") or os.environ.get("LTX2_MODEL")
    if preset is None and model is not None and is_demo(model):
        preset = "demo"  # the demo model's own small size, steps and STG block
    return resolve(
        GenerationSettings, preset=preset, environ=os.environ, flags=flags, overrides=overrides
    )


def _default_output(prompt: str) -> Path:
    """`a-fox-runs-through.mp4` in the current folder, numbered when taken."""
    from ltx2cli.pipelines.batch import slugify

    stem = slugify(prompt)
    candidate, n = Path(f"{stem}.mp4"), 2
    while candidate.exists():
        candidate, n = Path(f"{stem}-{n}.mp4"), n + 1
    return candidate


def _batch(
    run: _Runner,
    path: Path,
    preset: str | None,
    flags: dict[str, Any],
    cli: dict[str, Any],
    template: Path | None,
    skip_existing: bool,
    convert: _AudioOnly | _Reference | None = None,
) -> None:
    """Every item in turn; a failed item is reported and the batch goes on (exit 1 after);
    `convert` makes each item an editing job."""
    from ltx2cli.pipelines.batch import DEFAULT_TEMPLATE, output_for, read_items
    from ltx2cli.pipelines.distributed import gather, is_distributed, shard

    run.collect = is_distributed()  # the main process prints every process's results
    items = list(enumerate(read_items(path), 1))
    done, skipped, failed = 0, 0, []
    for index, item in shard(items):
        try:
            job = _job(None, preset, flags, cli, item=item)
            if not item.get("output"):
                name = str(template or DEFAULT_TEMPLATE)
                job = replace(job, output=output_for(name, index, job.prompt, job.settings.seed))
            if convert is not None:
                job = convert(job, default_output=not item.get("output") and template is None)
            if skip_existing and job.output.exists():
                skipped += 1
                out.info(f"item {index}: {job.output} exists, skipped")
                continue
            job.output.parent.mkdir(parents=True, exist_ok=True)
            run(job, index=index)
            done += 1
        except Exception as exc:  # one bad item must not stop the batch; Ctrl-C still does
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            failed.append({"index": index, "error": message})
            out.error(f"item {index}: {message}", getattr(exc, "hint", None))
    totals = gather({"done": done, "skipped": skipped, "failed": failed, "records": run.records})
    if totals is None:  # not the main process
        if failed:
            raise typer.Exit(1)
        return
    if run.collect:
        for record in sorted((r for t in totals for r in t["records"]), key=lambda r: r["index"]):
            out.result(record, text=record["path"])
    summary = {
        "done": sum(t["done"] for t in totals),
        "skipped": sum(t["skipped"] for t in totals),
        "failed": sorted((f for t in totals for f in t["failed"]), key=lambda f: f["index"]),
    }
    text = f"{summary['done']} done, {summary['skipped']} skipped, {len(summary['failed'])} failed"
    if out.json:
        out.result({"summary": summary})
    else:
        out.info(text)
    if summary["failed"]:
        raise typer.Exit(1)


class _Runner:
    """Validates and runs jobs, keeping one ledger per set of files and runtime (a batch's
    items share their models), and reports each result."""

    def __init__(
        self, *, overwrite: bool, compile: bool, dry_run: bool, editing: bool = False
    ) -> None:
        self.overwrite, self.compile, self.dry_run = overwrite, compile, dry_run
        self.editing = editing  # an editing command (retake, a2v...) runs its own pipeline
        self.ledgers: dict[Any, Any] = {}
        self.collect = False  # keep results in `records` instead of printing them
        self.records: list[dict[str, Any]] = []

    def close(self) -> None:
        for ledger in self.ledgers.values():
            ledger.close()
        self.ledgers.clear()

    def __call__(self, job: Any, index: int | None = None) -> None:
        from ltx2cli.pipelines.demo import DEMO_NOTICE
        from ltx2cli.pipelines.files import resolve_files
        from ltx2cli.pipelines.ledger import ModelLedger
        from ltx2cli.pipelines.plan import check_fits, describe, make_plan
        from ltx2cli.pipelines.run import check_pipeline, compat_of
        from ltx2cli.pipelines.run import generate as run_generate
        from ltx2cli.pipelines.runtime import make_runtime
        from ltx2cli.pipelines.validate import check_against_model, check_images, check_output

        if not self.editing:
            check_pipeline(job.settings.pipeline)
        check_output(job.output, self.overwrite, job.OUTPUT_SUFFIXES)
        check_images(job)
        files = resolve_files(job)
        check_against_model(job, files)
        job.check(files)
        runtime, compat = make_runtime(job.settings, compile=self.compile), compat_of(job)
        if self.dry_run:
            plan = make_plan(job, files, runtime, compat)
            out.result(plan.to_dict(), text=describe(plan))
            return
        check_fits(job, files, runtime, compat)
        if files.demo:
            out.warn(DEMO_NOTICE)
        key = (tuple(files.all_files().items()), runtime, compat.name)
        ledger = self.ledgers.setdefault(key, ModelLedger(files, runtime, compat))
        with out.progress() as bar:
            path, result = run_generate(
                job, _Reporter(bar), files=files, runtime=runtime, ledger=ledger
            )
        record = {
            "path": str(path),
            "sidecar": str(path.with_suffix(".json")),
            "seed": job.settings.seed,
            "pipeline": job.pipeline,
            "frames": 0 if result.video is None else int(result.video.shape[0]),
            "seconds": round(sum(result.timings.values()), 2),
            "enhanced_prompt": result.enhanced_prompt,
        }
        if index is not None:
            record["index"] = index
        if files.demo:
            record["note"] = DEMO_NOTICE
        if result.enhanced_prompt:
            out.info(f"enhanced prompt: {result.enhanced_prompt}")
        if self.collect:
            from ltx2cli.pipelines.distributed import process_index

            self.records.append({**record, "process": process_index()})
        else:
            out.result(record, text=str(path))


class _Reporter:
    """Draws pipeline events on stderr: stage lines, a step bar per stage, loads and frees."""

    def __init__(self, bar: Any) -> None:
        self.bar, self.task, self.stage = bar, None, ""

    def __call__(self, event: Any) -> None:
        if event.kind == "stage":
            self.stage, self.task = event.name, None
            out.info(f"• {event.name}")
        elif event.kind == "step":
            if self.task is None:
                self.task = self.bar.add_task(f"  {self.stage}", total=event.total)
            self.bar.update(self.task, completed=event.done, total=event.total)
            if not out.interactive and event.done == event.total:
                out.info(f"  {event.total} steps")
        elif event.kind == "load":
            mib, seconds = event.detail.get("bytes", 0) / 2**20, event.detail.get("seconds", 0)
            out.info(f"  loaded {event.name} ({mib:.1f} MiB, {seconds:.1f} s)")
        elif event.kind == "free":
            out.info(f"  freed {event.name}")
        elif event.kind == "note":
            out.info(event.detail.get("text", ""))
