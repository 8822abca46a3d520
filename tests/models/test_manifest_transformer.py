"""The transformer, text connectors and text projection built on the meta device carry exactly
the released checkpoints' keys and shapes (raw prefix removed as the official loader does)."""

from __future__ import annotations

import pytest
import torch

from ltx2cli.models.text_connectors import (
    build_audio_connector,
    build_text_projection,
    build_video_connector,
)
from ltx2cli.models.transformer import build_transformer

GENERATIONS = ["ltx-2-19b", "ltx-2.3-22b"]
COMPONENTS = {
    "transformer": (build_transformer, "model.diffusion_model."),
    "video_embeddings_connector": (
        build_video_connector,
        "model.diffusion_model.video_embeddings_connector.",
    ),
    "audio_embeddings_connector": (
        build_audio_connector,
        "model.diffusion_model.audio_embeddings_connector.",
    ),
    "text_embedding_projection": (build_text_projection, "text_embedding_projection."),
}


@pytest.mark.parametrize("component", sorted(COMPONENTS))
@pytest.mark.parametrize("generation", GENERATIONS)
def test_meta_module_matches_manifest(manifest, generation: str, component: str) -> None:
    data = manifest(generation)
    build, prefix = COMPONENTS[component]
    expected = {
        key.removeprefix(prefix): shape
        for key, shape in data["components"][component]["keys"].items()
    }
    with torch.device("meta"):
        module = build(data["config"])
    actual = {key: list(t.shape) for key, t in module.state_dict().items()}

    assert sorted(set(expected) - set(actual)) == []
    assert sorted(set(actual) - set(expected)) == []
    mismatched = {k: (actual[k], expected[k]) for k in expected if actual[k] != expected[k]}
    assert mismatched == {}
    assert all(t.is_meta for t in module.state_dict().values())
