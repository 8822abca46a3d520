"""`ltx2 caption MEDIA... -o captions.jsonl`: training captions from a local VLM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ltx2cli.cli.options import Json, examples

EXAMPLES = examples(
    "ltx2 caption clips/ -o clips/captions.jsonl -m ~/models/Qwen2.5-VL-7B",
    "ltx2 caption a.mp4 b.mp4 -o captions.csv -m ~/models/Qwen2.5-VL-3B --fps 1",
    "ltx2 caption clips/ -o captions.jsonl -m QWEN_DIR --overwrite",
    "ltx2 caption clips/ -o captions.jsonl -m ~/models/Qwen2.5-Omni-7B  # hears the sound too",
)


def caption(
    media: Annotated[list[Path], typer.Argument(help="Videos, images or folders of them.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="captions.jsonl / .json / .csv / .txt")
    ],
    model: Annotated[
        Path,
        typer.Option(
            "--model", "-m", help="Local Qwen2.5-VL, Qwen2-VL or Qwen2.5-Omni model folder."
        ),
    ],
    fps: Annotated[
        float, typer.Option("--fps", help="Frames per second shown to the model.")
    ] = 2.0,
    max_frames: Annotated[
        int, typer.Option("--max-frames", min=1, help="At most this many frames per clip.")
    ] = 16,
    instruction: Annotated[
        str | None, typer.Option("--instruction", "-i", help="Replace the built-in instruction.")
    ] = None,
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", min=1, help="Longest caption in tokens.")
    ] = 256,
    device: Annotated[
        str | None, typer.Option("--device", help="cuda, cpu, mps (default: cuda if present).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Caption again clips that already have one.")
    ] = False,
    json: Json = False,
) -> None:
    """Caption clips for training; existing captions in OUTPUT are kept (resumable)."""
    from ltx2cli.cli.output import out
    from ltx2cli.train.caption import Captioner, caption_all, check_output, find_media

    out.configure(json=json)
    check_output(output)
    clips = find_media(media)

    def load() -> Captioner:
        import torch

        chosen = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return Captioner.from_pretrained(
            model.expanduser(), device=chosen, max_new_tokens=max_new_tokens
        )

    with out.progress() as bar:
        task = bar.add_task("captioning", total=None)
        captions, failures = caption_all(
            clips,
            output,
            load,
            fps=fps,
            max_frames=max_frames,
            instruction=instruction,
            overwrite=overwrite,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    for path, reason in failures:
        out.warn(f"skipped {path}: {reason}")
    out.info(f"{len(captions)} captions in {output}; {len(failures)} clips skipped")
    out.result(
        {
            "output": str(output),
            "captions": len(captions),
            "skipped": [{"input": p, "reason": r} for p, r in failures],
        },
        str(output),
    )
