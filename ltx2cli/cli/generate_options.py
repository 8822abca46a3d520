"""The options of `ltx2 generate`, one `Annotated` alias per flag (torch-free).

Settings flags are named after their `GenerationSettings` field (`--num-frames` =
`num_frames`); the rest belong to the job (images, LoRAs, model roles, output) or the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

SETTINGS, GUIDANCE, MODELS, RUN, BATCH = "Settings", "Guidance", "Models", "Run", "Batch"


def opt(*names: str, help: str, panel: str = SETTINGS, **kw: Any) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel, **kw)


Prompt = Annotated[str | None, typer.Argument(help="What the video shows and sounds like.")]
Output = Annotated[
    Path | None, opt("-o", "--output", help="Output .mp4 (default: from the prompt).", panel=RUN)
]
Overwrite = Annotated[bool, opt("--overwrite", help="Replace an existing output.", panel=RUN)]
Preset = Annotated[str | None, opt("--preset", help="A preset name or YAML file.")]
Pipeline = Annotated[
    str | None, opt("--pipeline", help="two-stage | two-stage-hq | one-stage | distilled.")
]
Model = Annotated[
    str | None, opt("-m", "--model", help="Catalog name, path, or demo.", panel=MODELS)
]
Height = Annotated[int | None, opt("--height", help="Pixel height.")]
Width = Annotated[int | None, opt("--width", help="Pixel width.")]
NumFrames = Annotated[int | None, opt("--num-frames", help="Frames, 8k+1.")]
FrameRate = Annotated[float | None, opt("--frame-rate", help="Frames per second.")]
Steps = Annotated[int | None, opt("--steps", help="Stage-1 sampling steps.")]
Seed = Annotated[int | None, opt("-s", "--seed", help="Random seed.")]
NegativePrompt = Annotated[str | None, opt("--negative-prompt", help="What to avoid.")]
VideoCfgScale = Annotated[
    float | None, opt("--video-cfg-scale", help="Video text CFG (1 = off).", panel=GUIDANCE)
]
VideoStgScale = Annotated[
    float | None, opt("--video-stg-scale", help="Video STG (0 = off).", panel=GUIDANCE)
]
VideoStgBlocks = Annotated[
    str | None, opt("--video-stg-blocks", help="Blocks, e.g. 28 or 28,29.", panel=GUIDANCE)
]
VideoRescaleScale = Annotated[
    float | None, opt("--video-rescale-scale", help="0..1.", panel=GUIDANCE)
]
VideoModalityScale = Annotated[
    float | None, opt("--video-modality-scale", help="Audio→video (1 = off).", panel=GUIDANCE)
]
VideoSkipStep = Annotated[
    int | None, opt("--video-skip-step", help="Reuse x0 N steps.", panel=GUIDANCE)
]
AudioCfgScale = Annotated[
    float | None, opt("--audio-cfg-scale", help="Audio text CFG.", panel=GUIDANCE)
]
AudioStgScale = Annotated[float | None, opt("--audio-stg-scale", help="Audio STG.", panel=GUIDANCE)]
AudioStgBlocks = Annotated[str | None, opt("--audio-stg-blocks", help="Blocks.", panel=GUIDANCE)]
AudioRescaleScale = Annotated[
    float | None, opt("--audio-rescale-scale", help="0..1.", panel=GUIDANCE)
]
AudioModalityScale = Annotated[
    float | None, opt("--audio-modality-scale", help="Video→audio.", panel=GUIDANCE)
]
AudioSkipStep = Annotated[
    int | None, opt("--audio-skip-step", help="Reuse x0 N steps.", panel=GUIDANCE)
]
NoAudio = Annotated[bool, opt("--no-audio", help="Video only.")]
AudioOnly = Annotated[
    bool, opt("--audio-only", help="Audio alone (no video), written as .wav or .m4a.")
]
ReferenceVideo = Annotated[
    str | None,
    opt(
        "--reference-video",
        help="PATH[:STRENGTH]: IC-LoRA video-to-video (with --lora).",
        panel=MODELS,
    ),
]
ReferenceMask = Annotated[
    str | None,
    opt(
        "--reference-mask",
        help="VIDEO[:STRENGTH]: where the reference is attended to.",
        panel=MODELS,
    ),
]
SkipStage2 = Annotated[
    bool, opt("--skip-stage-2", help="IC-LoRA: decode stage 1 at half size.", panel=MODELS)
]
Duration = Annotated[float | None, opt("--duration", help="Seconds of audio (--audio-only).")]
EnhancePrompt = Annotated[bool, opt("--enhance-prompt", help="Let Gemma rewrite the prompt.")]
Image = Annotated[
    list[str] | None, opt("--image", help="PATH[@FRAME[:STRENGTH[:CRF]]], repeatable.")
]
ImageCrf = Annotated[int | None, opt("--image-crf", help="Default image CRF (0 = none).")]
Lora = Annotated[
    list[str] | None, opt("--lora", help="NAME_OR_PATH[:STRENGTH], repeatable.", panel=MODELS)
]
DistilledLora = Annotated[
    str | None, opt("--distilled-lora", help="NAME_OR_PATH[:STRENGTH].", panel=MODELS)
]
Upsampler = Annotated[str | None, opt("--upsampler", help="Spatial upsampler.", panel=MODELS)]
TextEncoder = Annotated[
    str | None, opt("--text-encoder", help="Gemma 3 name or folder.", panel=MODELS)
]
Quantization = Annotated[
    str | None, opt("--quantization", help="none | fp8-cast | fp8-scaled-mm.", panel=RUN)
]
Offload = Annotated[str | None, opt("--offload", help="none | model | block.", panel=RUN)]
Device = Annotated[str | None, opt("--device", help="auto | cpu | cuda[:N] | mps.", panel=RUN)]
Dtype = Annotated[str | None, opt("--dtype", help="bfloat16 | float16 | float32.", panel=RUN)]
Compile = Annotated[bool, opt("--compile", help="torch.compile the transformer blocks.", panel=RUN)]
FromMetadata = Annotated[
    Path | None, opt("--from-metadata", help="Replay an output's .mp4 or .json.", panel=RUN)
]
DryRun = Annotated[
    bool,
    opt("--dry-run", help="Print the plan and estimated memory; load nothing.", panel=RUN),
]
Json = Annotated[bool, opt("--json", help="One JSON object per result on stdout.", panel=RUN)]
Quiet = Annotated[bool, opt("-q", "--quiet", help="Only errors on stderr.", panel=RUN)]
PromptsFile = Annotated[
    Path | None,
    opt("--prompts-file", help="Text, JSONL or YAML items; -o is a name template.", panel=BATCH),
]
SkipExisting = Annotated[
    bool, opt("--skip-existing", help="Skip items whose output exists.", panel=BATCH)
]
