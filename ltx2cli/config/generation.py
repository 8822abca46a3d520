"""`GenerationSettings`: every common option of `ltx2 generate` and friends.

- Flat on purpose: one field = one flag (`--video-cfg-scale`) = one env var
  (`LTX2_VIDEO_CFG_SCALE`) = one preset key (`video_cfg_scale:`).
- Defaults come from the pipeline registry (size) and the generation record (steps, guidance,
  image CRF for the pipeline's sampling kind): `defaults_for(pipeline)` gives them for the
  default generation, and the precedence resolver starts from the chosen pipeline's defaults.
  `adapt_to_model_version` swaps in the checkpoint generation's values for fields the user
  left at their default.
- `__post_init__` validates everything that can be checked before any weights load.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ltx2cli.compat import COMPATS
from ltx2cli.config.loader import FieldError, check_choice
from ltx2cli.config.resolve import DEFAULT, Resolved
from ltx2cli.errors import ParameterError
from ltx2cli.families import DEFAULT_FAMILY, Family, family_of_version
from ltx2cli.geometry import check_frame_count, check_size
from ltx2cli.pipelines import registry

Pipeline = Literal[registry.NAMES]  # type: ignore[valid-type]
Quantization = Literal["none", "fp8-cast", "fp8-scaled-mm"]
Offload = Literal["none", "model", "block"]
Dtype = Literal["bfloat16", "float16", "float32"]

PIPELINES: tuple[str, ...] = registry.NAMES
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)
OFFLOADS: tuple[str, ...] = get_args(Offload)
DTYPES: tuple[str, ...] = get_args(Dtype)
COMPAT_NAMES: tuple[str, ...] = tuple(COMPATS)
DEFAULT_PIPELINE = registry.DEFAULT_PIPELINE
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
MODALITIES = ("video", "audio")

_SPEC = registry.PIPELINES[DEFAULT_PIPELINE]
_SAMPLING = DEFAULT_FAMILY.defaults(_SPEC.sampling)
_VIDEO, _AUDIO = _SAMPLING.video, _SAMPLING.audio


@dataclass(frozen=True)
class GenerationSettings:
    """Resolved options for one generation. Field defaults are the default pipeline's with the
    default generation's numbers (families.py, pipelines/registry.py)."""

    pipeline: Pipeline = DEFAULT_PIPELINE
    model: str = "auto"  # a catalog name, a local path, "demo", or "auto" (the pipeline's own)
    height: int = _SPEC.height
    width: int = _SPEC.width
    num_frames: int = 121
    frame_rate: float = 24.0
    steps: int = _SAMPLING.steps
    seed: int = 10
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    # Guidance (the multimodal guider's parameters per modality); neutral values: cfg 1,
    # stg 0, rescale 0, modality 1, skip 0.
    video_cfg_scale: float = _VIDEO.cfg_scale
    video_stg_scale: float = _VIDEO.stg_scale
    video_stg_blocks: tuple[int, ...] = _VIDEO.stg_blocks
    video_rescale_scale: float = _VIDEO.rescale_scale
    video_modality_scale: float = _VIDEO.modality_scale  # the reference CLI's --a2v-guidance-scale
    video_skip_step: int = _VIDEO.skip_step
    audio_cfg_scale: float = _AUDIO.cfg_scale
    audio_stg_scale: float = _AUDIO.stg_scale
    audio_stg_blocks: tuple[int, ...] = _AUDIO.stg_blocks
    audio_rescale_scale: float = _AUDIO.rescale_scale
    audio_modality_scale: float = _AUDIO.modality_scale  # the reference CLI's --v2a-guidance-scale
    audio_skip_step: int = _AUDIO.skip_step
    audio: bool = True  # False: video only
    enhance_prompt: bool = False
    # H.264 round trip of conditioning images; 0 skips it
    image_crf: int = DEFAULT_FAMILY.image_crf
    quantization: Quantization = "none"
    offload: Offload = "none"
    device: str = "auto"
    dtype: Dtype = "bfloat16"
    compat: str = "current"  # which reference release to reproduce (compat.py)

    def __post_init__(self) -> None:
        check_choice("pipeline", self.pipeline, PIPELINES)
        check_choice("quantization", self.quantization, QUANTIZATIONS)
        check_choice("offload", self.offload, OFFLOADS)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("compat", self.compat, COMPAT_NAMES)
        if not self.model.strip():
            raise FieldError("model", "model: must not be empty", "use a catalog name or a path")
        if not _DEVICE_PATTERN.match(self.device):
            raise FieldError(
                "device",
                f"device: {self.device!r} is not a device",
                "use auto, cpu, mps, cuda or cuda:N",
            )
        multiple = self.spec.size_multiple
        why = f"for the {self.pipeline} pipeline" if self.spec.two_stage else ""
        try:
            for name in ("height", "width"):
                check_size(name, getattr(self, name), multiple, why)
            check_frame_count("num_frames", self.num_frames)
        except ParameterError as exc:  # reported as a settings field, with its source
            raise FieldError(exc.key, exc.message, exc.hint) from None
        _at_least("frame_rate", self.frame_rate, 0.0, strict=True)
        _at_least("steps", self.steps, 1)
        _at_least("seed", self.seed, 0)
        if self.seed > MAX_SEED:
            raise FieldError("seed", f"seed: {self.seed} is larger than {MAX_SEED}")
        if not 0 <= self.image_crf <= MAX_CRF:
            raise FieldError(
                "image_crf", f"image_crf: {self.image_crf} is outside 0..{MAX_CRF}", "0 skips it"
            )
        for modality in MODALITIES:
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

    @classmethod
    def defaults_for(
        cls, pipeline: str = DEFAULT_PIPELINE, family: Family = DEFAULT_FAMILY
    ) -> dict[str, Any]:
        """Every field's built-in default when `pipeline` runs a `family` checkpoint."""
        check_choice("pipeline", pipeline, PIPELINES)
        values = {f.name: f.default for f in dataclasses.fields(cls)}
        values.update(_family_defaults(registry.PIPELINES[pipeline], family), pipeline=pipeline)
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
        check_choice("modality", modality, MODALITIES)
        values = {k: getattr(self, f"{modality}_{k}") for k in GUIDANCE_KEYS}
        values["skip_step"] = getattr(self, f"{modality}_skip_step")
        return values

    @property
    def spec(self) -> registry.PipelineSpec:
        return registry.PIPELINES[self.pipeline]

    @property
    def two_stage(self) -> bool:
        return self.spec.two_stage

    @property
    def duration(self) -> float:
        """Clip length in seconds."""
        return self.num_frames / self.frame_rate


def adapt_to_model_version(
    resolved: Resolved[GenerationSettings], version: str | None
) -> Resolved[GenerationSettings]:
    """Swap in the checkpoint generation's defaults (from its `model_version`) for fields the
    user left at their default, in pipelines whose defaults follow the checkpoint."""
    spec = resolved.settings.spec
    if not spec.versioned:
        return resolved
    defaults = _family_defaults(spec, family_of_version(version))
    changes = {k: v for k, v in defaults.items() if resolved.sources.get(k, DEFAULT) == DEFAULT}
    settings = dataclasses.replace(resolved.settings, **changes)
    return dataclasses.replace(resolved, settings=settings)


def _family_defaults(spec: registry.PipelineSpec, family: Family) -> dict[str, Any]:
    """The defaults a pipeline takes from its spec and from one generation's record."""
    sampling = family.defaults(spec.sampling)
    values: dict[str, Any] = {
        "height": spec.height,
        "width": spec.width,
        "steps": sampling.steps,
        "image_crf": family.image_crf,
    }
    for modality in MODALITIES:
        guidance = dataclasses.asdict(getattr(sampling, modality))
        values.update({f"{modality}_{k}": v for k, v in guidance.items()})
    return values


def _at_least(name: str, value: float, low: float, *, strict: bool = False) -> None:
    if value > low or (not strict and value == low):
        return
    bound = f"greater than {low:g}" if strict else f"at least {low:g}"
    raise FieldError(name, f"{name}: {value} must be {bound}")
