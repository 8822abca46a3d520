"""Generations and checkpoint versions: one vocabulary for every layer."""

from __future__ import annotations

import pytest

from ltx2cli.errors import UsageError
from ltx2cli.versions import (
    GEN_2_0,
    GEN_2_3,
    generation_of_version,
    normalize_generation,
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
        ("2.4", (2, 4), GEN_2_3),
        ("3", (3,), GEN_2_3),
        ("dev", (), GEN_2_0),
    ],
)
def test_model_versions_map_to_generations(version, parsed, generation):
    assert parse_model_version(version) == parsed
    assert generation_of_version(version) == generation


@pytest.mark.parametrize(
    ("typed", "generation"),
    [("2", GEN_2_0), ("2.0", GEN_2_0), ("19B", GEN_2_0), ("2.3", GEN_2_3), (" 22b ", GEN_2_3)],
)
def test_user_generation_aliases(typed, generation):
    assert normalize_generation(typed) == generation


def test_unknown_generation_is_a_usage_error():
    with pytest.raises(UsageError, match=r"unknown generation '2\.5'"):
        normalize_generation("2.5")
