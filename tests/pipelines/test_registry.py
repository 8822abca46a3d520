"""The pipeline registry: the one list of pipelines config, catalog and CLI read.

Facts: two-stage pipelines need sizes divisible by 64 and one-stage ones by 32; the two-stage
family needs a dev checkpoint, the distilled LoRA, the x2 spatial upsampler and Gemma; the
distilled and IC-LoRA pipelines a distilled checkpoint, the upsampler and Gemma.
"""

from __future__ import annotations

import pytest

from ltx2cli.config.generation import PIPELINES as CONFIG_PIPELINES
from ltx2cli.config.generation import GenerationSettings
from ltx2cli.errors import UsageError
from ltx2cli.pipelines.registry import PIPELINES, get_pipeline

TEN = (
    "two-stage",
    "two-stage-hq",
    "one-stage",
    "distilled",
    "ic-lora",
    "keyframe-interpolation",
    "a2v",
    "retake",
    "upscale",
    "t2a",
)
TWO_STAGE_ROLES = ("checkpoint", "distilled-lora", "spatial-upsampler", "text-encoder")


def test_the_registry_lists_the_ten_pipelines_and_config_accepts_exactly_them():
    assert set(PIPELINES) == set(TEN)
    assert set(CONFIG_PIPELINES) == set(TEN)


@pytest.mark.parametrize(
    ("name", "multiple"),
    [("two-stage", 64), ("distilled", 64), ("ic-lora", 64), ("one-stage", 32), ("retake", 32)],
)
def test_size_multiple_and_config_validation_agree(name, multiple):
    assert get_pipeline(name).size_multiple == multiple
    assert GenerationSettings.for_pipeline(name, height=multiple * 3).height == multiple * 3
    with pytest.raises(UsageError, match=f"multiple of {multiple}"):
        GenerationSettings.for_pipeline(name, height=multiple * 3 + multiple // 2)


@pytest.mark.parametrize(
    ("name", "roles"),
    [
        ("two-stage", TWO_STAGE_ROLES),
        ("keyframe-interpolation", TWO_STAGE_ROLES),
        ("a2v", TWO_STAGE_ROLES),
        ("one-stage", ("checkpoint", "text-encoder")),
        ("distilled", ("distilled-checkpoint", "spatial-upsampler", "text-encoder")),
        ("ic-lora", ("distilled-checkpoint", "spatial-upsampler", "text-encoder", "ic-lora")),
    ],
)
def test_roles_follow_the_official_requirements(name, roles):
    assert get_pipeline(name).roles_for("2.3") == roles
    assert get_pipeline(name).roles_for("19b") == roles


def test_ltx_2_5_is_not_runnable_by_any_pipeline_yet():
    with pytest.raises(UsageError, match=r"LTX-2\.5"):
        get_pipeline("distilled").roles_for("2.5")


@pytest.mark.parametrize(
    ("name", "section"),
    [
        ("retake", "retake"),
        ("keyframe-interpolation", "keyframes"),
        ("ic-lora", "reference-video"),
        ("a2v", "input-audio"),
    ],
)
def test_pipelines_with_their_own_inputs_name_an_option_section(name, section):
    assert get_pipeline(name).options == section


def test_module_paths_live_under_the_pipelines_package():
    for spec in PIPELINES.values():
        assert spec.module == "ltx2cli.pipelines." + spec.name.replace("-", "_")


def test_unknown_pipeline_suggests_the_closest():
    with pytest.raises(UsageError, match="did you mean 'two-stage'"):
        get_pipeline("two-stag")
