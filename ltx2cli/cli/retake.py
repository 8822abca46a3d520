"""`ltx2 retake VIDEO PROMPT --start S --end E`: regenerate a time window of a clip.

Parse → validate the source and window (before any weight loads) → resolve the settings (the
source's frames, size and fps; the one-stage guided or the distilled defaults) → run the
`retake` pipeline through `generate`'s runner → report.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from ltx2cli.cli import generate_options as o
from ltx2cli.cli.options import examples
from ltx2cli.cli.output import out
from ltx2cli.errors import MediaError, UsageError

EXAMPLES = examples(
    'ltx2 retake clip.mp4 "the dog jumps over the fence" --start 1.0 --end 2.5',
    'ltx2 retake clip.mp4 "crowd cheering" --what audio --start 0 --end 2',
    'ltx2 retake clip.mp4 "footsteps on gravel" --what audio   # foley for the whole clip',
    'ltx2 retake phone.mov "a wave crashes" --start 2 --end 4 --fit trim --distilled',
)
EDIT = "Retake"

Source = Annotated[Path, typer.Argument(help="The video to retake (never overwritten).")]
RetakePrompt = Annotated[str, typer.Argument(help="What the regenerated window shows/sounds.")]
Start = Annotated[float | None, o.opt("--start", help="Window start, seconds.", panel=EDIT)]
End = Annotated[float | None, o.opt("--end", help="Window end, seconds.", panel=EDIT)]
What = Annotated[str, o.opt("--what", help="video | audio | both.", panel=EDIT)]
Fit = Annotated[
    str | None,
    o.opt("--fit", help="trim | pad | crop | resize a clip off the model's grid.", panel=EDIT),
]
Distilled = Annotated[
    bool, o.opt("--distilled", help="The distilled model: 8 steps, no guidance.", panel=EDIT)
]


def retake(
    source: Source,
    prompt: RetakePrompt,
    start: Start = None,
    end: End = None,
    what: What = "both",
    fit: Fit = None,
    distilled: Distilled = False,
    output: o.Output = None,
    overwrite: o.Overwrite = False,
    preset: o.Preset = None,
    model: o.Model = None,
    steps: o.Steps = None,
    seed: o.Seed = None,
    negative_prompt: o.NegativePrompt = None,
    video_cfg_scale: o.VideoCfgScale = None,
    video_stg_scale: o.VideoStgScale = None,
    video_stg_blocks: o.VideoStgBlocks = None,
    audio_cfg_scale: o.AudioCfgScale = None,
    audio_stg_scale: o.AudioStgScale = None,
    audio_stg_blocks: o.AudioStgBlocks = None,
    enhance_prompt: o.EnhancePrompt = False,
    lora: o.Lora = None,
    text_encoder: o.TextEncoder = None,
    quantization: o.Quantization = None,
    offload: o.Offload = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Regenerate a time window of a video (its video, audio or both); the rest is kept."""
    from ltx2cli.cli.generate import _blocks, _Runner

    out.configure(json=json, quiet=quiet)
    flags = {
        "model": model, "steps": steps, "seed": seed, "negative_prompt": negative_prompt,
        "video_cfg_scale": video_cfg_scale, "video_stg_scale": video_stg_scale,
        "video_stg_blocks": _blocks(video_stg_blocks, "video"),
        "audio_cfg_scale": audio_cfg_scale, "audio_stg_scale": audio_stg_scale,
        "audio_stg_blocks": _blocks(audio_stg_blocks, "audio"),
        "enhance_prompt": True if enhance_prompt else None, "quantization": quantization,
        "offload": offload, "device": device, "dtype": dtype,
    }  # fmt: skip
    job = retake_job(
        source, prompt, start, end, what, fit, distilled, preset, flags, lora, text_encoder, output
    )
    run = _Runner(overwrite=overwrite, compile=False, dry_run=False, editing=True)
    try:
        run(job)
    finally:
        run.close()


def retake_job(
    source: Path,
    prompt: str,
    start: float | None,
    end: float | None,
    what: str,
    fit: str | None,
    distilled: bool,
    preset: str | None,
    flags: dict[str, Any],
    loras: list[str] | None,
    text_encoder: str | None,
    output: Path | None,
) -> Any:
    """The validated `RetakeJob` (every check here runs before any weight loads)."""
    from ltx2cli.cli.generate import _resolve
    from ltx2cli.media.fit import plan_fit
    from ltx2cli.pipelines.job import LoraInput
    from ltx2cli.pipelines.retake import WHAT, RetakeJob

    if what not in WHAT:
        raise UsageError(f"--what {what!r} is not one of {', '.join(WHAT)}", "use --what both")
    info, frames = probe_source(source)
    shape = plan_fit(str(source), frames, info.height, info.width, fit)
    fps = info.fps
    start, end = check_window(start, end, what, frames / fps, fps)
    target = Path(output) if output is not None else source.with_name(f"{source.stem}-retake.mp4")
    if target.resolve() == source.resolve():
        raise UsageError(f"-o {target} is the source video", "write the retake to another file")
    if distilled and flags.get("model") is None:
        from ltx2cli.families import DEFAULT_GENERATION
        from ltx2cli.hub.resolve import role_path
        from ltx2cli.pipelines.registry import DISTILLED_CHECKPOINT

        checkpoint = role_path("distilled", DEFAULT_GENERATION, DISTILLED_CHECKPOINT)
        flags = {**flags, "model": str(checkpoint)}
    # One stage at the source's own size, with the dev or the distilled checkpoint.
    settings = {
        **flags,
        "pipeline": "one-stage",
        "num_frames": shape.target_frames,
        "height": shape.target_height,
        "width": shape.target_width,
        "frame_rate": fps,
    }
    resolved = _resolve(preset, settings, None)
    job = RetakeJob(
        prompt=prompt,
        settings=resolved.settings,
        output=target,
        sources=resolved.sources,
        loras=tuple(LoraInput.parse(spec) for spec in loras or ()),
        text_encoder=text_encoder,
        source=source,
        start=start,
        end=end,
        what=what,
        fit=fit,
        distilled=distilled,
    )
    if shape.changes:
        out.info(shape.describe())
    return job


def probe_source(path: Path) -> tuple[Any, int]:
    """The source's stream info and its exact frame count (packets, so VFR counts right)."""
    from ltx2cli.media.video import count_frames, probe_video

    if not path.is_file():
        raise UsageError(f"{path}: no such video", "check the path")
    try:
        return probe_video(path), count_frames(path)
    except MediaError as exc:
        raise UsageError(exc.message, exc.hint) from None


def check_window(
    start: float | None, end: float | None, what: str, duration: float, fps: float
) -> tuple[float | None, float | None]:
    """[start, end) inside the clip, start < end, at least one latent frame (8 frames) long;
    no window only for `--what audio` (the whole soundtrack)."""
    if start is None and end is None:
        if what == "audio":
            return None, None
        raise UsageError(
            "retake needs a window: --start and --end in seconds",
            f"e.g. --start 0 --end {min(duration, 1.0):g} (only --what audio may omit it)",
        )
    if start is None or end is None:
        missing = "--start" if start is None else "--end"
        raise UsageError(f"{missing} is missing", "pass both --start and --end in seconds")
    if not (math.isfinite(start) and math.isfinite(end)):
        raise UsageError(f"window {start}..{end} is not finite", "pass seconds")
    if start >= end:
        raise UsageError(f"--start {start:g} is not before --end {end:g}", "use start < end")
    if start < 0 or end > duration + 1e-6:
        raise UsageError(
            f"window {start:g}..{end:g} s is outside the clip's {duration:.3f} s",
            f"use a window between 0 and {duration:.3f}",
        )
    shortest = 8 / fps
    if end - start < shortest:
        raise UsageError(
            f"window {start:g}..{end:g} s is shorter than one latent frame ({shortest:.3f} s)",
            f"widen it to at least {shortest:.3f} s",
        )
    return start, end
