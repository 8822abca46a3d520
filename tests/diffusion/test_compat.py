"""The compat setting: two named records, an unknown name is a one-line usage error."""

from __future__ import annotations

import dataclasses

import pytest

from ltx2cli.compat import CURRENT, V1_0_0, get_compat
from ltx2cli.errors import UsageError


@pytest.mark.parametrize(("name", "record"), [("current", CURRENT), ("1.0.0", V1_0_0)])
def test_compat_names_select_their_records(name, record):
    assert get_compat(name) is record and record.name == name


def test_every_switch_differs_between_the_releases():
    switches = [field.name for field in dataclasses.fields(CURRENT) if field.name != "name"]
    same = [name for name in switches if getattr(CURRENT, name) == getattr(V1_0_0, name)]
    assert same == []


def test_unknown_compat_names_the_value_and_the_choices():
    with pytest.raises(UsageError) as error:
        get_compat("1.1")
    assert "unknown compat '1.1'" in str(error.value) and "current, 1.0.0" in str(error.value)
