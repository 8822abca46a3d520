"""Every pipeline ltx2 knows, one `PipelineSpec` each: the one table config, the catalog and the
CLI read. Torch-free (`ltx2 --help` and `ltx2 models pull --for` import it).

- Requirements are *roles* ("text-encoder", "spatial-upsampler", ...), not file names: the
  catalog says which artifacts of a generation fill each role, and any installed one does.
- `sampling` names the defaults a pipeline starts from (families.py: "guided", "hq",
  "distilled"); `versioned` pipelines take them from the checkpoint's generation, the others
  keep the default generation's (the reference hard-wires the HQ and a2v values).
- Two-stage pipelines run stage 1 at half size and the upsampler doubles it, so height and
  width must halve to the VAE's 32-pixel grid: multiples of 64. One-stage ones need 32.
- `module` is where the pipeline's code lives, imported only when it runs. `options` names
  the pipeline's own option section (its flags, preset block and the settings it adds).
- Adding a pipeline: one entry here plus its module.
"""

from __future__ import annotations

from dataclasses import dataclass

from ltx2cli.errors import UsageError
from ltx2cli.families import GENERATIONS, get_family
from ltx2cli.geometry import SPATIAL_STEP
from ltx2cli.text import did_you_mean

# Roles a catalog entry (or the user's own file) can fill.
CHECKPOINT = "checkpoint"  # the dev (full) transformer + VAEs checkpoint
DISTILLED_CHECKPOINT = "distilled-checkpoint"
TEXT_ENCODER = "text-encoder"
SPATIAL_UPSAMPLER = "spatial-upsampler"  # latent upsampler x2
DISTILLED_LORA = "distilled-lora"  # the stage-2 LoRA for the dev checkpoint
IC_LORA = "ic-lora"
ROLES = (CHECKPOINT, DISTILLED_CHECKPOINT, TEXT_ENCODER, SPATIAL_UPSAMPLER, DISTILLED_LORA, IC_LORA)

SIZE_MULTIPLE_ONE_STAGE = SPATIAL_STEP
SIZE_MULTIPLE_TWO_STAGE = 2 * SPATIAL_STEP  # stage 1 runs at half size


@dataclass(frozen=True)
class PipelineSpec:
    """One pipeline: what it needs, how it starts, where its code is."""

    name: str
    summary: str
    module: str
    roles: tuple[str, ...]
    sampling: str  # the families.py sampling kind its defaults come from
    two_stage: bool
    height: int  # default output size
    width: int
    versioned: bool = True
    options: str | None = None
    generations: tuple[str, ...] = GENERATIONS

    @property
    def size_multiple(self) -> int:
        return SIZE_MULTIPLE_TWO_STAGE if self.two_stage else SIZE_MULTIPLE_ONE_STAGE

    def roles_for(self, generation: str) -> tuple[str, ...]:
        """The roles this pipeline needs filled to run with a checkpoint of `generation`."""
        family = get_family(generation)
        if family.name not in self.generations:
            raise UsageError(
                f"the {self.name} pipeline does not run {family.label} checkpoints",
                f"use generation {' or '.join(self.generations)}",
            )
        return self.roles


_TWO_STAGE_ROLES = (CHECKPOINT, DISTILLED_LORA, SPATIAL_UPSAMPLER, TEXT_ENCODER)
_DISTILLED_ROLES = (DISTILLED_CHECKPOINT, SPATIAL_UPSAMPLER, TEXT_ENCODER)
_BIG, _HQ, _SMALL = (1024, 1536), (1088, 1920), (512, 768)


def _spec(name: str, summary: str, roles, sampling, size, *, two_stage=True, **kw) -> PipelineSpec:
    module = "ltx2cli.pipelines." + name.replace("-", "_")
    return PipelineSpec(name, summary, module, roles, sampling, two_stage, *size, **kw)


PIPELINES: dict[str, PipelineSpec] = {
    s.name: s
    for s in (
        _spec("two-stage", "guided half-size stage, x2 upsample, distilled refine",
              _TWO_STAGE_ROLES, "guided", _BIG),
        _spec("two-stage-hq", "two-stage with the res_2s sampler and the LoRA in both stages",
              _TWO_STAGE_ROLES, "hq", _HQ, versioned=False),
        _spec("one-stage", "one guided stage at full size",
              (CHECKPOINT, TEXT_ENCODER), "guided", _SMALL, two_stage=False),
        _spec("distilled", "distilled checkpoint: 8 + 3 steps, no guidance",
              _DISTILLED_ROLES, "distilled", _BIG),
        _spec("ic-lora", "video-to-video with an IC-LoRA and a reference video",
              (*_DISTILLED_ROLES, IC_LORA), "distilled", _BIG, options="reference-video"),
        _spec("keyframe-interpolation", "a clip through images at chosen frames",
              _TWO_STAGE_ROLES, "guided", _BIG, options="keyframes"),
        _spec("a2v", "video for an input audio track", _TWO_STAGE_ROLES, "guided", _BIG,
              versioned=False, options="input-audio"),
        _spec("retake", "regenerate a time window of an existing video",
              (CHECKPOINT, TEXT_ENCODER), "guided", _SMALL, two_stage=False, options="retake"),
        _spec("upscale", "x2 spatial upscale of a video, refined by the distilled model",
              _DISTILLED_ROLES, "distilled", _BIG, options="source-video"),
        _spec("t2a", "audio only from a prompt", (CHECKPOINT, TEXT_ENCODER), "guided", _SMALL,
              two_stage=False),
    )
}  # fmt: skip
NAMES: tuple[str, ...] = tuple(PIPELINES)
DEFAULT_PIPELINE = "two-stage"


def get_pipeline(name: str) -> PipelineSpec:
    try:
        return PIPELINES[name]
    except KeyError:
        raise UsageError(
            f"unknown pipeline '{name}'{did_you_mean(name, PIPELINES)}",
            f"choose one of: {', '.join(PIPELINES)}",
        ) from None
