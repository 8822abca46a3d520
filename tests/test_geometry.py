"""The VAE grid rule, written once: frame counts 8k+1, sides multiples of 32 (or 64)."""

from __future__ import annotations

import pytest

from ltx2cli.errors import ParameterError
from ltx2cli.geometry import check_frame_count, check_size, snap_frames

VAE_TIME = 8


@pytest.mark.parametrize("k", [0, 1, 15])
def test_frame_counts_8k_plus_1_pass_and_neighbours_name_the_parameter(k):
    check_frame_count("num_frames", VAE_TIME * k + 1)
    with pytest.raises(ParameterError) as info:
        check_frame_count("frames", VAE_TIME * k + 2)
    assert info.value.key == "frames"
    assert info.value.message == f"frames: {VAE_TIME * k + 2} is not 8k+1"
    assert info.value.hint == f"use {VAE_TIME * k + 1} or {VAE_TIME * (k + 1) + 1}"


@pytest.mark.parametrize(
    ("value", "multiple", "hint"),
    [(500, 32, "use 480 or 512"), (16, 32, "use 32 or 64"), (96, 64, "use 64 or 128")],
)
def test_sizes_must_be_positive_multiples(value, multiple, hint):
    with pytest.raises(ParameterError) as info:
        check_size("height", value, multiple, "for the two-stage pipeline")
    assert info.value.message == (
        f"height: {value} is not a positive multiple of {multiple} for the two-stage pipeline"
    )
    assert info.value.hint == hint
    check_size("height", multiple * 3, multiple)


def test_snap_frames_rounds_down_to_8k_plus_1():
    assert [snap_frames(n) for n in (0, 1, 8, 9, 120, 121)] == [1, 1, 1, 9, 113, 121]
