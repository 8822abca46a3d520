"""`ltx2 caption`: describe clips with a local vision-language model, for training captions.

- Models: the Qwen2.5-VL / Qwen2-VL families from any local Hugging Face model folder, run
  through transformers (`Qwen2_5_VLForConditionalGeneration` / `Qwen2VLForConditionalGeneration`
  with the tokenizer and the PIL image processor, so no torchvision is needed). These models
  see frames only: the caption covers what is visible.
- Frames are sampled evenly at `fps` (at most `max_frames`, spread over the whole clip when
  the cap applies) and given to the model as an ordered list of images with our instruction.
- Output (by suffix): JSONL / JSON (objects `{caption, media_path}`), CSV (columns caption,
  media_path) or txt (`<stem>_captions.txt` + `<stem>_paths.txt`), the formats ltx-trainer's
  captioner writes and `ltx2 preprocess` reads. Media paths are stored relative to the output
  file's folder when they are inside it. The file is rewritten atomically after every clip, so
  a stopped run keeps its work, and existing captions are kept unless `overwrite`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ltx2cli.errors import CheckpointError, Ltx2Error, UsageError

log = logging.getLogger(__name__)

INSTRUCTION = (
    "You are shown frames sampled in order from one video clip. Write a single detailed "
    "paragraph of plain prose that describes the clip for training a video model: the main "
    "subjects and their appearance, what they do and how they move, the setting, lighting and "
    "colours, the camera framing and its motion, and how the scene changes from the first frame "
    "to the last. Describe only what is visible, in the present tense, without lists, headings "
    "or opening phrases such as 'The video shows'."
)
SUPPORTED_MODEL_TYPES = ("qwen2_5_vl", "qwen2_vl")
FORMATS = (".jsonl", ".json", ".csv", ".txt")
DEFAULT_FPS = 2.0
DEFAULT_MAX_FRAMES = 16
DEFAULT_MAX_NEW_TOKENS = 256
IMAGE_PAD = "<|image_pad|>"

ProgressFn = Callable[[int, int], None]


def frame_indices(num_frames: int, source_fps: float, fps: float, max_frames: int) -> list[int]:
    """Frames at `fps` from a clip of `num_frames` at `source_fps`; evenly thinned to at most
    `max_frames`."""
    if fps <= 0 or max_frames < 1:
        raise UsageError(f"--fps {fps} and --max-frames {max_frames} must be positive")
    step = max(source_fps / fps, 1.0)
    picked = []
    t = 0.0
    while round(t) < num_frames:
        picked.append(round(t))
        t += step
    picked = list(dict.fromkeys(picked))
    if len(picked) > max_frames:
        picked = [
            picked[round(i * (len(picked) - 1) / (max_frames - 1))] for i in range(max_frames)
        ]
        if max_frames == 1:
            picked = picked[:1]
    return picked


def sample_frames(path: Path, fps: float, max_frames: int) -> list[Any]:
    """PIL images of the frames to show the model (an image file is one frame)."""
    from PIL import Image

    from ltx2cli.media import load_image, read_video, to_pixels

    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
        return [Image.fromarray(load_image(path).numpy())]
    video = read_video(path)
    pixels = to_pixels(video.frames)
    return [
        Image.fromarray(pixels[i].numpy())
        for i in frame_indices(video.num_frames, video.fps, fps, max_frames)
    ]


class Captioner:
    """A loaded vision-language model with its tokenizer and image processor."""

    def __init__(self, model: Any, tokenizer: Any, image_processor: Any, max_new_tokens: int):
        self.model, self.tokenizer, self.image_processor = model, tokenizer, image_processor
        self.max_new_tokens = max_new_tokens

    @classmethod
    def from_pretrained(
        cls,
        folder: Path,
        *,
        device: str = "cpu",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    ) -> Captioner:
        import torch
        from transformers import AutoConfig, AutoTokenizer

        if not (folder / "config.json").is_file():
            raise UsageError(
                f"{folder} is not a Hugging Face model folder (no config.json)",
                "pass the folder of a Qwen2.5-VL model, e.g. Qwen/Qwen2.5-VL-7B-Instruct",
            )
        config = AutoConfig.from_pretrained(folder)
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise CheckpointError(
                f"{folder} holds a {config.model_type!r} model",
                f"ltx2 caption supports {', '.join(SUPPORTED_MODEL_TYPES)} models",
            )
        from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the command shows its own progress

        if config.model_type == "qwen2_5_vl":
            from transformers import Qwen2_5_VLForConditionalGeneration as model_class
        else:
            from transformers import Qwen2VLForConditionalGeneration as model_class
        dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
        model = model_class.from_pretrained(folder, dtype=dtype).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        processor = Qwen2VLImageProcessorPil.from_pretrained(folder)
        return cls(model, tokenizer, processor, max_new_tokens)

    def caption(self, frames: list[Any], instruction: str = INSTRUCTION) -> str:
        import torch

        content = [{"type": "image"} for _ in frames] + [{"type": "text", "text": instruction}]
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        pixels = self.image_processor(images=frames, return_tensors="pt")
        # Each image token stands for its merged patch count (what the processor does).
        merge = self.image_processor.merge_size**2
        counts = (pixels["image_grid_thw"].prod(-1) // merge).tolist()
        parts = text.split(IMAGE_PAD)
        if len(parts) != len(counts) + 1:
            raise CheckpointError(
                "the model's chat template does not place one image token per frame",
                "use a Qwen2.5-VL or Qwen2-VL model folder with its own chat template",
            )
        text = parts[0] + "".join(IMAGE_PAD * n + p for n, p in zip(counts, parts[1:], strict=True))
        device = next(self.model.parameters()).device
        inputs = self.tokenizer(text, return_tensors="pt").to(device)
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                pixel_values=pixels["pixel_values"].to(device, self.model.dtype),
                image_grid_thw=pixels["image_grid_thw"].to(device),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
            )
        new = output[0, inputs["input_ids"].shape[1] :]
        return " ".join(self.tokenizer.decode(new, skip_special_tokens=True).split())


# -- output files ----------------------------------------------------------------------------


def check_output(path: Path) -> None:
    if path.suffix not in FORMATS:
        raise UsageError(
            f"cannot write captions to {path.name}", f"use one of: {', '.join(FORMATS)}"
        )


def _txt_pair(path: Path) -> tuple[Path, Path]:
    stem = path.stem.removesuffix("_captions").removesuffix("_paths")
    return path.with_name(f"{stem}_captions.txt"), path.with_name(f"{stem}_paths.txt")


def read_captions(path: Path) -> dict[str, str]:
    """media_path (as stored) → caption, from an existing output file (empty if none)."""
    from ltx2cli.train.preprocess import read_table

    if path.suffix == ".txt":
        captions, paths = _txt_pair(path)
        if not captions.is_file():
            return {}
        pairs = zip(
            paths.read_text(encoding="utf-8").splitlines(),
            captions.read_text(encoding="utf-8").splitlines(),
            strict=False,
        )
        return dict(pairs)
    if not path.is_file():
        return {}
    return {str(r["media_path"]): str(r["caption"]) for r in read_table(path) if "caption" in r}


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_captions(path: Path, captions: dict[str, str]) -> None:
    rows = [{"caption": c, "media_path": m} for m, c in captions.items()]
    if path.suffix == ".txt":
        names, paths = _txt_pair(path)
        _atomic_write(names, "".join(" ".join(r["caption"].split()) + "\n" for r in rows))
        _atomic_write(paths, "".join(r["media_path"] + "\n" for r in rows))
    elif path.suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["caption", "media_path"])
        writer.writeheader()
        writer.writerows(rows)
        _atomic_write(path, buffer.getvalue())
    elif path.suffix == ".json":
        _atomic_write(path, json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    else:
        _atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def stored_path(media: Path, output: Path) -> str:
    """How a clip is named in the output: relative to the output's folder when inside it."""
    try:
        return str(media.resolve().relative_to(output.resolve().parent))
    except ValueError:
        return str(media.resolve())


def find_media(inputs: Iterable[Path]) -> list[Path]:
    from ltx2cli.train.preprocess import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    found: list[Path] = []
    for given in inputs:
        if given.is_dir():
            found += sorted(
                p
                for p in given.rglob("*")
                if p.suffix.lower() in VIDEO_SUFFIXES + IMAGE_SUFFIXES
                and not p.name.startswith(".")
            )
        elif given.is_file():
            found.append(given)
        else:
            raise UsageError(f"no such file or folder: {given}")
    return list(dict.fromkeys(found))


def caption_all(
    media: list[Path],
    output: Path,
    captioner_factory: Callable[[], Captioner],
    *,
    fps: float = DEFAULT_FPS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    instruction: str = INSTRUCTION,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Caption every clip without one in `output`; returns (all captions, failures)."""
    captions = {} if overwrite else read_captions(output)
    todo = [m for m in media if stored_path(m, output) not in captions]
    failures: list[tuple[str, str]] = []
    captioner = captioner_factory() if todo else None
    for i, path in enumerate(todo):
        try:
            frames = sample_frames(path, fps, max_frames)
        except Ltx2Error as exc:
            failures.append((str(path), exc.message.removeprefix(f"{path}: ")))
            continue
        assert captioner is not None
        text = captioner.caption(frames, instruction)
        if not text:
            failures.append((str(path), "the model returned an empty caption"))
            continue
        captions[stored_path(path, output)] = text
        write_captions(output, captions)
        if progress is not None:
            progress(i + 1, len(todo))
    return captions, failures
