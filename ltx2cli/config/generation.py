"""`GenerationSettings`: every common option of `ltx2 generate` and friends, with the defaults of
the official LTX-2.3 pipelines.

- Flat on purpose: one field = one flag (`--video-cfg-scale`) = one env var
  (`LTX2_VIDEO_CFG_SCALE`) = one preset key (`video_cfg_scale:`).
- Defaults depend on the pipeline (the HQ pipeline has its own size, steps and guidance; the
  distilled one runs without guidance), so `defaults_for(pipeline)` gives them and the
  precedence resolver starts from the chosen pipeline's defaults.
- Defaults target LTX-2.3; `ltx2_0_defaults()` lists what differs for an LTX-2 (19B)
  checkpoint, for fields the user left at their default.
- `__post_init__` validates everything that can be checked before any weights load.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ltx2cli.config.loader import FieldError, check_choice
from ltx2cli.config.resolve import DEFAULT, Resolved
from ltx2cli.versions import GEN_2_3, generation_of_version

Pipeline = Literal["two-stage", "two-stage-hq", "one-stage", "distilled"]
Quantization = Literal["none", "fp8-cast", "fp8-scaled-mm"]
Offload = Literal["none", "model", "block"]
Dtype = Literal["bfloat16", "float16", "float32"]

PIPELINES: tuple[str, ...] = get_args(Pipeline)
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)
OFFLOADS: tuple[str, ...] = get_args(Offload)
DTYPES: tuple[str, ...] = get_args(Dtype)
DEFAULT_PIPELINE = "two-stage"

# Stage 1 runs at half size and the upsampler doubles it, so both sides must halve to a
# multiple of 32.
TWO_STAGE_PIPELINES = frozenset({"two-stage", "two-stage-hq", "distilled"})
# Guided pipelines whose steps and STG block follow the checkpoint generation.
_VERSIONED_PIPELINES = frozenset({"two-stage", "one-stage"})
SIZE_MULTIPLE_ONE_STAGE = 32
SIZE_MULTIPLE_TWO_STAGE = 64
FRAME_STEP = 8  # VAE temporal compression: valid frame counts are 8k+1
MAX_CRF = 51
MAX_SEED = 2**63 - 1
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

# The official pipelines' default negative prompt (ltx-pipelines 1.0.0).
DEFAULT_NEGATIVE_PROMPT = (
    "blurry, out of focus, overexposed, underexposed, low contrast, washed out colors, "
    "excessive noise, grainy texture, poor lighting, flickering, motion blur, distorted "
    "proportions, unnatural skin tones, deformed facial features, asymmetrical face, missing "
    "facial features, extra limbs, disfigured hands, wrong hand count, artifacts around text, "
    "inconsistent perspective, camera shake, incorrect depth of field, background too sharp, "
    "background clutter, distracting reflections, harsh shadows, inconsistent lighting "
    "direction, color banding, cartoonish rendering, 3D CGI look, unrealistic materials, "
    "uncanny valley effect, incorrect ethnicity, wrong gender, exaggerated expressions, wrong "
    "gaze direction, mismatched lip sync, silent or muted audio, distorted voice, robotic "
    "voice, echo, background noise, off-sync audio, incorrect dialogue, added dialogue, "
    "repetitive speech, jittery movement, awkward pauses, incorrect timing, unnatural "
    "transitions, inconsistent framing, tilted camera, flat lighting, inconsistent tone, "
    "cinematic oversaturation, stylized filters, or AI artifacts."
)

GUIDANCE_KEYS = ("cfg_scale", "stg_scale", "stg_blocks", "rescale_scale", "modality_scale")


@dataclass(frozen=True)
class GenerationSettings:
    """Resolved options for one generation. Field defaults are the two-stage LTX-2.3 ones."""

    pipeline: Pipeline = "two-stage"
    model: str = "auto"  # a catalog name, a local path, "demo", or "auto" (the pipeline's own)
    height: int = 1024
    width: int = 1536
    num_frames: int = 121
    frame_rate: float = 24.0
    steps: int = 30
    seed: int = 10
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    # Guidance (MultiModalGuiderParams per modality); neutral values: cfg 1, stg 0,
    # rescale 0, modality 1, skip 0.
    video_cfg_scale: float = 3.0
    video_stg_scale: float = 1.0
    video_stg_blocks: tuple[int, ...] = (28,)
    video_rescale_scale: float = 0.7
    video_modality_scale: float = 3.0  # the reference CLI's --a2v-guidance-scale
    video_skip_step: int = 0
    audio_cfg_scale: float = 7.0
    audio_stg_scale: float = 1.0
    audio_stg_blocks: tuple[int, ...] = (28,)
    audio_rescale_scale: float = 0.7
    audio_modality_scale: float = 3.0  # the reference CLI's --v2a-guidance-scale
    audio_skip_step: int = 0
    audio: bool = True  # False: video only
    enhance_prompt: bool = False
    image_crf: int = 33  # H.264 round trip for conditioning images; 0 skips it
    quantization: Quantization = "none"
    offload: Offload = "none"
    device: str = "auto"
    dtype: Dtype = "bfloat16"

    def __post_init__(self) -> None:
        check_choice("pipeline", self.pipeline, PIPELINES)
        check_choice("quantization", self.quantization, QUANTIZATIONS)
        check_choice("offload", self.offload, OFFLOADS)
        check_choice("dtype", self.dtype, DTYPES)
        if not self.model.strip():
            raise FieldError("model", "model: must not be empty", "use a catalog name or a path")
        if not _DEVICE_PATTERN.match(self.device):
            raise FieldError(
                "device",
                f"device: {self.device!r} is not a device",
                "use auto, cpu, mps, cuda or cuda:N",
            )
        self._check_size("height", self.height)
        self._check_size("width", self.width)
        if self.num_frames < 1 or (self.num_frames - 1) % FRAME_STEP:
            lower = max(1, (self.num_frames - 1) // FRAME_STEP * FRAME_STEP + 1)
            raise FieldError(
                "num_frames",
                f"num_frames: {self.num_frames} is not 8k+1",
                f"use {lower} or {lower + FRAME_STEP}",
            )
        _at_least("frame_rate", self.frame_rate, 0.0, strict=True)
        _at_least("steps", self.steps, 1)
        _at_least("seed", self.seed, 0)
        if self.seed > MAX_SEED:
            raise FieldError("seed", f"seed: {self.seed} is larger than {MAX_SEED}")
        if not 0 <= self.image_crf <= MAX_CRF:
            raise FieldError(
                "image_crf", f"image_crf: {self.image_crf} is outside 0..{MAX_CRF}", "0 skips it"
            )
        for modality in ("video", "audio"):
            for name in ("cfg_scale", "stg_scale", "modality_scale", "skip_step"):
                _at_least(f"{modality}_{name}", getattr(self, f"{modality}_{name}"), 0)
            rescale = getattr(self, f"{modality}_rescale_scale")
            if not 0.0 <= rescale <= 1.0:
                raise FieldError(
                    f"{modality}_rescale_scale",
                    f"{modality}_rescale_scale: {rescale} is outside 0..1",
                    "0 turns rescaling off",
                )
            for block in getattr(self, f"{modality}_stg_blocks"):
                _at_least(f"{modality}_stg_blocks", block, 0)

    def _check_size(self, name: str, value: int) -> None:
        two_stage = self.pipeline in TWO_STAGE_PIPELINES
        multiple = SIZE_MULTIPLE_TWO_STAGE if two_stage else SIZE_MULTIPLE_ONE_STAGE
        if value >= multiple and value % multiple == 0:
            return
        lower = max(multiple, value // multiple * multiple)
        why = f" for the {self.pipeline} pipeline" if two_stage else ""
        raise FieldError(
            name,
            f"{name}: {value} is not a positive multiple of {multiple}{why}",
            f"use {lower} or {lower + multiple}",
        )

    @classmethod
    def defaults_for(cls, pipeline: str = DEFAULT_PIPELINE) -> dict[str, Any]:
        """Every field's built-in default when `pipeline` runs."""
        check_choice("pipeline", pipeline, PIPELINES)
        values = {f.name: f.default for f in dataclasses.fields(cls)}
        values.update(_PIPELINE_DEFAULTS[pipeline], pipeline=pipeline)
        return values

    @classmethod
    def layer_defaults(cls, chosen: Mapping[str, Any]) -> dict[str, Any]:
        """Precedence hook: the defaults under the layers, for the pipeline they chose."""
        return cls.defaults_for(chosen.get("pipeline", DEFAULT_PIPELINE))

    @classmethod
    def for_pipeline(cls, pipeline: str, **overrides: Any) -> GenerationSettings:
        return cls(**{**cls.defaults_for(pipeline), **overrides})

    def guidance(self, modality: Literal["video", "audio"]) -> dict[str, Any]:
        """One modality's guider parameters under the reference names (cfg_scale, ...)."""
        check_choice("modality", modality, ("video", "audio"))
        values = {k: getattr(self, f"{modality}_{k}") for k in GUIDANCE_KEYS}
        values["skip_step"] = getattr(self, f"{modality}_skip_step")
        return values

    @property
    def two_stage(self) -> bool:
        return self.pipeline in TWO_STAGE_PIPELINES

    @property
    def duration(self) -> float:
        """Clip length in seconds."""
        return self.num_frames / self.frame_rate


def ltx2_0_defaults() -> dict[str, Any]:
    """Defaults that differ for an LTX-2 (19B) checkpoint in the guided pipelines other than
    HQ (which always uses the 2.3 HQ values): 40 steps and STG on block 29."""
    return {"steps": 40, "video_stg_blocks": (29,), "audio_stg_blocks": (29,)}


def adapt_to_model_version(
    resolved: Resolved[GenerationSettings], version: str
) -> Resolved[GenerationSettings]:
    """Swap in the LTX-2 (19B) defaults for fields the user left at their default, when the
    checkpoint's `model_version` is below 2.3 or unreadable (as the reference does)."""
    if (
        resolved.settings.pipeline not in _VERSIONED_PIPELINES
        or generation_of_version(version) == GEN_2_3
    ):
        return resolved
    changes = {
        k: v for k, v in ltx2_0_defaults().items() if resolved.sources.get(k, DEFAULT) == DEFAULT
    }
    settings = dataclasses.replace(resolved.settings, **changes)
    return dataclasses.replace(resolved, settings=settings)


def _at_least(name: str, value: float, low: float, *, strict: bool = False) -> None:
    if value > low or (not strict and value == low):
        return
    bound = f"greater than {low:g}" if strict else f"at least {low:g}"
    raise FieldError(name, f"{name}: {value} must be {bound}")


_NO_GUIDANCE = {
    f"{m}_{k}": v
    for m in ("video", "audio")
    for k, v in {
        "cfg_scale": 1.0,
        "stg_scale": 0.0,
        "stg_blocks": (),
        "rescale_scale": 0.0,
        "modality_scale": 1.0,
        "skip_step": 0,
    }.items()
}

_PIPELINE_DEFAULTS: dict[str, dict[str, Any]] = {
    "two-stage": {},
    "two-stage-hq": {
        "height": 1088,
        "width": 1920,
        "steps": 15,
        "video_stg_scale": 0.0,
        "video_stg_blocks": (),
        "video_rescale_scale": 0.45,
        "audio_stg_scale": 0.0,
        "audio_stg_blocks": (),
        "audio_rescale_scale": 1.0,
    },
    "one-stage": {"height": 512, "width": 768},
    # Fixed 8-step distilled schedule, positive prompt only: no guidance passes.
    "distilled": {"steps": 8, **_NO_GUIDANCE},
}
