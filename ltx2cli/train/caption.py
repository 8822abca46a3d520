"""`ltx2 caption`: describe clips with a local vision-language model, for training captions.

- Models: the Qwen2.5-VL / Qwen2-VL families from any local Hugging Face model folder, run
  through transformers (`Qwen2_5_VLForConditionalGeneration` / `Qwen2VLForConditionalGeneration`
  with the tokenizer and the PIL image processor, so no torchvision is needed). These models
  see frames only: the caption covers what is visible, and the instruction asks for nothing
  about sound.
- Qwen2.5-Omni hears: a full Omni folder (`qwen2_5_omni`; only its Thinker, the text-writing
  part, is loaded, never the speech talker) or a Thinker saved alone (`qwen2_5_omni_thinker`).
  The clip's soundtrack goes in too (16 kHz mono through the folder's Whisper feature
  extractor, at most its 30 s window), and the instruction asks for the sound: speech quoted,
  music named, silence stated. A clip without a soundtrack is described as silent.
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
HEARING_INSTRUCTION = INSTRUCTION.replace(
    "Describe only what is visible,",
    "You also hear the clip's soundtrack: describe it in the same paragraph, quoting any speech "
    "word for word, naming any music and its mood, and stating plainly when there is no "
    "speech or no music. Write",
)
NO_SOUND = " The clip has no soundtrack: say that it is silent."
OMNI_TYPES = ("qwen2_5_omni", "qwen2_5_omni_thinker")
SUPPORTED_MODEL_TYPES = ("qwen2_5_vl", "qwen2_vl", *OMNI_TYPES)
FORMATS = (".jsonl", ".json", ".csv", ".txt")
DEFAULT_FPS = 2.0
DEFAULT_MAX_FRAMES = 16
DEFAULT_MAX_NEW_TOKENS = 256
IMAGE_PAD = "<|image_pad|>"
OMNI_IMAGE_PAD, OMNI_AUDIO_PAD = "<|IMAGE|>", "<|AUDIO|>"
AUDIO_RATE = 16000  # what the Whisper feature extractor of Qwen2.5-Omni takes

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


def clip_audio(path: Path) -> Any:
    """The soundtrack of `path` as a float32 numpy array at 16 kHz mono; None without one."""
    from ltx2cli.media import probe_video, read_audio

    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
        return None
    if not probe_video(path).has_audio:
        return None
    return read_audio(path, AUDIO_RATE, channels=1).waveform[0].float().numpy()


def _audio_tokens(feature_length: int) -> int:
    """Text positions the Omni audio encoder gives `feature_length` mel frames: a stride-2
    convolution then a stride-2 pooling (the count the Omni processor inserts)."""
    return ((feature_length - 1) // 2 + 1 - 2) // 2 + 1


class Captioner:
    """A loaded vision-language model with its tokenizer and image processor, and for a model
    that hears, its audio feature extractor."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        image_processor: Any,
        max_new_tokens: int,
        feature_extractor: Any = None,
    ):
        self.model, self.tokenizer, self.image_processor = model, tokenizer, image_processor
        self.max_new_tokens = max_new_tokens
        self.feature_extractor = feature_extractor

    @property
    def hears(self) -> bool:
        return self.feature_extractor is not None

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

        dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
        extractor = None
        if config.model_type in OMNI_TYPES:
            from transformers import WhisperFeatureExtractor

            extractor = WhisperFeatureExtractor.from_pretrained(folder)
        if config.model_type == "qwen2_5_vl":
            from transformers import Qwen2_5_VLForConditionalGeneration as model_class
        elif config.model_type == "qwen2_vl":
            from transformers import Qwen2VLForConditionalGeneration as model_class
        else:
            from transformers import Qwen2_5OmniThinkerForConditionalGeneration as model_class
        if config.model_type == "qwen2_5_omni":
            # The Thinker's weights out of the whole Omni folder (no talker, no vocoder).
            config = config.thinker_config
        model = model_class.from_pretrained(folder, config=config, dtype=dtype)
        model = model.to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        processor = Qwen2VLImageProcessorPil.from_pretrained(folder)
        return cls(model, tokenizer, processor, max_new_tokens, extractor)

    def caption(self, frames: list[Any], instruction: str = INSTRUCTION, audio: Any = None) -> str:
        """A caption of `frames` (and, for a model that hears, of `audio`: 16 kHz mono)."""
        import torch

        audio = audio if self.hears else None
        content = [{"type": "image"} for _ in frames]
        if audio is not None:
            content.append({"type": "audio"})
        content.append({"type": "text", "text": instruction})
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        pixels = self.image_processor(images=frames, return_tensors="pt")
        # Each image token stands for its merged patch count (what the processor does).
        merge = self.image_processor.merge_size**2
        counts = (pixels["image_grid_thw"].prod(-1) // merge).tolist()
        text = _expand(text, OMNI_IMAGE_PAD if self.hears else IMAGE_PAD, counts)
        device = next(self.model.parameters()).device
        extra: dict[str, Any] = {}
        if audio is not None:
            features = self.feature_extractor(
                audio,
                sampling_rate=AUDIO_RATE,
                return_attention_mask=True,
                padding="max_length",
                return_tensors="pt",
            )
            length = int(features["attention_mask"].sum())
            text = _expand(text, OMNI_AUDIO_PAD, [_audio_tokens(length)])
            extra = {
                "input_features": features["input_features"].to(device, self.model.dtype),
                "feature_attention_mask": features["attention_mask"].to(device),
            }
        inputs = self.tokenizer(text, return_tensors="pt").to(device)
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                pixel_values=pixels["pixel_values"].to(device, self.model.dtype),
                image_grid_thw=pixels["image_grid_thw"].to(device),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                **extra,
            )
        new = output[0, inputs["input_ids"].shape[1] :]
        return " ".join(self.tokenizer.decode(new, skip_special_tokens=True).split())


def _expand(text: str, token: str, counts: list[int]) -> str:
    """Each `token` the chat template placed, repeated as many times as its input needs."""
    parts = text.split(token)
    if len(parts) != len(counts) + 1:
        raise CheckpointError(
            f"the model's chat template does not place one {token} per input",
            "use the model folder's own chat template (Qwen2.5-VL, Qwen2-VL or Qwen2.5-Omni)",
        )
    return parts[0] + "".join(token * n + p for n, p in zip(counts, parts[1:], strict=True))


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
    instruction: str | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Caption every clip without one in `output`; returns (all captions, failures).
    `instruction` None: the built-in one for what the model perceives."""
    captions = {} if overwrite else read_captions(output)
    todo = [m for m in media if stored_path(m, output) not in captions]
    failures: list[tuple[str, str]] = []
    captioner = captioner_factory() if todo else None
    for i, path in enumerate(todo):
        assert captioner is not None
        try:
            frames = sample_frames(path, fps, max_frames)
            audio = clip_audio(path) if captioner.hears else None
        except Ltx2Error as exc:
            failures.append((str(path), exc.message.removeprefix(f"{path}: ")))
            continue
        asked = instruction or (HEARING_INSTRUCTION if captioner.hears else INSTRUCTION)
        if captioner.hears and audio is None:
            asked += NO_SOUND
        text = captioner.caption(frames, asked, audio)
        if not text:
            failures.append((str(path), "the model returned an empty caption"))
            continue
        captions[stored_path(path, output)] = text
        write_captions(output, captions)
        if progress is not None:
            progress(i + 1, len(todo))
    return captions, failures
