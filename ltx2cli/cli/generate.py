"""`ltx2 generate`: text (and images) → video with audio. Parse → validate → resolve → run → report.

Settings flags are the `GenerationSettings` fields (`--num-frames` = `num_frames`), resolved
with presets and `LTX2_*` variables by `config.resolve`; everything else (images, LoRAs, the
model roles, output) belongs to the job. Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ltx2cli.cli.options import examples
from ltx2cli.cli.output import out
from ltx2cli.errors import UsageError

EXAMPLES = examples(
    'ltx2 generate "a fox runs through snow" --model demo',
    'ltx2 generate "a fox wakes up" --image fox.png@0 -o fox.mp4',
    'ltx2 generate "waves at dusk" --pipeline distilled --no-audio',
    "ltx2 generate --from-metadata fox.mp4 --seed 11 -o fox2.mp4",
)

_S = "Settings"
_G = "Guidance"
_M = "Models"
_R = "Run"


def _opt(*names: str, help: str, panel: str = _S, **kw: Any) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel, **kw)


_Prompt = Annotated[str | None, typer.Argument(help="What the video shows and sounds like.")]
_Output = Annotated[
    Path | None, _opt("-o", "--output", help="Output .mp4 (default: from the prompt).", panel=_R)
]
_Overwrite = Annotated[bool, _opt("--overwrite", help="Replace an existing output.", panel=_R)]
_Preset = Annotated[str | None, _opt("--preset", help="A preset name or YAML file.")]
_Pipeline = Annotated[
    str | None, _opt("--pipeline", help="two-stage | two-stage-hq | one-stage | distilled.")
]
_Model = Annotated[str | None, _opt("-m", "--model", help="Catalog name, path, or demo.", panel=_M)]
_Height = Annotated[int | None, _opt("--height", help="Pixel height.")]
_Width = Annotated[int | None, _opt("--width", help="Pixel width.")]
_NumFrames = Annotated[int | None, _opt("--num-frames", help="Frames, 8k+1.")]
_FrameRate = Annotated[float | None, _opt("--frame-rate", help="Frames per second.")]
_Steps = Annotated[int | None, _opt("--steps", help="Stage-1 sampling steps.")]
_Seed = Annotated[int | None, _opt("-s", "--seed", help="Random seed.")]
_NegativePrompt = Annotated[str | None, _opt("--negative-prompt", help="What to avoid.")]
_VideoCfgScale = Annotated[
    float | None, _opt("--video-cfg-scale", help="Video text CFG (1 = off).", panel=_G)
]
_VideoStgScale = Annotated[
    float | None, _opt("--video-stg-scale", help="Video STG (0 = off).", panel=_G)
]
_VideoStgBlocks = Annotated[
    str | None, _opt("--video-stg-blocks", help="Blocks, e.g. 28 or 28,29.", panel=_G)
]
_VideoRescaleScale = Annotated[float | None, _opt("--video-rescale-scale", help="0..1.", panel=_G)]
_VideoModalityScale = Annotated[
    float | None, _opt("--video-modality-scale", help="Audio→video (1 = off).", panel=_G)
]
_VideoSkipStep = Annotated[
    int | None, _opt("--video-skip-step", help="Reuse x0 N steps.", panel=_G)
]
_AudioCfgScale = Annotated[
    float | None, _opt("--audio-cfg-scale", help="Audio text CFG.", panel=_G)
]
_AudioStgScale = Annotated[float | None, _opt("--audio-stg-scale", help="Audio STG.", panel=_G)]
_AudioStgBlocks = Annotated[str | None, _opt("--audio-stg-blocks", help="Blocks.", panel=_G)]
_AudioRescaleScale = Annotated[float | None, _opt("--audio-rescale-scale", help="0..1.", panel=_G)]
_AudioModalityScale = Annotated[
    float | None, _opt("--audio-modality-scale", help="Video→audio.", panel=_G)
]
_AudioSkipStep = Annotated[
    int | None, _opt("--audio-skip-step", help="Reuse x0 N steps.", panel=_G)
]
_NoAudio = Annotated[bool, _opt("--no-audio", help="Video only.")]
_EnhancePrompt = Annotated[bool, _opt("--enhance-prompt", help="Let Gemma rewrite the prompt.")]
_Image = Annotated[
    list[str] | None, _opt("--image", help="PATH[@FRAME[:STRENGTH[:CRF]]], repeatable.")
]
_ImageCrf = Annotated[int | None, _opt("--image-crf", help="Default image CRF (0 = none).")]
_Lora = Annotated[
    list[str] | None, _opt("--lora", help="NAME_OR_PATH[:STRENGTH], repeatable.", panel=_M)
]
_DistilledLora = Annotated[
    str | None, _opt("--distilled-lora", help="NAME_OR_PATH[:STRENGTH].", panel=_M)
]
_Upsampler = Annotated[str | None, _opt("--upsampler", help="Spatial upsampler.", panel=_M)]
_TextEncoder = Annotated[
    str | None, _opt("--text-encoder", help="Gemma 3 name or folder.", panel=_M)
]
_Quantization = Annotated[
    str | None, _opt("--quantization", help="none | fp8-cast | fp8-scaled-mm.", panel=_R)
]
_Offload = Annotated[str | None, _opt("--offload", help="none | model.", panel=_R)]
_Device = Annotated[str | None, _opt("--device", help="auto | cpu | cuda[:N] | mps.", panel=_R)]
_Dtype = Annotated[str | None, _opt("--dtype", help="bfloat16 | float16 | float32.", panel=_R)]
_Compile = Annotated[
    bool, _opt("--compile", help="torch.compile the transformer blocks.", panel=_R)
]
_FromMetadata = Annotated[
    Path | None, _opt("--from-metadata", help="Replay an output's .mp4 or .json.", panel=_R)
]
_Json = Annotated[bool, _opt("--json", help="One JSON object per result on stdout.", panel=_R)]
_Quiet = Annotated[bool, _opt("-q", "--quiet", help="Only errors on stderr.", panel=_R)]


def generate(
    prompt: _Prompt = None,
    output: _Output = None,
    overwrite: _Overwrite = False,
    preset: _Preset = None,
    pipeline: _Pipeline = None,
    model: _Model = None,
    height: _Height = None,
    width: _Width = None,
    num_frames: _NumFrames = None,
    frame_rate: _FrameRate = None,
    steps: _Steps = None,
    seed: _Seed = None,
    negative_prompt: _NegativePrompt = None,
    video_cfg_scale: _VideoCfgScale = None,
    video_stg_scale: _VideoStgScale = None,
    video_stg_blocks: _VideoStgBlocks = None,
    video_rescale_scale: _VideoRescaleScale = None,
    video_modality_scale: _VideoModalityScale = None,
    video_skip_step: _VideoSkipStep = None,
    audio_cfg_scale: _AudioCfgScale = None,
    audio_stg_scale: _AudioStgScale = None,
    audio_stg_blocks: _AudioStgBlocks = None,
    audio_rescale_scale: _AudioRescaleScale = None,
    audio_modality_scale: _AudioModalityScale = None,
    audio_skip_step: _AudioSkipStep = None,
    no_audio: _NoAudio = False,
    enhance_prompt: _EnhancePrompt = False,
    image: _Image = None,
    image_crf: _ImageCrf = None,
    lora: _Lora = None,
    distilled_lora: _DistilledLora = None,
    upsampler: _Upsampler = None,
    text_encoder: _TextEncoder = None,
    quantization: _Quantization = None,
    offload: _Offload = None,
    device: _Device = None,
    dtype: _Dtype = None,
    compile: _Compile = False,
    from_metadata: _FromMetadata = None,
    json: _Json = False,
    quiet: _Quiet = False,
) -> None:
    """Generate a video with synchronized audio from a prompt (and images)."""
    from ltx2cli.pipelines.job import ImageInput, Job, LoraInput

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
    replay: dict[str, Any] = {}
    if from_metadata is not None:
        from ltx2cli.pipelines.run import read_metadata

        replay = read_metadata(from_metadata)
    prompt = prompt if prompt is not None else replay.get("prompt")
    if not prompt:
        raise UsageError("no prompt given", 'pass one: ltx2 generate "a fox runs through snow"')
    resolved = _resolve(preset, flags, replay.get("settings"))
    images = tuple(ImageInput.parse(s) for s in image or replay.get("images", []))
    loras = tuple(LoraInput.parse(s) for s in lora or _lora_specs(replay.get("loras", [])))
    distilled = distilled_lora or next(iter(_lora_specs([replay.get("distilled_lora")])), None)
    job = Job(
        prompt=prompt,
        settings=resolved.settings,
        output=output or _default_output(prompt),
        sources=resolved.sources,
        images=images,
        loras=loras,
        distilled_lora=LoraInput.parse(distilled) if distilled else None,
        upsampler=upsampler or replay.get("upsampler"),
        text_encoder=text_encoder or replay.get("text_encoder"),
    )
    _run(job, overwrite=overwrite, compile=compile)


def _blocks(text: str | None, modality: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise UsageError(
            f"--{modality}-stg-blocks {text!r} is not a list of block numbers", "write e.g. 28,29"
        ) from None


def _lora_specs(items: list[Any]) -> list[str]:
    return [f"{item['name']}:{item['strength']}" for item in items if item]


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
    words = "".join(c if c.isalnum() else " " for c in prompt.lower()).split()
    stem = "-".join(words[:6])[:48].strip("-") or "ltx2"
    candidate, n = Path(f"{stem}.mp4"), 2
    while candidate.exists():
        candidate, n = Path(f"{stem}-{n}.mp4"), n + 1
    return candidate


def _run(job: Any, *, overwrite: bool, compile: bool) -> None:
    from ltx2cli.pipelines.demo import DEMO_NOTICE
    from ltx2cli.pipelines.files import resolve_files
    from ltx2cli.pipelines.run import generate as run_generate
    from ltx2cli.pipelines.runtime import make_runtime
    from ltx2cli.pipelines.validate import check_against_model, check_images, check_output

    check_output(job.output, overwrite)
    check_images(job)
    files = resolve_files(job)
    check_against_model(job, files)
    runtime = make_runtime(job.settings, compile=compile)
    if files.demo:
        out.warn(DEMO_NOTICE)
    with out.progress() as bar:
        path, result = run_generate(job, _Reporter(bar), files=files, runtime=runtime)
    record = {
        "path": str(path),
        "sidecar": str(path.with_suffix(".json")),
        "seed": job.settings.seed,
        "pipeline": job.settings.pipeline,
        "frames": int(result.video.shape[0]),
        "seconds": round(sum(result.timings.values()), 2),
        "enhanced_prompt": result.enhanced_prompt,
    }
    if files.demo:
        record["note"] = DEMO_NOTICE
    if result.enhanced_prompt:
        out.info(f"enhanced prompt: {result.enhanced_prompt}")
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
