"""`ltx2 preprocess`: media + captions → the `.precomputed/` dataset ltx-trainer reads (§7).

Inputs: a folder of clips (caption in a sidecar `<clip>.txt`, or in a captions file such as
`ltx2 caption` writes), or a CSV / JSON / JSONL table whose columns are found by name
(`video`/`media_path`, `audio`, `reference_video`/`ref_media_path`, `video_mask`, `caption`).
In a folder, `CLIP_reference.mp4` and `CLIP_mask.png|mp4` beside a clip are its IC-LoRA
reference and its inpainting mask.

With `split_scenes`, videos are first cut at scene changes (`scenes.py`); each scene is then
an item of its own. With `make_references`, clips without a reference get a generated
control video (Canny edges or a depth model's maps; `references.py`).

Phases, each over every item and each skipping outputs that already exist (so an interrupted
run resumes), with one model in memory at a time:
1. captions → `conditions/` (Gemma hidden states → the checkpoint's feature extractor; the
   pre-connector features, as the reference stores them);
2. videos and images → `latents/` at their resolution × frame bucket (the reference's bucket
   choice, bicubic cover-resize, center or random crop), batched per bucket, tiled encoding
   when a frame is larger than one tile;
3. the soundtrack of each video (or an audio file) → `audio_latents/` (16 kHz stereo log-mel →
   audio VAE encoder), trimmed / zero-padded to the clip's duration;
4. reference videos (IC-LoRA) → `reference_latents/` at the target's bucket;
5. inpainting masks → `video_masks/` on each clip's latent grid.
A broken input is recorded with its reason and the run goes on; the summary lists them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltx2cli.errors import Ltx2Error, MediaError, UsageError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".opus")
TABLE_SUFFIXES = (".csv", ".json", ".jsonl")
CAPTION_COLUMNS = ("caption",)
VIDEO_COLUMNS = ("video", "media_path")
AUDIO_COLUMNS = ("audio",)
REFERENCE_COLUMNS = ("reference_video", "ref_media_path")
MASK_COLUMNS = ("video_mask",)
IMAGE_FPS = 1.0
DEFAULT_VIDEO_FPS = 24.0
TILE_PIXELS = 512  # frames wider or taller than one encoder tile are encoded in tiles
DIRS = {
    "conditions": "conditions",
    "latents": "latents",
    "audio": "audio_latents",
    "reference": "reference_latents",
    "mask": "video_masks",
}
ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)

# Captioner boilerplate removed by --remove-llm-prefixes (the reference's list).
_SUBJECTS = ("video", "clip", "animation", "image", "picture")
_VERBS = ("shows", "depicts", "features", "captures", "highlights", "introduces", "presents")
LLM_PREFIXES = (
    "In the video,",
    "In this video,",
    "In this video clip,",
    "In the clip,",
    "Caption:",
    *(f"{a} {s} {v}" for a in ("This", "The") for s in _SUBJECTS for v in _VERBS),
)


@dataclass(frozen=True)
class Bucket:
    frames: int
    height: int
    width: int

    @property
    def text(self) -> str:
        return f"{self.width}x{self.height}x{self.frames}"


@dataclass
class Item:
    """One row: its media, caption and the relative output path (suffix `.pt`)."""

    rel: Path
    caption: str | None = None
    video: Path | None = None  # video or image
    audio: Path | None = None
    reference: Path | None = None
    mask: Path | None = None  # inpainting mask (image or video; white = generate)


@dataclass
class Summary:
    items: int = 0
    written: dict[str, int] = field(default_factory=dict)
    existing: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)

    def count(self, table: dict[str, int], phase: str) -> None:
        table[phase] = table.get(phase, 0) + 1

    def skip(self, what: Path | str | None, reason: str) -> None:
        reason = reason.removeprefix(f"{what}: ")  # media errors start with the path
        log.info("skipped %s: %s", what, reason)
        self.skipped.append((str(what), reason))


# -- inputs ----------------------------------------------------------------------------------


def parse_buckets(text: str, spatial: int = 32, temporal: int = 8) -> list[Bucket]:
    """`768x512x49,512x512x121` (`;` works too; W x H x F) → buckets, checked."""
    buckets = []
    for part in re.split(r"[;,]", text):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)x(\d+)x(\d+)", part)
        if not m:
            raise UsageError(f"bucket {part!r} is not WIDTHxHEIGHTxFRAMES", "e.g. 768x512x49")
        w, h, f = (int(v) for v in m.groups())
        if w % spatial or h % spatial or w <= 0 or h <= 0:
            raise UsageError(
                f"bucket {part}: width and height must be positive multiples of {spatial}",
                f"e.g. {w // spatial * spatial or spatial}x{h // spatial * spatial or spatial}x{f}",
            )
        if f < 1 or (f - 1) % temporal:
            near = max(1, round((f - 1) / temporal) * temporal + 1)
            raise UsageError(f"bucket {part}: frames must be {temporal}k+1", f"e.g. {w}x{h}x{near}")
        buckets.append(Bucket(f, h, w))
    if not buckets:
        raise UsageError("no buckets given", "e.g. --buckets 768x512x49")
    return buckets


def choose_bucket(width: int, height: int, frames: int, buckets: Sequence[Bucket]) -> Bucket | None:
    """The reference's choice among buckets with at most `frames` frames: closest log aspect
    ratio, then more frames, then larger area. None when the clip is too short for all."""
    fitting = [b for b in buckets if b.frames <= frames]
    if not fitting:
        return None
    aspect = math.log(width / height)
    return min(
        fitting,
        key=lambda b: (abs(aspect - math.log(b.width / b.height)), -b.frames, -b.width * b.height),
    )


def clean_caption(text: str, trigger: str | None, remove_prefixes: bool) -> str:
    text = text.strip()
    if remove_prefixes:
        for prefix in LLM_PREFIXES:
            if text.startswith(prefix):
                text = text[len(prefix) :].strip()
                break
    return f"{trigger} {text}" if trigger else text


def _pick(columns: Iterable[str], names: Sequence[str], given: str | None) -> str | None:
    columns = list(columns)
    if given is not None:
        if given not in columns:
            raise UsageError(
                f"column '{given}' is not in the table", f"columns: {', '.join(columns)}"
            )
        return given
    return next((n for n in names if n in columns), None)


def read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV, JSON (list of objects) or JSONL file."""
    try:
        if path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}", "fix the file") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UsageError(f"{path} must hold a list of objects", "one object per clip")
    return rows


def read_captions_file(path: Path) -> dict[str, str]:
    """Captions by media path (as written by `ltx2 caption` / ltx-trainer's captioner), keyed
    by both the path as written and its file name."""
    rows = read_table(path) if path.suffix in TABLE_SUFFIXES else _read_txt_pair(path)
    found: dict[str, str] = {}
    for row in rows:
        media = row.get("media_path") or row.get("video") or row.get("audio")
        if media and row.get("caption") is not None:
            found[str(media)] = str(row["caption"])
            found.setdefault(Path(str(media)).name, str(row["caption"]))
    return found


def _read_txt_pair(path: Path) -> list[dict[str, Any]]:
    """The txt format: `<stem>_captions.txt` and `<stem>_paths.txt`, one entry per line."""
    stem = path.stem.removesuffix("_captions").removesuffix("_paths")
    captions = (path.with_name(f"{stem}_captions.txt")).read_text(encoding="utf-8").splitlines()
    paths = (path.with_name(f"{stem}_paths.txt")).read_text(encoding="utf-8").splitlines()
    return [{"caption": c, "media_path": p} for c, p in zip(captions, paths, strict=False)]


def read_dataset(
    data: Path,
    *,
    captions: Path | None = None,
    caption_column: str | None = None,
    video_column: str | None = None,
) -> tuple[list[Item], Path]:
    """Items and the dataset folder that relative paths (and outputs) are based on."""
    if not data.exists():
        raise UsageError(f"no such file or folder: {data}", "pass a folder of clips or a table")
    if data.is_dir():
        return _folder_items(data, captions), data
    if data.suffix not in TABLE_SUFFIXES:
        raise UsageError(f"{data} is not a folder, CSV, JSON or JSONL file")
    rows = read_table(data)
    base = data.parent
    columns = {k for row in rows for k in row}
    cap = _pick(columns, CAPTION_COLUMNS, caption_column)
    videos = [_pick(columns, VIDEO_COLUMNS, video_column)] if video_column else VIDEO_COLUMNS
    refs = REFERENCE_COLUMNS
    if not columns & {*videos, *AUDIO_COLUMNS}:
        raise UsageError(
            f"{data} has no media column",
            f"name one {', '.join(VIDEO_COLUMNS + AUDIO_COLUMNS)} (columns: {sorted(columns)})",
        )
    items = []
    for row in rows:
        video = _first(row, videos)
        audio = _first(row, AUDIO_COLUMNS)
        media = video or audio
        if media is None:
            log.info("skipping a row without media: %s", row)
            continue
        items.append(
            Item(
                rel=_relative(Path(media), base),
                caption=None if cap is None or row.get(cap) is None else str(row[cap]),
                video=_resolve(video, base),
                audio=_resolve(audio, base),
                reference=_resolve(_first(row, refs), base),
                mask=_resolve(_first(row, MASK_COLUMNS), base),
            )
        )
    return items, base


def _first(row: dict[str, Any], columns: Sequence[str]) -> str | None:
    return next((str(row[c]) for c in columns if row.get(c)), None)


def _resolve(value: Any, base: Path) -> Path | None:
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def _relative(media: Path, base: Path) -> Path:
    """The output path of `media`: relative to the dataset; out-of-tree paths mirrored."""
    if not media.is_absolute():
        return media.with_suffix(".pt")
    try:
        return media.relative_to(base).with_suffix(".pt")
    except ValueError:
        return Path(*media.parts[1:]).with_suffix(".pt")


def _beside(path: Path, tag: str, suffixes: Sequence[str]) -> Path | None:
    """`CLIP<tag>.<suffix>` next to `path`, if there is one."""
    return next(
        (path.with_name(f"{path.stem}{tag}{s}") for s in suffixes
         if path.with_name(f"{path.stem}{tag}{s}").is_file()),
        None,
    )  # fmt: skip


def _folder_items(folder: Path, captions: Path | None) -> list[Item]:
    table = read_captions_file(captions) if captions is not None else {}
    items = []
    suffixes = VIDEO_SUFFIXES + IMAGE_SUFFIXES + AUDIO_SUFFIXES
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in suffixes or path.name.startswith("."):
            continue
        if path.stem.endswith(("_reference", "_mask")):
            continue  # control videos and masks go with their source clip
        rel = path.relative_to(folder)
        caption = table.get(str(rel)) or table.get(str(path)) or table.get(path.name)
        sidecar = path.with_suffix(".txt")
        if caption is None and sidecar.is_file():
            caption = sidecar.read_text(encoding="utf-8").strip()
        is_audio = path.suffix.lower() in AUDIO_SUFFIXES
        reference = _beside(path, "_reference", VIDEO_SUFFIXES)
        mask = _beside(path, "_mask", VIDEO_SUFFIXES + IMAGE_SUFFIXES)
        items.append(
            Item(
                rel=rel.with_suffix(".pt"),
                caption=caption,
                video=None if is_audio else path,
                audio=path if is_audio else None,
                reference=reference,
                mask=mask,
            )
        )
    if not items:
        raise UsageError(f"no video, image or audio files in {folder}")
    return items


# -- encoding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    checkpoint: Path
    text_encoder: Path | None
    buckets: tuple[Bucket, ...]
    device: str = "cpu"
    batch_size: int = 1
    crop: str = "center"  # or "random"
    seed: int = 0
    overwrite: bool = False
    skip_audio: bool = False
    vae_tiling: bool | None = None  # None: tile frames larger than one tile
    trigger: str | None = None
    remove_llm_prefixes: bool = False
    split_scenes: bool = False
    scene_threshold: float = 27.0  # PySceneDetect's content detector default
    min_scene_frames: int = 15
    make_references: str | None = None  # "canny" or "depth" (references.py)
    reference_model: Path | None = None  # the depth model folder


@dataclass
class _Plan:
    """A video item's bucket and source fps (decided once, used by several phases)."""

    item: Item
    bucket: Bucket
    fps: float
    image: bool


def _dtype(device: str):
    import torch

    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def _save(path: Path, data: dict[str, Any]) -> None:
    import torch

    from ltx2cli.media._files import atomic_output

    with atomic_output(path) as tmp:
        torch.save(data, tmp)


def preprocess(
    items: list[Item], out: Path, options: Options, progress: ProgressFn | None = None
) -> Summary:
    """Write every phase's outputs under `out`; see the module docstring."""
    summary = Summary(items=len(items))
    report = progress or (lambda phase, done, total: None)
    present = []
    for item in items:
        media = item.video or item.audio
        if media is not None and media.is_file():
            present.append(item)
        else:
            summary.skip(media, "no such file")
    items = present
    if options.split_scenes:
        from ltx2cli.train.scenes import split_scenes

        items = split_scenes(
            items, out, summary, threshold=options.scene_threshold,
            min_frames=options.min_scene_frames,
        )  # fmt: skip
    if options.make_references:
        from ltx2cli.train.references import make_references

        make_references(
            items, out, options.make_references, options.reference_model, options.device,
            summary, IMAGE_SUFFIXES,
        )  # fmt: skip
    _captions(items, out, options, summary, report)
    plans = _plan_videos(items, options, summary)
    _videos(plans, out, options, summary, report)
    _audio(items, plans, out, options, summary, report)
    _references(plans, out, options, summary, report)
    _masks(plans, out, options, summary, report)
    return summary


def _todo(out: Path, folder: str, item: Item, options: Options, summary: Summary) -> bool:
    if options.overwrite or not (out / folder / item.rel).is_file():
        return True
    summary.count(summary.existing, folder)
    return False


def _captions(items, out, options: Options, summary: Summary, report: ProgressFn) -> None:
    import torch

    folder = DIRS["conditions"]
    todo = []
    for item in items:
        if item.caption is None or not item.caption.strip():
            summary.skip(item.video or item.audio, "no caption (add CLIP.txt or --captions FILE)")
        elif _todo(out, folder, item, options, summary):
            todo.append(item)
    if not todo:
        return
    if options.text_encoder is None:
        raise UsageError("captions need a text encoder", "pass --text-encoder GEMMA_DIR")
    from transformers.utils import logging as hf_logging

    from ltx2cli.models.loading import load_component
    from ltx2cli.models.text_encoder import GemmaTextEncoder

    hf_logging.disable_progress_bar()  # our own progress display covers the phase
    dtype = _dtype(options.device)
    encoder = GemmaTextEncoder.from_pretrained(
        options.text_encoder, dtype=dtype, device=options.device
    )
    extractor = load_component(
        options.checkpoint,
        "text_projection",
        dtype=dtype,
        device=options.device,
        gemma_hidden_size=encoder.hidden_size,
        gemma_hidden_states=encoder.num_hidden_states,
    )
    for i, item in enumerate(todo):
        text = clean_caption(item.caption or "", options.trigger, options.remove_llm_prefixes)
        with torch.inference_mode():
            encoding = encoder.encode([text])
            video, audio = extractor(encoding.hidden_states, encoding.mask)
        _save(
            out / folder / item.rel,
            {
                "video_prompt_embeds": video[0].to(torch.bfloat16).cpu(),
                "audio_prompt_embeds": audio[0].to(torch.bfloat16).cpu(),
                "prompt_attention_mask": encoding.mask[0].bool().cpu(),
            },
        )
        summary.count(summary.written, folder)
        report("captions", i + 1, len(todo))
    del encoder, extractor


def _plan_videos(items, options: Options, summary: Summary) -> list[_Plan]:
    from ltx2cli.media import load_image, probe_video

    plans = []
    for item in items:
        if item.video is None:
            continue
        try:
            if item.video.suffix.lower() in IMAGE_SUFFIXES:
                h, w, _ = load_image(item.video).shape
                frames, fps, image = 1, IMAGE_FPS, True
            else:
                info = probe_video(item.video)
                w, h, frames, fps, image = info.width, info.height, info.num_frames, info.fps, False
                fps = fps or DEFAULT_VIDEO_FPS
        except Ltx2Error as exc:
            summary.skip(item.video, exc.message)
            continue
        bucket = choose_bucket(w, h, frames, options.buckets)
        if bucket is None:
            shortest = min(b.frames for b in options.buckets)
            summary.skip(item.video, f"{frames} frames: shorter than every bucket ({shortest})")
            continue
        plans.append(_Plan(item, bucket, fps, image))
    return plans


def _read_frames(plan: _Plan, bucket: Bucket, options: Options, generator) -> Any:
    """`[3, F, H, W]` in [-1, 1]: cover-resized (bicubic) and cropped to the bucket."""
    import torch

    from ltx2cli.media import load_image, read_video, to_model
    from ltx2cli.media.frames import cover_size

    path = plan.item.video
    assert path is not None
    if plan.image:
        frames = to_model(load_image(path).unsqueeze(0))
    else:
        frames = read_video(path, max_frames=bucket.frames).frames
    if frames.shape[0] < bucket.frames:
        raise MediaError(f"{path}: has {frames.shape[0]} frames, the bucket needs {bucket.frames}")
    h, w = cover_size(tuple(frames.shape[-2:]), (bucket.height, bucket.width))
    x = torch.nn.functional.interpolate(
        frames.float(), size=(h, w), mode="bicubic", align_corners=False, antialias=True
    ).clamp(-1, 1)
    if options.crop == "random":
        top = int(torch.randint(0, h - bucket.height + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - bucket.width + 1, (1,), generator=generator))
    else:
        top, left = (h - bucket.height) // 2, (w - bucket.width) // 2
    x = x[:, :, top : top + bucket.height, left : left + bucket.width]
    return x.permute(1, 0, 2, 3)  # (3, F, H, W)


def _encode(encoder, pixels, options: Options):
    tile = options.vae_tiling
    if tile is None:
        tile = max(pixels.shape[-2:]) > TILE_PIXELS
    return encoder.tiled_encode(pixels) if tile else encoder(pixels)


def _video_pass(
    plans: list[_Plan],
    folder: str,
    source: Callable[[_Plan], Path | None],
    out: Path,
    options: Options,
    summary: Summary,
    report: ProgressFn,
) -> None:
    """Encode `source(plan)` of every plan at its bucket into `folder`, batched per bucket."""
    import torch

    todo = [
        p for p in plans if source(p) is not None and _todo(out, folder, p.item, options, summary)
    ]
    if not todo:
        return
    from ltx2cli.models.loading import load_component

    dtype = _dtype(options.device)
    encoder = load_component(
        options.checkpoint, "video_encoder", dtype=dtype, device=options.device
    )
    generator = torch.Generator().manual_seed(options.seed)
    by_bucket: dict[Bucket, list[_Plan]] = {}
    for p in todo:
        by_bucket.setdefault(p.bucket, []).append(p)
    done = 0
    for bucket, group in by_bucket.items():
        for start in range(0, len(group), options.batch_size):
            batch, pixels = [], []
            for p in group[start : start + options.batch_size]:
                try:
                    pixels.append(
                        _read_frames(_with_video(p, source(p)), bucket, options, generator)
                    )
                    batch.append(p)
                except Ltx2Error as exc:
                    summary.skip(source(p), exc.message)
            if not batch:
                continue
            with torch.inference_mode():
                latents = _encode(encoder, torch.stack(pixels).to(options.device, dtype), options)
            for p, latent in zip(batch, latents, strict=True):
                _, f, h, w = latent.shape
                _save(
                    out / folder / p.item.rel,
                    {
                        "latents": latent.to(torch.bfloat16).cpu(),
                        "num_frames": f,
                        "height": h,
                        "width": w,
                        "fps": float(p.fps),
                    },
                )
                summary.count(summary.written, folder)
            done += len(batch)
            report(folder, done, len(todo))
    del encoder


def _with_video(plan: _Plan, path: Path | None) -> _Plan:
    if path == plan.item.video:
        return plan
    item = Item(plan.item.rel, plan.item.caption, path)
    return _Plan(item, plan.bucket, plan.fps, path is not None and path.suffix in IMAGE_SUFFIXES)


def _videos(plans, out, options, summary, report) -> None:
    _video_pass(plans, DIRS["latents"], lambda p: p.item.video, out, options, summary, report)


def _references(plans, out, options, summary, report) -> None:
    _video_pass(plans, DIRS["reference"], lambda p: p.item.reference, out, options, summary, report)


def _audio(items, plans, out, options: Options, summary: Summary, report: ProgressFn) -> None:
    """Audio files, and the soundtrack of every video (unless skipped) for its duration."""
    import torch

    from ltx2cli.media import probe_video, read_audio

    folder = DIRS["audio"]
    jobs: list[tuple[Item, Path, float | None]] = []
    for p in plans:
        if options.skip_audio or p.image or p.item.audio is not None:
            continue
        try:
            has_audio = probe_video(p.item.video).has_audio
        except Ltx2Error:
            has_audio = False
        if has_audio:
            jobs.append((p.item, p.item.video, p.bucket.frames / p.fps))
    jobs += [(i, i.audio, None) for i in items if i.audio is not None]
    jobs = [j for j in jobs if _todo(out, folder, j[0], options, summary)]
    if not jobs:
        return
    from ltx2cli.models.audio_path import waveform_to_latent
    from ltx2cli.models.loading import load_component

    encoder = load_component(
        options.checkpoint, "audio_encoder", dtype=torch.float32, device=options.device
    )
    for i, (item, path, duration) in enumerate(jobs):
        try:
            # At the file's own rate: the audio path resamples with the reference's windowed
            # sinc, not FFmpeg's resampler.
            audio = read_audio(path, None, channels=2, max_duration=duration)
        except Ltx2Error as exc:
            summary.skip(path, exc.message)
            continue
        wave, rate = audio.waveform, audio.sample_rate
        if duration is not None:  # zero-pad a soundtrack shorter than its video
            wave = torch.nn.functional.pad(
                wave, (0, max(0, round(duration * rate) - wave.shape[-1]))
            )
        seconds = wave.shape[-1] / rate
        with torch.inference_mode():
            latent = waveform_to_latent(wave.to(options.device), rate, encoder)[0]
        _save(
            out / folder / item.rel,
            {
                "latents": latent.float().cpu(),
                "num_time_steps": int(latent.shape[1]),
                "frequency_bins": int(latent.shape[2]),
                "duration": float(seconds),
            },
        )
        summary.count(summary.written, folder)
        report(folder, i + 1, len(jobs))
    del encoder


def latent_mask(mask: Any, frames: int, height: int, width: int, scale: tuple[int, int, int]):
    """A grayscale pixel mask `[F, h, w]` in [0, 1] → the binary latent mask `[F', H', W']`:
    nearest resize to the latent grid's pixel size, 32×32 average pooling, max over groups of
    8 frames from frame 0 (zero-padded), > 0.5 (trainer.md §7.5)."""
    import torch
    import torch.nn.functional as F

    st, sh, sw = scale
    pixel_frames = (frames - 1) * st + 1
    x = mask.float()
    if x.shape[0] == 1:  # an image mask holds for every frame
        x = x.expand(pixel_frames, -1, -1)
    x = x[:pixel_frames]
    if x.shape[0] < pixel_frames:
        x = torch.cat([x, x[-1:].expand(pixel_frames - x.shape[0], -1, -1)])
    x = F.interpolate(x.unsqueeze(1), size=(height * sh, width * sw), mode="nearest")
    x = F.avg_pool2d(x, (sh, sw)).squeeze(1)  # (F, H', W')
    x = F.pad(x, (0, 0, 0, 0, 0, frames * st - x.shape[0]))
    x = x.reshape(frames, st, height, width).amax(dim=1)
    return (x > 0.5).float()


def _masks(plans, out, options: Options, summary: Summary, report: ProgressFn) -> None:
    """`video_masks/`: each mask at its clip's latent grid (read from the written latents)."""
    import torch

    from ltx2cli.media import load_image, read_video, to_pixels

    folder = DIRS["mask"]
    todo = [p for p in plans if p.item.mask is not None]
    todo = [p for p in todo if _todo(out, folder, p.item, options, summary)]
    for i, p in enumerate(todo):
        latents = out / DIRS["latents"] / p.item.rel
        if not latents.is_file():
            summary.skip(p.item.mask, "its clip has no latents")
            continue
        meta = torch.load(latents, weights_only=True)
        path = p.item.mask
        try:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                pixels = load_image(path).unsqueeze(0)
            else:
                pixels = to_pixels(read_video(path).frames)
        except Ltx2Error as exc:
            summary.skip(path, exc.message)
            continue
        gray = pixels.float().mean(dim=-1) / 255.0  # (F, h, w)
        scale = _vae_scale(options.checkpoint)
        mask = latent_mask(gray, meta["num_frames"], meta["height"], meta["width"], scale)
        _save(out / folder / p.item.rel, {"mask": mask})
        summary.count(summary.written, folder)
        report(folder, i + 1, len(todo))


def _vae_scale(checkpoint: Path) -> tuple[int, int, int]:
    from ltx2cli.models.checkpoint import read_checkpoint
    from ltx2cli.models.video_vae import VideoVAEConfig

    return VideoVAEConfig.from_checkpoint_config(
        read_checkpoint(checkpoint).require_config()
    ).encoder_scale
