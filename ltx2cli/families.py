"""One record per model generation: every fact that differs between LTX-2, LTX-2.3 and LTX-2.5.
Torch-free, so config, hub, diffusion and models all read the same record.

- A generation is spelled one way everywhere ("2.0", "2.3", "2.5"); users may also type an
  alias ("2", "19b", "22b"). `get_family` turns either into the record.
- Default steps and guidance come per *sampling kind*: "guided" (the multimodal guider the
  two-stage, one-stage, keyframe, a2v and retake pipelines use), "hq" (the res_2s HQ
  pipeline, STG off, the same numbers for every generation) and "distilled" (the fixed
  distilled sigma list with the positive prompt only: every guidance term neutral).
- A checkpoint belongs to the newest generation whose `min_version` its `model_version`
  metadata reaches (`family_of_version`): "-" counts as ".", parsing stops at the first
  non-numeric part, and a missing or unreadable version is below all (LTX-2, as the official
  pipelines decide).
- LTX-2.5 is recorded with its facts but `runnable=False`: nothing selects it by default and
  the model layer refuses its files until its modules exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ltx2cli.errors import UsageError

SAMPLING_KINDS = ("guided", "hq", "distilled")
EULER = "euler"
EULER_ANCESTRAL = "euler-ancestral"


@dataclass(frozen=True)
class Guidance:
    """One modality's multimodal-guider defaults. The field defaults are neutral (one pass):
    cfg 1, STG 0 (on the listed transformer blocks), rescale 0, modality 1, no skipped steps."""

    cfg_scale: float = 1.0
    stg_scale: float = 0.0
    stg_blocks: tuple[int, ...] = ()
    rescale_scale: float = 0.0
    modality_scale: float = 1.0
    skip_step: int = 0


@dataclass(frozen=True)
class Sampling:
    """Default stage-1 step count and per-modality guidance of one sampling kind."""

    steps: int
    video: Guidance = field(default_factory=Guidance)
    audio: Guidance = field(default_factory=Guidance)


@dataclass(frozen=True)
class Family:
    """One model generation.

    `stage1_sampler`: the stepper of the distilled pipeline's first stage ("euler", or
    "euler-ancestral" with eta `ancestral_eta` and its own generator seeded with
    seed + `ancestral_seed_offset`). `metadata_markers`: safetensors metadata keys only this
    generation's files carry. `split_files`: weights ship as one file per component.
    """

    name: str
    label: str  # as the catalog and messages show it
    aliases: tuple[str, ...]
    min_version: tuple[int, ...]
    sampling: Mapping[str, Sampling]
    image_crf: int  # H.264 round trip of conditioning images; 0 skips it
    runnable: bool = True
    text_encoder: str = "Gemma 3 12B"
    stage1_sampler: str = EULER
    ancestral_eta: float = 0.0
    ancestral_seed_offset: int = 0
    metadata_markers: tuple[str, ...] = ()
    split_files: bool = False

    def defaults(self, kind: str) -> Sampling:
        """This generation's defaults for one sampling kind ("guided", "hq", "distilled")."""
        try:
            return self.sampling[kind]
        except KeyError:
            wanted = ", ".join(SAMPLING_KINDS)
            raise ValueError(f"sampling kind must be one of {wanted}, not {kind!r}") from None


# The official pipelines' guider defaults. Every generation shares the scales; they differ in
# steps and in the block whose self-attention the STG pass skips.
_VIDEO = Guidance(cfg_scale=3.0, stg_scale=1.0, rescale_scale=0.7, modality_scale=3.0)
_AUDIO = replace(_VIDEO, cfg_scale=7.0)


def _guided(steps: int, stg_block: int) -> Sampling:
    blocks = (stg_block,)
    return Sampling(steps, replace(_VIDEO, stg_blocks=blocks), replace(_AUDIO, stg_blocks=blocks))


# The HQ pipeline is hard-wired to these (no checkpoint detection): STG off, so three passes.
_HQ = Sampling(
    15,
    replace(_VIDEO, stg_scale=0.0, rescale_scale=0.45),
    replace(_AUDIO, stg_scale=0.0, rescale_scale=1.0),
)
# Eight fixed distilled sigmas, positive prompt only.
_DISTILLED = Sampling(8)

_GUIDED_2_3 = _guided(30, 28)

GEN_2_0 = "2.0"
GEN_2_3 = "2.3"
GEN_2_5 = "2.5"

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            name=GEN_2_0,
            label="LTX-2 (19B)",
            aliases=("2", "19b", "ltx-2"),
            min_version=(),
            sampling={"guided": _guided(40, 29), "hq": _HQ, "distilled": _DISTILLED},
            image_crf=33,
        ),
        Family(
            name=GEN_2_3,
            label="LTX-2.3 (22B)",
            aliases=("22b", "ltx-2.3"),
            min_version=(2, 3),
            sampling={"guided": _GUIDED_2_3, "hq": _HQ, "distilled": _DISTILLED},
            image_crf=33,
        ),
        # The 1.2.0 reference switches to these defaults at model_version 2.4 (2.3's steps and
        # guidance, image CRF 18); its distilled stage 1 draws fresh noise each step.
        Family(
            name=GEN_2_5,
            label="LTX-2.5 (22B)",
            aliases=("ltx-2.5",),
            min_version=(2, 4),
            sampling={"guided": _GUIDED_2_3, "hq": _HQ, "distilled": _DISTILLED},
            image_crf=18,
            runnable=False,
            text_encoder="Gemma 4 12B (bundled fine-tune)",
            stage1_sampler=EULER_ANCESTRAL,
            ancestral_eta=1.0,
            ancestral_seed_offset=10_000,
            metadata_markers=("gemma_source_checkpoint",),
            split_files=True,
        ),
    )
}
#: Generations ltx2 runs, oldest first.
GENERATIONS: tuple[str, ...] = tuple(n for n, f in FAMILIES.items() if f.runnable)
DEFAULT_GENERATION = GEN_2_3
DEFAULT_FAMILY = FAMILIES[DEFAULT_GENERATION]


def get_family(value: str) -> Family:
    """The record for a generation name or alias ("2", "2.0", "19b", "2.3", "22b", "2.5")."""
    text = value.strip().lower()
    for family in FAMILIES.values():
        if text == family.name or text in family.aliases:
            return family
    raise UsageError(f"unknown generation '{value}'", f"use {generation_choices()}")


def generation_choices() -> str:
    """The runnable generations as help and hints write them: "2.0 for LTX-2 (19B), ..."."""
    return ", ".join(f"{n} for {FAMILIES[n].label}" for n in GENERATIONS)


def parse_model_version(model_version: str | None) -> tuple[int, ...]:
    """`model_version` as comparable numbers: "-" counts as ".", parsing stops at the first
    part that is not a plain integer ("2.3.rc1" and "2.3-rc2" → (2, 3)); unset → (), below all."""
    numbers: list[int] = []
    for part in (model_version or "").replace("-", ".").split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def family_of_version(model_version: str | None) -> Family:
    """The newest generation whose `min_version` the checkpoint's `model_version` reaches."""
    version = parse_model_version(model_version)
    reached = [f for f in FAMILIES.values() if version >= f.min_version]
    return max(reached, key=lambda f: f.min_version)
