"""`ltx2 a2v AUDIO PROMPT`: a video for a soundtrack; the output carries the original audio.

Parse → validate the audio file, `--audio-start` and the duration (from the audio when
`--num-frames` is not given: snapped down to 8k+1 within the model's range) before any
weights load → resolve the a2v settings → run through `generate`'s runner → report.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Annotated

import typer

from ltx2cli.cli import generate_options as o
from ltx2cli.cli.options import examples
from ltx2cli.cli.output import out
from ltx2cli.errors import MediaError, UsageError

EXAMPLES = examples(
    'ltx2 a2v song.mp3 "a singer on a rooftop at dusk"',
    'ltx2 a2v interview.m4a "a woman talks to the camera" --audio-start 12.5 --num-frames 121',
    'ltx2 a2v clip.mov "a drummer in a garage" --image drummer.png@0',
)
AUDIO = "Audio"

AudioPath = Annotated[Path, typer.Argument(help="Any audio PyAV reads (or a video's track).")]
A2VPrompt = Annotated[str, typer.Argument(help="What the video shows.")]
AudioStart = Annotated[
    float, o.opt("--audio-start", help="Seconds into the audio to start from.", panel=AUDIO)
]
#: The transformer's RoPE range when the checkpoint config does not state one.
DEFAULT_MAX_SECONDS = 20.0


def a2v(
    audio: AudioPath,
    prompt: A2VPrompt,
    audio_start: AudioStart = 0.0,
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
    audio_stg_blocks: o.AudioStgBlocks = None,
    enhance_prompt: o.EnhancePrompt = False,
    image: o.Image = None,
    lora: o.Lora = None,
    distilled_lora: o.DistilledLora = None,
    upsampler: o.Upsampler = None,
    text_encoder: o.TextEncoder = None,
    quantization: o.Quantization = None,
    offload: o.Offload = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Generate a video for a soundtrack (music, speech, a video's audio)."""
    from ltx2cli.cli.generate import _blocks, _job, _Runner
    from ltx2cli.pipelines.a2v import A2VJob

    out.configure(json=json, quiet=quiet)
    available = audio_seconds(audio, audio_start)
    flags = {
        "pipeline": "a2v", "model": model, "height": height, "width": width,
        "num_frames": num_frames, "frame_rate": frame_rate, "steps": steps, "seed": seed,
        "negative_prompt": negative_prompt, "video_cfg_scale": video_cfg_scale,
        "video_stg_scale": video_stg_scale, "video_stg_blocks": _blocks(video_stg_blocks, "video"),
        "audio_stg_blocks": _blocks(audio_stg_blocks, "audio"),
        "enhance_prompt": True if enhance_prompt else None, "quantization": quantization,
        "offload": offload, "device": device, "dtype": dtype,
    }  # fmt: skip
    cli = {
        "images": image, "loras": lora, "distilled_lora": distilled_lora,
        "upsampler": upsampler, "text_encoder": text_encoder,
    }  # fmt: skip
    job = _job(prompt, preset, flags, cli)
    frames = frames_for_audio(available, job.settings.frame_rate, num_frames)
    if num_frames is None:
        job = _job(prompt, preset, {**flags, "num_frames": frames}, cli)
    target = Path(output) if output is not None else audio.with_name(f"{audio.stem}-a2v.mp4")
    if target.resolve() == audio.resolve():
        raise UsageError(f"-o {target} is the input audio", "write the video to another file")
    base = {f.name: getattr(job, f.name) for f in fields(job)}
    a2v_job = A2VJob(**{**base, "output": target}, audio=audio, audio_start=audio_start)
    run = _Runner(overwrite=overwrite, compile=False, dry_run=False, editing=True)
    try:
        run(a2v_job)
    finally:
        run.close()


def audio_seconds(path: Path, start: float) -> float:
    """Seconds of audio in `path` from `start` on (decoded, so every container counts)."""
    from ltx2cli.media.audio import read_audio

    if not path.is_file():
        raise UsageError(f"{path}: no such audio file", "check the path")
    if not (math.isfinite(start) and start >= 0):
        raise UsageError(f"--audio-start {start:g} is negative", "pass seconds >= 0")
    try:
        return read_audio(path, channels=None, start_time=start).duration
    except MediaError as exc:
        raise UsageError(exc.message, exc.hint) from None


def frames_for_audio(seconds: float, fps: float, requested: int | None) -> int:
    """8k+1 frames covering at most `seconds` at `fps`, capped at the model's range; a
    requested count longer than the audio is an error naming the longest that fits."""
    from ltx2cli.media.fit import frames_below

    longest = frames_below(math.floor(min(seconds, DEFAULT_MAX_SECONDS) * fps + 1e-6))
    if requested is None:
        return longest
    if requested > longest and requested / fps > seconds + 1e-6:
        raise UsageError(
            f"--num-frames {requested} at {fps:g} fps needs {requested / fps:.2f} s of audio; "
            f"the audio has {seconds:.2f} s from --audio-start",
            f"use --num-frames {longest} or fewer, or an earlier --audio-start",
        )
    return requested
