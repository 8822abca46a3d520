"""config/generation.py repeats the default steps and guidance (config/ stays torch-free);
these tests keep that copy equal to `diffusion.guidance`, field by field."""

from __future__ import annotations

import dataclasses

import pytest

from ltx2cli.config.generation import GenerationSettings, ltx2_0_defaults
from ltx2cli.diffusion.guidance import (
    LTX_2_3_DEFAULTS,
    LTX_2_3_HQ_DEFAULTS,
    LTX_2_DEFAULTS,
    GenerationDefaults,
    GuiderParams,
)

MODALITIES = ("video", "audio")


def config_guidance(settings: GenerationSettings, modality: str) -> dict:
    values = settings.guidance(modality)
    return {**values, "stg_blocks": tuple(values["stg_blocks"])}


def guider_fields(params: GuiderParams) -> dict:
    return dataclasses.asdict(params)


def test_config_exposes_every_guider_field():
    settings = GenerationSettings()
    for modality in MODALITIES:
        assert set(config_guidance(settings, modality)) == set(guider_fields(GuiderParams()))


@pytest.mark.parametrize(
    ("pipeline", "defaults"),
    [
        ("two-stage", LTX_2_3_DEFAULTS),
        ("one-stage", LTX_2_3_DEFAULTS),
        ("two-stage-hq", LTX_2_3_HQ_DEFAULTS),
    ],
)
def test_guided_pipeline_defaults_equal_the_diffusion_defaults(
    pipeline: str, defaults: GenerationDefaults
):
    settings = GenerationSettings.for_pipeline(pipeline)
    assert settings.steps == defaults.steps
    for modality in MODALITIES:
        expected = guider_fields(getattr(defaults, modality))
        assert config_guidance(settings, modality) == expected, modality


def test_ltx2_0_overrides_give_the_ltx2_0_defaults():
    settings = GenerationSettings.for_pipeline("two-stage", **ltx2_0_defaults())
    assert settings.steps == LTX_2_DEFAULTS.steps
    for modality in MODALITIES:
        expected = guider_fields(getattr(LTX_2_DEFAULTS, modality))
        assert config_guidance(settings, modality) == expected, modality


def test_distilled_pipeline_runs_without_guidance():
    settings = GenerationSettings.for_pipeline("distilled")
    for modality in MODALITIES:
        assert config_guidance(settings, modality) == guider_fields(GuiderParams()), modality
