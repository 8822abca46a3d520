"""The training config: ltx-trainer's YAML schema (trainer.md §2), strictly checked.

- Every section and field of ltx-trainer 1.2.0 with its defaults, so a config written for one
  tool runs in the other. Models forbid unknown keys; strategies and conditions are unions
  discriminated by `name` / `type`.
- A bad file fails with ONE line naming the file, the dotted key path and the fix
  (`ConfigError`), with a did-you-mean for misspelt keys and choices, before anything loads.
- `--set key=value` overrides edit the parsed YAML before checking; values are YAML scalars
  or flow collections (`--set optimization.steps=10`, `--set lora.target_modules=[to_q]`).
- Checks that need the file system (model file, data folders) are separate
  (`check_paths`): shipped configs validate anywhere, runs fail before loading anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ltx2cli.config.loader import read_yaml
from ltx2cli.errors import ConfigError
from ltx2cli.text import did_you_mean

log = logging.getLogger(__name__)

DEFAULT_NEGATIVE_PROMPT = (
    "blurry, out of focus, overexposed, underexposed, low contrast, washed out colors, excessive "
    "noise, grainy texture, poor lighting, flickering, motion blur, distorted proportions, "
    "unnatural skin tones, deformed facial features, asymmetrical face, missing facial features, "
    "extra limbs, disfigured hands, wrong hand count, artifacts around text, inconsistent "
    "perspective, camera shake, incorrect depth of field, background too sharp, background "
    "clutter, distracting reflections, harsh shadows, inconsistent lighting direction, color "
    "banding, cartoonish rendering, 3D CGI look, unrealistic materials, uncanny valley effect, "
    "incorrect ethnicity, wrong gender, exaggerated expressions, wrong gaze direction, "
    "mismatched lip sync, silent or muted audio, distorted voice, robotic voice, echo, "
    "background noise, off-sync audio, incorrect dialogue, added dialogue, repetitive speech, "
    "jittery movement, awkward pauses, incorrect timing, unnatural transitions, inconsistent "
    "framing, tilted camera, flat lighting, inconsistent tone, cinematic oversaturation, "
    "stylized filters, or AI artifacts."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


Probability = Annotated[float, Field(ge=0.0, le=1.0)]

# -- model, lora -----------------------------------------------------------------------------


class ModelConfig(_Strict):
    model_path: str
    text_encoder_path: str | None = None
    video_vae_path: str | None = None
    audio_vae_path: str | None = None
    training_mode: Literal["lora", "full"] = "lora"
    load_checkpoint: str | None = None

    @model_validator(mode="after")
    def _no_urls(self) -> ModelConfig:
        for name in ("model_path", "text_encoder_path", "video_vae_path", "audio_vae_path"):
            value = getattr(self, name)
            if value and value.startswith(("http://", "https://")):
                raise ValueError(f"{name} must be a local file, not a URL ({value})")
        return self


class LoraConfig(_Strict):
    rank: int = Field(64, ge=2)
    alpha: int = Field(64, ge=1)
    dropout: float = Field(0.0, ge=0.0, le=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["to_k", "to_q", "to_v", "to_out.0"])


# -- training strategies ---------------------------------------------------------------------


class FirstFrameCondition(_Strict):
    type: Literal["first_frame"]
    probability: Probability = 1.0


class PrefixCondition(_Strict):
    type: Literal["prefix"]
    temporal_boundary: int = Field(ge=1)
    probability: Probability = 1.0


class SuffixCondition(_Strict):
    type: Literal["suffix"]
    temporal_boundary: int = Field(ge=1)
    probability: Probability = 1.0


class SpatialCropCondition(_Strict):
    type: Literal["spatial_crop"]
    spatial_region: tuple[int, int, int, int]
    probability: Probability = 1.0


class MaskCondition(_Strict):
    type: Literal["mask"]
    mask_dir: str
    probability: Probability = 1.0


class ReferenceCondition(_Strict):
    type: Literal["reference"]
    latents_dir: str
    probability: Probability = 1.0


Condition = Annotated[
    Union[  # noqa: UP007 - a discriminated union needs the Union form
        FirstFrameCondition,
        PrefixCondition,
        SuffixCondition,
        SpatialCropCondition,
        MaskCondition,
        ReferenceCondition,
    ],
    Field(discriminator="type"),
]


class ModalityConfig(_Strict):
    is_generated: bool
    latents_dir: str
    conditions: list[Condition] = Field(default_factory=list)


class TextToVideoConfig(_Strict):
    name: Literal["text_to_video"] = "text_to_video"
    first_frame_conditioning_p: Probability = 0.1
    with_audio: bool = False
    audio_latents_dir: str = "audio_latents"


class VideoToVideoConfig(_Strict):
    name: Literal["video_to_video"]
    first_frame_conditioning_p: Probability = 0.1
    reference_latents_dir: str = "reference_latents"


class FlexibleConfig(_Strict):
    name: Literal["flexible"]
    video: ModalityConfig | None = None
    audio: ModalityConfig | None = None

    @model_validator(mode="after")
    def _one_generated(self) -> FlexibleConfig:
        if not any(m is not None and m.is_generated for m in (self.video, self.audio)):
            raise ValueError("at least one of video or audio needs is_generated: true")
        if self.audio is not None:
            for c in self.audio.conditions:
                if c.type in ("first_frame", "spatial_crop"):
                    raise ValueError(f"the audio modality cannot use a {c.type} condition")
        return self


Strategy = Annotated[
    Union[TextToVideoConfig, VideoToVideoConfig, FlexibleConfig],  # noqa: UP007
    Field(discriminator="name"),
]


def data_sources(strategy: TextToVideoConfig | VideoToVideoConfig | FlexibleConfig) -> dict:
    """Folder under the data root → the batch key it is loaded as (trainer.md §2.4)."""
    if isinstance(strategy, TextToVideoConfig):
        sources = {"latents": "latents", "conditions": "conditions"}
        if strategy.with_audio:
            sources[strategy.audio_latents_dir] = "audio_latents"
        return sources
    if isinstance(strategy, VideoToVideoConfig):
        return {
            "latents": "latents",
            "conditions": "conditions",
            strategy.reference_latents_dir: "ref_latents",
        }
    sources = {"conditions": "conditions"}
    for name, modality in (("video", strategy.video), ("audio", strategy.audio)):
        if modality is None:
            continue
        sources[modality.latents_dir] = f"{name}_latents"
        for c in modality.conditions:
            if isinstance(c, ReferenceCondition):
                sources[c.latents_dir] = c.latents_dir
            elif isinstance(c, MaskCondition):
                sources[c.mask_dir] = c.mask_dir
    return sources


# -- optimization, acceleration, data --------------------------------------------------------


class OptimizationConfig(_Strict):
    learning_rate: float = Field(5e-4, gt=0)
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(2, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_grad_norm: float = Field(1.0, ge=0)
    optimizer_type: Literal["adamw", "adamw8bit"] = "adamw"
    scheduler_type: Literal[
        "constant", "linear", "cosine", "cosine_with_restarts", "polynomial", "step"
    ] = "linear"
    scheduler_params: dict[str, Any] = Field(default_factory=dict)
    enable_gradient_checkpointing: bool = False


class AccelerationConfig(_Strict):
    mixed_precision_mode: Literal["no", "fp16", "bf16"] | None = "bf16"
    quantization: (
        Literal["int8-quanto", "int4-quanto", "int2-quanto", "fp8-quanto", "fp8uz-quanto"] | None
    ) = None
    load_text_encoder_in_8bit: bool = False
    offload_optimizer_during_validation: bool = False


class DataConfig(_Strict):
    preprocessed_data_root: str
    num_dataloader_workers: int = Field(2, ge=0)


# -- validation ------------------------------------------------------------------------------


class _Media(_Strict):
    video: str | None = None
    audio: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> _Media:
        if (self.video is None) == (self.audio is None):
            raise ValueError(f"a {self.type} condition needs exactly one of video or audio")
        return self


class ValFirstFrame(_Strict):
    type: Literal["first_frame"]
    image_or_video: str


class ValPrefix(_Media):
    type: Literal["prefix"]
    num_frames: int | None = Field(None, ge=1)
    duration: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _frames(self) -> ValPrefix:
        if self.video is not None and self.num_frames is not None and (self.num_frames - 1) % 8:
            raise ValueError(f"a video prefix needs 8k+1 frames, got num_frames {self.num_frames}")
        return self


class ValSuffix(_Media):
    type: Literal["suffix"]
    num_frames: int | None = Field(None, ge=1)
    duration: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _frames(self) -> ValSuffix:
        if self.video is not None and self.num_frames is not None and self.num_frames % 8:
            raise ValueError(f"a video suffix needs 8k frames, got num_frames {self.num_frames}")
        return self


class ValSpatialCrop(_Strict):
    type: Literal["spatial_crop"]
    video: str
    spatial_region: tuple[int, int, int, int]


class ValMask(_Media):
    type: Literal["mask"]
    mask: str


class ValReference(_Media):
    type: Literal["reference"]
    downscale_factor: int = Field(1, ge=1)
    temporal_scale_factor: int = Field(1, ge=1)
    include_in_output: bool = False


class ValVideoToAudio(_Strict):
    type: Literal["video_to_audio"]
    video: str


class ValAudioToVideo(_Strict):
    type: Literal["audio_to_video"]
    audio: str


ValidationCondition = Annotated[
    Union[  # noqa: UP007
        ValFirstFrame,
        ValPrefix,
        ValSuffix,
        ValSpatialCrop,
        ValMask,
        ValReference,
        ValVideoToAudio,
        ValAudioToVideo,
    ],
    Field(discriminator="type"),
]


def _targets(c: Any) -> str:
    """Which modality a validation condition writes into."""
    if c.type in ("first_frame", "spatial_crop"):
        return "video"
    if c.type in ("video_to_audio", "audio_to_video"):
        return "frozen"
    return "video" if c.video is not None else "audio"


class ValidationSample(_Strict):
    prompt: str
    conditions: list[ValidationCondition] = Field(default_factory=list)
    video_dims: tuple[int, int, int] | None = None
    seed: int | None = None

    @model_validator(mode="after")
    def _frozen_rules(self) -> ValidationSample:
        kinds = {c.type for c in self.conditions}
        if {"video_to_audio", "audio_to_video"} <= kinds:
            raise ValueError("video_to_audio and audio_to_video cannot be used together")
        for frozen, modality in (("video_to_audio", "video"), ("audio_to_video", "audio")):
            if frozen in kinds and any(_targets(c) == modality for c in self.conditions):
                raise ValueError(f"with {frozen}, no other condition may target {modality}")
        return self


class ValidationConfig(_Strict):
    samples: list[ValidationSample] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    images: list[str] | None = None
    reference_videos: list[str] | None = None
    reference_downscale_factor: int = Field(1, ge=1)
    video_dims: tuple[int, int, int] = (960, 544, 89)
    frame_rate: float = Field(24.0, gt=0)
    seed: int = 42
    inference_steps: int = Field(30, gt=0)
    interval: int | None = Field(100, ge=1)
    video_cfg_scale: float = Field(3.0, ge=1)
    audio_cfg_scale: float = Field(7.0, ge=1)
    video_stg_scale: float = Field(1.0, ge=0)
    audio_stg_scale: float = Field(1.0, ge=0)
    stg_blocks: list[int] | None = Field(default_factory=lambda: [28])
    guidance_rescale: float = Field(0.7, ge=0, le=1)
    video_modality_guidance_scale: float = Field(3.0, ge=1)
    audio_modality_guidance_scale: float = Field(3.0, ge=1)
    generate_audio: bool = True
    generate_video: bool = True
    skip_initial_validation: bool = False
    include_reference_in_output: bool = False

    @model_validator(mode="before")
    @classmethod
    def _legacy_guidance(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if "guidance_scale" in data:
            mixed = {"video_cfg_scale", "audio_cfg_scale"} & set(data)
            if mixed:
                raise ValueError(f"guidance_scale (legacy) cannot be mixed with {min(mixed)}")
            scale = data.pop("guidance_scale")
            data["video_cfg_scale"] = data["audio_cfg_scale"] = scale
        if "stg_scale" in data or "stg_mode" in data:
            scale = data.pop("stg_scale", 1.0)
            mode = data.pop("stg_mode", "stg_av")
            if mode not in ("stg_av", "stg_v"):
                raise ValueError(f"stg_mode {mode!r} is not one of stg_av, stg_v")
            data["video_stg_scale"] = scale
            data["audio_stg_scale"] = scale if mode == "stg_av" else 0.0
        return data

    @model_validator(mode="after")
    def _legacy_prompts(self) -> ValidationConfig:
        if self.images is not None and len(self.images) != len(self.prompts):
            raise ValueError(
                f"images has {len(self.images)} entries for {len(self.prompts)} prompts"
            )
        if self.reference_videos is not None and len(self.reference_videos) != len(self.prompts):
            raise ValueError(
                f"reference_videos has {len(self.reference_videos)} entries "
                f"for {len(self.prompts)} prompts"
            )
        if self.prompts and not self.samples:
            samples = []
            for i, prompt in enumerate(self.prompts):
                conditions: list[Any] = []
                if self.images is not None:
                    conditions.append(
                        ValFirstFrame(type="first_frame", image_or_video=self.images[i])
                    )
                if self.reference_videos is not None:
                    conditions.append(
                        ValReference(
                            type="reference",
                            video=self.reference_videos[i],
                            downscale_factor=self.reference_downscale_factor,
                            include_in_output=self.include_reference_in_output,
                        )
                    )
                samples.append(ValidationSample(prompt=prompt, conditions=conditions))
            self.samples = samples
        if self.interval is not None and not (self.generate_video or self.generate_audio):
            raise ValueError("generate_video and generate_audio cannot both be false")
        return self


# -- checkpoints, hub, flow matching, wandb --------------------------------------------------


class CheckpointsConfig(_Strict):
    interval: int | None = Field(None, ge=1)
    keep_last_n: int = Field(1, ge=-1)
    precision: Literal["bfloat16", "float32"] = "bfloat16"
    no_resume: bool = False
    save_training_state: Literal["full", "minimal", "off"] = "minimal"


class HubConfig(_Strict):
    push_to_hub: bool = False
    hub_model_id: str | None = None

    @model_validator(mode="after")
    def _needs_id(self) -> HubConfig:
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("push_to_hub needs hub_model_id (e.g. your-name/my-lora)")
        return self


class FlowMatchingConfig(_Strict):
    timestep_sampling_mode: Literal["uniform", "shifted_logit_normal"] = "shifted_logit_normal"
    timestep_sampling_params: dict[str, Any] = Field(default_factory=dict)


class WandbConfig(_Strict):
    enabled: bool = False
    project: str = "ltxv-trainer"
    entity: str | None = None
    tags: list[str] = Field(default_factory=list)
    log_validation_videos: bool = True


# -- top level -------------------------------------------------------------------------------


class TrainConfig(_Strict):
    model: ModelConfig
    lora: LoraConfig | None = None
    training_strategy: Strategy = Field(default_factory=TextToVideoConfig)
    optimization: OptimizationConfig = Field(default_factory=OptimizationConfig)
    acceleration: AccelerationConfig = Field(default_factory=AccelerationConfig)
    data: DataConfig
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    checkpoints: CheckpointsConfig = Field(default_factory=CheckpointsConfig)
    hub: HubConfig = Field(default_factory=HubConfig)
    flow_matching: FlowMatchingConfig = Field(default_factory=FlowMatchingConfig)
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    seed: int = 42
    output_dir: str = "outputs"

    @model_validator(mode="before")
    @classmethod
    def _default_strategy_name(cls, data: Any) -> Any:
        # A strategy mapping without `name` means text_to_video (the reference default).
        if isinstance(data, Mapping):
            strategy = data.get("training_strategy")
            if isinstance(strategy, Mapping) and "name" not in strategy:
                data = {**data, "training_strategy": {"name": "text_to_video", **strategy}}
        return data

    @model_validator(mode="after")
    def _cross_section(self) -> TrainConfig:
        strategy = self.training_strategy
        if self.model.training_mode == "lora" and self.lora is None:
            raise ValueError("training_mode lora needs a lora section (rank, alpha, ...)")
        if isinstance(strategy, VideoToVideoConfig):
            if self.model.training_mode != "lora":
                raise ValueError("the video_to_video strategy needs training_mode lora")
            has_reference = any(
                c.type == "reference" for s in self.validation.samples for c in s.conditions
            )
            if self.validation.interval is not None and not has_reference:
                raise ValueError(
                    "video_to_video validation needs reference conditions in validation samples"
                )
        if self.acceleration.quantization is not None and self.model.training_mode == "full":
            raise ValueError("quantization works with training_mode lora only")
        return self

    @property
    def sources(self) -> dict[str, str]:
        return data_sources(self.training_strategy)


# -- loading ---------------------------------------------------------------------------------


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read, override (`key=value`) and check a training config; one-line `ConfigError`s."""
    data = read_yaml(path)
    for item in overrides:
        apply_override(data, item)
    return parse_config(data, source=str(path))


def parse_config(data: Mapping[str, Any], *, source: str = "") -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise _one_line(exc, data, source) from None


def apply_override(data: dict[str, Any], item: str) -> None:
    """Set `a.b.c=value` in nested `data`; the value is read as YAML (`10`, `true`, `[a, b]`)."""
    import yaml

    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"--set {item!r}: expected KEY=VALUE", "e.g. --set optimization.steps=100"
        )
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    node: Any = data
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[_index(node, part, parts[: i + 1])]
            continue
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, (dict, list)):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"--set {key}: {where} is a value, not a section")
        node = child
    last = parts[-1]
    if isinstance(node, list):
        node[_index(node, last, parts)] = value
    else:
        node[last] = value


def _index(node: list, part: str, parts: list[str]) -> int:
    where = ".".join(parts)
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {where}: no item {part} in a list of {len(node)}")
    return int(part)


_STRATEGY_TAGS = {"text_to_video", "video_to_video", "flexible"}


def _step(annotation: Any, step: Any) -> Any:
    """The type that pydantic's loc `step` leads to from `annotation` (None if unknown)."""
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _step(args[0], step)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(step) if isinstance(step, str) else None
        return None if field is None else field.annotation
    if origin in (list, tuple):
        return args[0] if isinstance(step, int) else None
    members = [a for a in args if a is not type(None)]
    for m in members:  # a discriminated union: the step is the tag
        for name in ("type", "name"):
            field = getattr(m, "model_fields", {}).get(name)
            if field is not None and step in typing.get_args(field.annotation):
                return m
    return _step(members[0], step) if len(members) == 1 else None


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model class at pydantic's `loc` (union tags included), or None."""
    current: Any = TrainConfig
    for step in loc:
        if str(step).startswith(("function-", "tagged-union")):
            continue
        current = _step(current, step)
        if current is None:
            return None
    while not (isinstance(current, type) and issubclass(current, BaseModel)):
        import typing

        members = [a for a in typing.get_args(current) if a is not type(None)]
        if len(members) != 1:
            return None
        current = members[0]
    return current


def _dotted(loc: Sequence[Any], tags: set[str]) -> str:
    """`('validation', 'samples', 0, 'conditions', 1, 'prefix', 'num_frames')` →
    `validation.samples[0].conditions[1].num_frames` (union tags dropped)."""
    text = ""
    for step in loc:
        if isinstance(step, int):
            text += f"[{step}]"
        elif step in tags or str(step).startswith(("function-", "tagged-union")):
            continue
        else:
            text += f".{step}" if text else str(step)
    return text


def _all_tags() -> set[str]:
    import typing

    tags = set(_STRATEGY_TAGS)
    for union in (Condition, ValidationCondition):
        for member in typing.get_args(typing.get_args(union)[0]):
            tags.update(typing.get_args(member.model_fields["type"].annotation))
    return tags


def _one_line(exc: ValidationError, data: Mapping[str, Any], source: str) -> ConfigError:
    error = exc.errors(include_url=False)[0]
    loc, kind = tuple(error["loc"]), error["type"]
    tags = _all_tags()
    key = _dotted(loc, tags)
    where = f"{source}: " if source else ""
    fix = f"fix it in {source or 'the config'} or override it with --set {key or 'KEY'}=VALUE"
    value = error.get("input")
    if kind == "extra_forbidden":
        name = str(loc[-1])
        model = _model_at(loc[:-1])
        valid = list(model.model_fields) if model is not None else []
        hint = ("valid keys here: " + ", ".join(valid)) if valid else None
        return ConfigError(f"{where}unknown key '{key}'" + did_you_mean(name, valid), hint)
    if kind == "missing":
        return ConfigError(f"{where}missing required key '{key}'", f"add {key} to the config")
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        choices = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag_key = f"{key}.{ctx.get('discriminator', 'type').strip(chr(39))}".lstrip(".")
        return ConfigError(
            f"{where}{tag_key}: {ctx.get('tag')!r} is not one of {', '.join(choices)}"
            + did_you_mean(str(ctx.get("tag")), choices),
            fix,
        )
    if kind == "union_tag_not_found":
        field = str(error.get("ctx", {}).get("discriminator", "type")).strip("'")
        return ConfigError(f"{where}{key}: missing '{field}'", f"add {field}: to {key}")
    if kind in ("literal_error", "enum"):
        expected = str(error.get("ctx", {}).get("expected", ""))
        choices = [c.strip(" '") for c in expected.replace(" or ", ",").split(",") if c.strip()]
        return ConfigError(
            f"{where}{key}: {value!r} is not one of {', '.join(choices)}"
            + did_you_mean(str(value), choices),
            fix,
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error":  # a rule across fields: no single key to --set
        return ConfigError(
            f"{where}{key + ': ' if key else ''}{message}", f"fix it in {source or 'the config'}"
        )
    shown = value if not isinstance(value, (dict, list)) else type(value).__name__
    return ConfigError(f"{where}{key}: {message.lower()}, got {shown!r}", fix)


# -- environment checks ----------------------------------------------------------------------


def data_root(config: TrainConfig) -> Path:
    """`data.preprocessed_data_root`, or its `.precomputed/` subfolder when it has one."""
    root = Path(config.data.preprocessed_data_root).expanduser()
    return root / ".precomputed" if (root / ".precomputed").is_dir() else root


def check_paths(config: TrainConfig, *, source: str = "") -> None:
    """What the reference checks on disk at parse time: the data folders and the model files."""
    where = f"{source}: " if source else ""
    root = Path(config.data.preprocessed_data_root).expanduser()
    if not root.is_dir():
        raise ConfigError(
            f"{where}data.preprocessed_data_root: no such folder: {root}",
            "run `ltx2 preprocess DATA -o DIR` first and point this at DIR",
        )
    base = data_root(config)
    for folder in config.sources:
        if not (base / folder).is_dir():
            raise ConfigError(
                f"{where}data.preprocessed_data_root: {base} has no '{folder}' folder "
                "that the training strategy reads",
                "preprocess the matching inputs, or change the strategy's folder names",
            )
    for name in ("video_vae_path", "audio_vae_path"):
        value = getattr(config.model, name)
        if value is not None and not Path(value).expanduser().is_file():
            raise ConfigError(f"{where}model.{name}: no such file: {value}")
