"""LTX-2.5 modules built on the meta device carry exactly the released split files' raw keys
and shapes (prefix removed as the official loader does); manifests in tests/data/manifests."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
import torch

from ltx2cli.models.diffusion_vae import build_diffusion_decoder, raw_decoder_state
from ltx2cli.models.text_connectors import build_audio_connector, build_video_connector
from ltx2cli.models.transformer import build_transformer

MANIFESTS = Path(__file__).resolve().parents[1] / "data" / "manifests"


@cache
def manifest(name: str) -> dict:
    return json.loads((MANIFESTS / f"{name}.json").read_text())


def expected_keys(data: dict, component: str) -> dict[str, list[int]]:
    part = data["components"][component]
    return {k.removeprefix(part["prefix"]): v for k, v in part["keys"].items()}


def assert_same_keys(actual: dict[str, list[int]], expected: dict[str, list[int]]) -> None:
    assert sorted(set(expected) - set(actual)) == []
    assert sorted(set(actual) - set(expected)) == []
    assert {k: (actual[k], v) for k, v in expected.items() if actual[k] != v} == {}


@pytest.mark.parametrize(
    ("component", "build"),
    [
        ("transformer", build_transformer),
        ("video_embeddings_connector", build_video_connector),
        ("audio_embeddings_connector", build_audio_connector),
    ],
)
def test_transformer_file_matches_manifest(component, build) -> None:
    data = manifest("ltx-2.5-22b-transformer")
    with torch.device("meta"):
        module = build(data["config"])
    actual = {k: list(t.shape) for k, t in module.state_dict().items()}
    assert_same_keys(actual, expected_keys(data, component))
    assert (
        sum(t.numel() for t in module.state_dict().values())
        == (data["components"][component]["num_params"])
    )


def test_diffusion_decoder_matches_manifest_raw_layout() -> None:
    data = manifest("ltx-2.5-video-vae")
    with torch.device("meta"):
        decoder = build_diffusion_decoder(data["config"])
    expected = expected_keys(data, "vae_decoder")
    # `type_emb` is in the file but belongs to no module (its shape is unknown: listed as []).
    assert expected.pop("type_emb") == []
    raw = {
        k: list(t.shape)
        for k, t in raw_decoder_state(decoder.state_dict()).items()
        if not k.startswith("per_channel_statistics.")
    }
    assert_same_keys(raw, expected)
    stats = expected_keys(data, "vae_per_channel_statistics")
    assert {k: list(t.shape) for k, t in decoder.per_channel_statistics.state_dict().items()} == {
        k.removeprefix("per_channel_statistics."): v for k, v in stats.items()
    }
    # The manifest counts `type_emb` (listed as a scalar) as one parameter.
    params = sum(p.numel() for p in decoder.parameters())
    assert params + 1 == data["components"]["vae_decoder"]["num_params"]
