"""`ltx2 preprocess DATA -o DIR`: latents and text embeddings for training (ltx-trainer layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ltx2cli.cli.options import Json, examples
from ltx2cli.cli.output import out

EXAMPLES = examples(
    "ltx2 preprocess clips/ -m ltx-2.3-22b-dev -t gemma-3-12b -b 768x512x49",
    "ltx2 preprocess data.jsonl -o ds -m CKPT -t GEMMA_DIR -b 512x512x121",
    "ltx2 preprocess clips/ --captions c.jsonl -o ds -m CKPT -t GEMMA -b 768x512x49",
    "ltx2 preprocess long/ --split-scenes --make-references canny -o ds -m CKPT -t GEMMA "
    "-b 768x512x49",
)


def preprocess(
    data: Annotated[
        Path, typer.Argument(help="A folder of clips (captions in CLIP.txt) or a CSV/JSON/JSONL.")
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Dataset folder (default: DATA's .precomputed/)."),
    ] = None,
    model: Annotated[
        str, typer.Option("--model", "-m", help="LTX-2 checkpoint: path or installed name.")
    ] = "",
    text_encoder: Annotated[
        str | None,
        typer.Option("--text-encoder", "-t", help="Gemma 3 folder or installed name."),
    ] = None,
    buckets: Annotated[
        str | None,
        typer.Option("--buckets", "-b", help="WxHxF buckets, comma separated: 768x512x49,..."),
    ] = None,
    captions: Annotated[
        Path | None,
        typer.Option("--captions", help="Captions file (JSONL/JSON/CSV/txt from ltx2 caption)."),
    ] = None,
    caption_column: Annotated[
        str | None, typer.Option("--caption-column", help="Caption column of a table.")
    ] = None,
    video_column: Annotated[
        str | None, typer.Option("--video-column", help="Media column of a table.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Clips per VAE call.")] = 1,
    device: Annotated[
        str | None, typer.Option("--device", help="cuda, cpu, mps (default: cuda if present).")
    ] = None,
    crop: Annotated[str, typer.Option("--crop", help="center or random crop into the bucket.")] = (
        "center"
    ),
    vae_tiling: Annotated[
        bool | None,
        typer.Option("--vae-tiling/--no-vae-tiling", help="Tiled encoding (default: when large)."),
    ] = None,
    skip_audio: Annotated[
        bool, typer.Option("--skip-audio", help="Do not encode the videos' soundtracks.")
    ] = False,
    lora_trigger: Annotated[
        str | None, typer.Option("--lora-trigger", help="Word put before every caption.")
    ] = None,
    remove_llm_prefixes: Annotated[
        bool,
        typer.Option("--remove-llm-prefixes", help="Strip 'The video shows' and the like."),
    ] = False,
    split_scenes: Annotated[
        bool,
        typer.Option("--split-scenes", help="Cut videos at scene changes first (PySceneDetect)."),
    ] = False,
    scene_threshold: Annotated[
        float,
        typer.Option(
            "--scene-threshold", min=0.0, help="Content detector threshold (lower: more cuts)."
        ),
    ] = 27.0,
    min_scene_frames: Annotated[
        int, typer.Option("--min-scene-frames", min=1, help="Shortest scene, in frames.")
    ] = 15,
    make_references: Annotated[
        str | None,
        typer.Option(
            "--make-references",
            help="IC-LoRA references for clips without one: canny (built in) or depth.",
        ),
    ] = None,
    reference_model: Annotated[
        Path | None,
        typer.Option("--reference-model", help="Local transformers depth model folder."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random crops.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Recompute outputs that already exist.")
    ] = False,
    json: Json = False,
) -> None:
    """Encode clips, soundtracks and captions into DIR (latents/, audio_latents/, conditions/).

    Finished items are skipped, so an interrupted run continues where it stopped; a broken
    clip is reported in the closing summary and never stops the run.
    """
    from ltx2cli.errors import UsageError
    from ltx2cli.train.preprocess import Options, parse_buckets, read_dataset

    out.configure(json=json)
    if crop not in ("center", "random"):
        raise UsageError(f"--crop {crop!r} is not center or random", "use --crop center")
    if not model:
        raise UsageError("--model is required", "pass the LTX-2 checkpoint the LoRA is for")
    if make_references is not None or reference_model is not None:
        from ltx2cli.train.references import check_options

        reference_model = reference_model and reference_model.expanduser()
        check_options(make_references or "", reference_model)
    items, base = read_dataset(
        data, captions=captions, caption_column=caption_column, video_column=video_column
    )
    has_video = any(i.video is not None for i in items)
    if has_video and not buckets:
        raise UsageError("--buckets is required for videos and images", "e.g. -b 768x512x49")
    parsed = tuple(parse_buckets(buckets)) if buckets else ()
    import torch

    from ltx2cli.hub.resolve import resolve_model
    from ltx2cli.train.trainer import resolve_model_path

    checkpoint = resolve_model_path(model)
    encoder = resolve_model(text_encoder, kind="text-encoder") if text_encoder else None

    from ltx2cli.train.preprocess import preprocess as run

    options = Options(
        checkpoint=checkpoint,
        text_encoder=encoder,
        buckets=parsed,
        device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
        batch_size=batch_size,
        crop=crop,
        seed=seed,
        overwrite=overwrite,
        skip_audio=skip_audio,
        vae_tiling=vae_tiling,
        trigger=lora_trigger,
        remove_llm_prefixes=remove_llm_prefixes,
        split_scenes=split_scenes,
        scene_threshold=scene_threshold,
        min_scene_frames=min_scene_frames,
        make_references=make_references,
        reference_model=reference_model,
    )
    target = (output or base / ".precomputed").expanduser()
    with out.progress() as bar:
        tasks: dict[str, int] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        summary = run(items, target, options, progress)
    for what, reason in summary.skipped:
        out.warn(f"skipped {what}: {reason}")
    written = ", ".join(f"{v} {k}" for k, v in sorted(summary.written.items())) or "nothing"
    kept = sum(summary.existing.values())
    out.info(
        f"{summary.items} inputs: wrote {written}; {kept} outputs already there; "
        f"{len(summary.skipped)} skipped"
    )
    out.result(
        {
            "output": str(target),
            "items": summary.items,
            "written": summary.written,
            "existing": summary.existing,
            "skipped": [{"input": w, "reason": r} for w, r in summary.skipped],
        },
        str(target),
    )
