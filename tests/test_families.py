"""The per-generation record: one vocabulary and one set of defaults for every layer.

Expected numbers are the official pipelines' constants: LTX-2 40 steps with STG on block 29,
LTX-2.3 30 steps on block 28, the HQ preset 15 steps with STG off and rescale 0.45 / 1.0,
video cfg 3 / audio cfg 7, STG 1, rescale 0.7, modality 3; image CRF 33, 18 from version 2.4.
"""

from __future__ import annotations

import pytest

from ltx2cli.errors import UsageError
from ltx2cli.families import (
    DEFAULT_GENERATION,
    FAMILIES,
    GEN_2_0,
    GEN_2_3,
    GEN_2_5,
    GENERATIONS,
    family_of_version,
    get_family,
    parse_model_version,
)


@pytest.mark.parametrize(
    ("version", "parsed", "generation"),
    [
        (None, (), GEN_2_0),
        ("", (), GEN_2_0),
        ("2.0.0", (2, 0, 0), GEN_2_0),
        ("2.2.9", (2, 2, 9), GEN_2_0),
        ("2.3.0", (2, 3, 0), GEN_2_3),
        ("2.3-rc2", (2, 3), GEN_2_3),
        ("2.3.rc1", (2, 3), GEN_2_3),
        ("2.4", (2, 4), GEN_2_5),  # the 1.2.0 reference switches its defaults at 2.4
        ("2.5.0", (2, 5, 0), GEN_2_5),
        ("3", (3,), GEN_2_5),
        ("dev", (), GEN_2_0),
        ("v2.3", (), GEN_2_0),  # not numeric: unversioned
    ],
)
def test_model_versions_map_to_generations(version, parsed, generation):
    assert parse_model_version(version) == parsed
    assert family_of_version(version).name == generation


@pytest.mark.parametrize(
    ("typed", "generation"),
    [
        ("2", GEN_2_0),
        ("2.0", GEN_2_0),
        ("19B", GEN_2_0),
        ("2.3", GEN_2_3),
        (" 22b ", GEN_2_3),
        ("2.5", GEN_2_5),
    ],
)
def test_user_generation_aliases(typed, generation):
    assert get_family(typed).name == generation


def test_unknown_generation_is_a_usage_error_listing_the_runnable_ones():
    with pytest.raises(UsageError, match=r"unknown generation '2\.7'") as info:
        get_family("2.7")
    assert "2.0" in info.value.hint and "2.3" in info.value.hint
    assert "2.5" not in info.value.hint


def test_ltx_2_5_is_recorded_but_never_selected_by_default():
    assert GENERATIONS == (GEN_2_0, GEN_2_3)
    assert DEFAULT_GENERATION == GEN_2_3
    assert not FAMILIES[GEN_2_5].runnable


@pytest.mark.parametrize(
    ("generation", "steps", "block", "crf"),
    [(GEN_2_0, 40, 29, 33), (GEN_2_3, 30, 28, 33), (GEN_2_5, 30, 28, 18)],
)
def test_guided_defaults_per_generation(generation, steps, block, crf):
    family = FAMILIES[generation]
    guided = family.defaults("guided")
    assert guided.steps == steps
    assert family.image_crf == crf
    for modality, cfg in (("video", 3.0), ("audio", 7.0)):
        params = getattr(guided, modality)
        assert (params.cfg_scale, params.stg_scale, params.stg_blocks) == (cfg, 1.0, (block,))
        assert (params.rescale_scale, params.modality_scale, params.skip_step) == (0.7, 3.0, 0)


@pytest.mark.parametrize("generation", list(FAMILIES))
def test_hq_and_distilled_defaults_are_the_same_for_every_generation(generation):
    family = FAMILIES[generation]
    hq = family.defaults("hq")
    assert hq.steps == 15
    assert (hq.video.stg_scale, hq.video.stg_blocks, hq.video.rescale_scale) == (0.0, (), 0.45)
    assert (hq.audio.cfg_scale, hq.audio.rescale_scale) == (7.0, 1.0)
    distilled = family.defaults("distilled")
    assert distilled.steps == 8
    for params in (distilled.video, distilled.audio):
        assert (params.cfg_scale, params.stg_scale, params.modality_scale) == (1.0, 0.0, 1.0)


def test_ltx_2_5_distilled_stage_1_is_ancestral_with_its_own_seed_offset():
    family = FAMILIES[GEN_2_5]
    assert family.stage1_sampler == "euler-ancestral"
    assert (family.ancestral_eta, family.ancestral_seed_offset) == (1.0, 10_000)
    assert FAMILIES[GEN_2_3].stage1_sampler == "euler"


def test_unknown_sampling_kind_is_refused():
    with pytest.raises(ValueError, match="sampling kind"):
        FAMILIES[GEN_2_3].defaults("turbo")
