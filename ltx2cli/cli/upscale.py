"""`ltx2 upscale VIDEO`: twice the size through the x2 latent upsampler and a distilled
refinement; the source's audio is kept. Validation (source, fit, strength, output) runs before
any weights load."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ltx2cli.cli import generate_options as o
from ltx2cli.cli.options import examples
from ltx2cli.cli.output import out
from ltx2cli.cli.retake import Source
from ltx2cli.errors import UsageError

EXAMPLES = examples(
    "ltx2 upscale clip.mp4",
    'ltx2 upscale clip.mp4 "a foggy harbour at dawn" --strength 0.6 -o clip-2x.mp4',
    "ltx2 upscale phone.mov --fit crop --no-audio",
)
UPSCALE = "Upscale"

UpscalePrompt = Annotated[
    str | None, typer.Argument(help="What the clip shows (optional; guides the refinement).")
]
Strength = Annotated[
    float,
    o.opt("--strength", help="Refinement strength 0..1 (0: upsample only).", panel=UPSCALE),
]
Fit = Annotated[
    str | None,
    o.opt("--fit", help="trim | pad | crop | resize a clip off the model's grid.", panel=UPSCALE),
]
KeepAudio = Annotated[bool, o.opt("--no-audio", help="Drop the source's audio.", panel=UPSCALE)]


def upscale(
    source: Source,
    prompt: UpscalePrompt = None,
    strength: Strength = 1.0,
    fit: Fit = None,
    no_audio: KeepAudio = False,
    output: o.Output = None,
    overwrite: o.Overwrite = False,
    preset: o.Preset = None,
    model: o.Model = None,
    seed: o.Seed = None,
    lora: o.Lora = None,
    upsampler: o.Upsampler = None,
    text_encoder: o.TextEncoder = None,
    quantization: o.Quantization = None,
    offload: o.Offload = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Upscale a video x2 in size with the latent upsampler and a distilled refinement."""
    from ltx2cli.cli.generate import _resolve, _Runner
    from ltx2cli.cli.retake import probe_source
    from ltx2cli.media.fit import plan_fit
    from ltx2cli.pipelines.job import LoraInput
    from ltx2cli.pipelines.upscale import DEFAULT_PROMPT, SCALE, UpscaleJob

    out.configure(json=json, quiet=quiet)
    info, frames = probe_source(source)
    shape = plan_fit(str(source), frames, info.height, info.width, fit)
    target = Path(output) if output is not None else source.with_name(f"{source.stem}-x2.mp4")
    if target.resolve() == source.resolve():
        raise UsageError(f"-o {target} is the source video", "write the upscale to another file")
    flags = {
        "pipeline": "upscale", "model": model, "seed": seed, "audio": False,
        "num_frames": shape.target_frames, "height": SCALE * shape.target_height,
        "width": SCALE * shape.target_width, "frame_rate": info.fps,
        "quantization": quantization, "offload": offload, "device": device, "dtype": dtype,
    }  # fmt: skip
    resolved = _resolve(preset, flags, None)
    job = UpscaleJob(
        prompt=prompt or DEFAULT_PROMPT,
        settings=resolved.settings,
        output=target,
        sources=resolved.sources,
        loras=tuple(LoraInput.parse(spec) for spec in lora or ()),
        upsampler=upsampler,
        text_encoder=text_encoder,
        source=source,
        fit=fit,
        strength=strength,
        keep_audio=not no_audio,
    )
    if shape.changes:
        out.info(shape.describe())
    run = _Runner(overwrite=overwrite, compile=False, dry_run=False, editing=True)
    try:
        run(job)
    finally:
        run.close()
