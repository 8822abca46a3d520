"""`ltx2 interpolate PROMPT --keyframe IMG@FRAME[:STRENGTH] ...`: a clip through keyframes.

The `generate` command's job, settings and batch machinery with the keyframe-interpolation
pipeline: every keyframe is a guiding latent in both stages (first/last frame: two of them).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

from ltx2cli.cli import generate_options as o
from ltx2cli.cli.options import examples
from ltx2cli.cli.output import out
from ltx2cli.errors import UsageError

EXAMPLES = examples(
    'ltx2 interpolate "a flower opens" --keyframe bud.png@0 --keyframe bloom.png@120',
    'ltx2 interpolate "a car drives by" --keyframe a.png@0 --keyframe b.png@48:0.8 '
    "--keyframe c.png@96",
    'ltx2 interpolate --prompts-file shots.jsonl -o "out/{index:03d}-{slug}.mp4"',
)
PIPELINE = "keyframe-interpolation"

Keyframe = Annotated[
    list[str] | None,
    o.opt("--keyframe", "-k", help="IMG@FRAME[:STRENGTH[:CRF]], repeatable (pixel frames)."),
]


def interpolate(
    prompt: o.Prompt = None,
    keyframe: Keyframe = None,
    output: o.Output = None,
    overwrite: o.Overwrite = False,
    preset: o.Preset = None,
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
    audio_cfg_scale: o.AudioCfgScale = None,
    audio_stg_scale: o.AudioStgScale = None,
    audio_stg_blocks: o.AudioStgBlocks = None,
    no_audio: o.NoAudio = False,
    image_crf: o.ImageCrf = None,
    lora: o.Lora = None,
    distilled_lora: o.DistilledLora = None,
    upsampler: o.Upsampler = None,
    text_encoder: o.TextEncoder = None,
    quantization: o.Quantization = None,
    offload: o.Offload = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    prompts_file: o.PromptsFile = None,
    skip_existing: o.SkipExisting = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Generate a clip that passes through keyframe images at chosen frames."""
    from ltx2cli.cli.generate import _batch, _blocks, _job, _Runner

    out.configure(json=json, quiet=quiet)
    flags = {
        "pipeline": PIPELINE, "model": model, "height": height, "width": width,
        "num_frames": num_frames, "frame_rate": frame_rate, "steps": steps, "seed": seed,
        "negative_prompt": negative_prompt, "video_cfg_scale": video_cfg_scale,
        "video_stg_scale": video_stg_scale, "video_stg_blocks": _blocks(video_stg_blocks, "video"),
        "audio_cfg_scale": audio_cfg_scale, "audio_stg_scale": audio_stg_scale,
        "audio_stg_blocks": _blocks(audio_stg_blocks, "audio"),
        "audio": False if no_audio else None, "image_crf": image_crf,
        "quantization": quantization, "offload": offload, "device": device, "dtype": dtype,
    }  # fmt: skip
    cli = {
        "images": keyframe, "loras": lora, "distilled_lora": distilled_lora,
        "upsampler": upsampler, "text_encoder": text_encoder,
    }  # fmt: skip
    run = _Runner(overwrite=overwrite, compile=False, dry_run=False, editing=True)
    try:
        if prompts_file is not None:
            if prompt is not None:
                raise UsageError("--prompts-file takes its prompts from the file", "drop PROMPT")
            _batch(run, prompts_file, preset, flags, cli, output, skip_existing)
            return
        job = _job(prompt, preset, flags, cli)
        run(job if output is None else replace(job, output=Path(output)))
    finally:
        run.close()
