"""What one generation is asked to do, before anything is resolved or loaded. Torch-free.

- `ImageInput` is one `--image PATH[@FRAME[:STRENGTH[:CRF]]]`: the pixel frame it conditions
  (0: the first latent frame is replaced; later frames append a keyframe guide), how strongly,
  and the H.264 CRF of its round trip (None: the settings' `image_crf`).
- `LoraInput` is one `--lora NAME_OR_PATH[:STRENGTH]`.
- `Job` is a prompt, the resolved settings with where each value came from, those inputs, the
  other model roles (`--distilled-lora`, `--upsampler`, `--text-encoder`) and the output path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ltx2cli.config.generation import MAX_CRF, GenerationSettings
from ltx2cli.errors import UsageError

DEFAULT_DISTILLED_LORA_STRENGTH = 1.0
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")


def _number(text: str, kind: type, what: str, spec: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(
            f"{what} {text!r} in {spec!r} is not a number",
            "write --image PATH[@FRAME[:STRENGTH[:CRF]]], e.g. cat.png@0:1.0:33",
        ) from None
    return value


@dataclass(frozen=True)
class ImageInput:
    path: Path
    frame: int = 0
    strength: float = 1.0
    crf: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.strength) and 0.0 <= self.strength <= 1.0):
            raise UsageError(
                f"--image strength {self.strength} for {self.path.name} is outside 0..1",
                "use e.g. 1.0 (keep the frame) or 0.8",
            )
        if self.frame < 0:
            raise UsageError(f"--image frame {self.frame} is negative", "frames count from 0")
        if self.crf is not None and not 0 <= self.crf <= MAX_CRF:
            raise UsageError(
                f"--image CRF {self.crf} is outside 0..{MAX_CRF}", "0 skips the round trip"
            )

    @classmethod
    def parse(cls, spec: str) -> ImageInput:
        """`PATH[@FRAME[:STRENGTH[:CRF]]]`; an `@` inside the file name is allowed when the
        part after the last `@` is not of that form."""
        head, sep, tail = spec.rpartition("@")
        if not sep or not tail or not tail.split(":")[0].lstrip("-").isdigit():
            return cls(Path(spec).expanduser())
        parts = tail.split(":")
        if len(parts) > 3:
            raise UsageError(
                f"--image {spec!r} has more than FRAME:STRENGTH:CRF after '@'",
                "write --image PATH[@FRAME[:STRENGTH[:CRF]]]",
            )
        frame = int(_number(parts[0], int, "frame", spec))
        strength = float(_number(parts[1], float, "strength", spec)) if len(parts) > 1 else 1.0
        crf = int(_number(parts[2], int, "CRF", spec)) if len(parts) > 2 else None
        return cls(Path(head).expanduser(), frame, strength, crf)

    def to_spec(self) -> str:
        crf = "" if self.crf is None else f":{self.crf}"
        return f"{self.path}@{self.frame}:{self.strength:g}{crf}"


@dataclass(frozen=True)
class LoraInput:
    name: str  # a catalog name, an imported name or a path
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.strength):
            raise UsageError(f"--lora strength {self.strength} is not a number", "use e.g. 0.8")

    @classmethod
    def parse(cls, spec: str) -> LoraInput:
        """`NAME_OR_PATH[:STRENGTH]` (a colon that belongs to the path stays in it)."""
        head, sep, tail = spec.rpartition(":")
        if sep and head:
            try:
                return cls(head, float(tail))
            except ValueError:
                pass
        return cls(spec)

    def to_spec(self) -> str:
        return f"{self.name}:{self.strength:g}"


@dataclass(frozen=True)
class Job:
    """One generation request (settings already resolved and validated)."""

    prompt: str
    settings: GenerationSettings
    output: Path
    sources: dict[str, str] = field(default_factory=dict)
    images: tuple[ImageInput, ...] = ()
    loras: tuple[LoraInput, ...] = ()
    distilled_lora: LoraInput | None = None
    upsampler: str | None = None
    text_encoder: str | None = None
    #: The output containers this kind of job writes (an audio-only job writes audio files).
    OUTPUT_SUFFIXES: ClassVar[tuple[str, ...]] = VIDEO_SUFFIXES

    def check(self, files) -> None:
        """Checks of the job's own inputs against its resolved `files`, before any weights
        load (editing jobs add theirs)."""

    @property
    def seconds(self) -> float:
        """How long the output lasts."""
        return self.settings.duration

    @property
    def pipeline(self) -> str:
        """The pipeline file that runs this job (editing jobs name their own)."""
        return self.settings.pipeline

    def __post_init__(self) -> None:
        if not self.prompt.strip():
            raise UsageError("the prompt is empty", 'pass a prompt, e.g. "a fox runs in snow"')
