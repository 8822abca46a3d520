"""Tiny checkpoints: official layout and metadata, every component loads, exact round trip."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ltx2cli.errors import UsageError
from ltx2cli.models.checkpoint import MONOLITHIC_PREFIXES, read_checkpoint
from ltx2cli.models.loading import component_keys, load_component
from ltx2cli.models.tiny import (
    TINY_COMPONENTS,
    UPSAMPLERS,
    tiny_config,
    tiny_upsampler_config,
    write_tiny_checkpoint,
    write_tiny_upsampler,
)

GENERATIONS = ("2.0", "2.3")
MANIFEST = {"2.0": "ltx-2-19b", "2.3": "ltx-2.3-22b"}
# Components whose key structure (block indices aside) equals the released file's.
SAME_STRUCTURE = {
    "transformer": "transformer",
    "video_connector": "video_embeddings_connector",
    "audio_connector": "audio_embeddings_connector",
    "text_projection": "text_embedding_projection",
    "vocoder": "vocoder",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        g: write_tiny_checkpoint(root / f"tiny-{g}.safetensors", g, seed=3) for g in GENERATIONS
    }


@pytest.mark.parametrize("generation", GENERATIONS)
def test_metadata_is_the_official_nested_config(tiny, generation):
    with safe_open(str(tiny[generation]), framework="pt") as f:
        metadata = f.metadata()
    assert json.loads(metadata["config"]) == tiny_config(generation)
    assert set(json.loads(metadata["config"])) == {
        "transformer",
        "vae",
        "audio_vae",
        "vocoder",
        "scheduler",
    }
    assert metadata.get("model_version") == ("2.3.0" if generation == "2.3" else None)
    info = read_checkpoint(tiny[generation])
    assert info.kind == "monolithic"
    assert info.generation == generation


@pytest.mark.parametrize("generation", GENERATIONS)
def test_every_raw_prefix_of_the_released_file_is_present(tiny, generation):
    keys = read_checkpoint(tiny[generation]).tensors
    assert {p for p in MONOLITHIC_PREFIXES if any(k.startswith(p) for k in keys)} == set(
        MONOLITHIC_PREFIXES
    )
    assert all(k.startswith(MONOLITHIC_PREFIXES) for k in keys)


def _structure(keys) -> set[str]:
    return {re.sub(r"(transformer_blocks|transformer_1d_blocks)\.\d+\.", r"\1.N.", k) for k in keys}


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("component", sorted(SAME_STRUCTURE))
def test_tiny_keeps_every_structural_key_of_its_generation(tiny, manifest, generation, component):
    released = manifest(MANIFEST[generation])["components"][SAME_STRUCTURE[component]]["keys"]
    tiny_keys = component_keys(read_checkpoint(tiny[generation]), component).values()
    assert _structure(tiny_keys) == _structure(released)


def _shape_free(keys) -> set[str]:
    """Keys with every index replaced: the structure regardless of block and layer counts."""
    return {re.sub(r"\.\d+(?=\.)", ".N", k) for k in keys}


@pytest.mark.parametrize("generation", GENERATIONS)
def test_tiny_file_has_every_kind_of_key_of_the_released_file(tiny, manifest, generation):
    """All components, VAEs included: same key kinds as the released file, nothing extra."""
    released = manifest(MANIFEST[generation])["components"]
    released_keys = {k for part in released.values() for k in part["keys"]}
    assert _shape_free(read_checkpoint(tiny[generation]).tensors) == _shape_free(released_keys)


# Config values that only set sizes (widths, heads, depths); everything else is structure.
SIZE_KEYS = {
    "attention_head_dim", "audio_attention_head_dim", "audio_cross_attention_dim",
    "audio_num_attention_heads", "caption_channels", "connector_attention_head_dim",
    "connector_num_attention_heads", "connector_num_layers", "audio_connector_attention_head_dim",
    "audio_connector_num_attention_heads", "cross_attention_dim", "in_channels",
    "num_attention_heads", "num_layers", "out_channels", "decoder_base_channels",
    "latent_channels", "upsample_initial_channel", "ch_mult", "num_res_blocks",
}  # fmt: skip


def _structure_of(value):
    """A config with size values dropped (recursively, block lists included)."""
    if isinstance(value, dict):
        return {k: _structure_of(v) for k, v in value.items() if k not in SIZE_KEYS}
    if isinstance(value, list):
        return [_structure_of(v) for v in value]
    return value


@pytest.mark.parametrize("generation", GENERATIONS)
def test_tiny_config_differs_from_the_released_one_only_in_sizes(manifest, generation):
    released = manifest(MANIFEST[generation])["config"]
    assert _structure_of(tiny_config(generation)) == _structure_of(released)


UPSAMPLER_MANIFESTS = {
    ("2.0", "spatial-x2"): "ltx-2-spatial-upscaler-x2",
    ("2.0", "temporal-x2"): "ltx-2-temporal-upscaler-x2",
    ("2.3", "spatial-x2"): "ltx-2.3-spatial-upscaler-x2",
    ("2.3", "spatial-x1.5"): "ltx-2.3-spatial-upscaler-x1.5",
    ("2.3", "temporal-x2"): "ltx-2.3-temporal-upscaler-x2",
}


@pytest.mark.parametrize(("generation", "kind"), sorted(UPSAMPLER_MANIFESTS))
def test_tiny_upsamplers_match_the_released_structure(tmp_path, manifest, generation, kind):
    m = manifest(UPSAMPLER_MANIFESTS[(generation, kind)])
    path = write_tiny_upsampler(tmp_path / "up.safetensors", kind, generation)
    released = {k for part in m["components"].values() for k in part["keys"]}
    assert _shape_free(read_checkpoint(path).tensors) == _shape_free(released)
    structural = ("spatial_upsample", "temporal_upsample", "spatial_scale", "rational_resampler")
    config = tiny_upsampler_config(kind, generation)
    assert {k: config[k] for k in structural} == {k: m["config"][k] for k in structural}


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("component", TINY_COMPONENTS)
def test_every_component_loads_and_round_trips_exactly(tiny, generation, component):
    path = tiny[generation]
    stored = load_file(str(path))
    module = load_component(path, component)
    mapping = component_keys(read_checkpoint(path), component)
    state = module.state_dict()
    assert state.keys() == mapping.keys()
    for key, value in state.items():
        assert torch.equal(value, stored[mapping[key]]), key
        assert value.dtype == stored[mapping[key]].dtype


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path):
    first = write_tiny_checkpoint(tmp_path / "a.safetensors", "2.0", seed=7)
    again = write_tiny_checkpoint(tmp_path / "b.safetensors", "2.0", seed=7)
    other = write_tiny_checkpoint(tmp_path / "c.safetensors", "2.0", seed=8)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (first, again, other)]
    assert digest[0] == digest[1] != digest[2]


@pytest.mark.parametrize(("generation", "kind"), sorted(UPSAMPLERS))
def test_upsampler_files_have_flat_config_and_load(tmp_path, generation, kind):
    path = write_tiny_upsampler(tmp_path / "up.safetensors", kind, generation)
    info = read_checkpoint(path)
    assert info.kind == "upsampler"
    assert "transformer" not in info.config and info.config["in_channels"] > 0
    stored = load_file(str(path))
    module = load_component(path, "upsampler")
    assert module.state_dict().keys() == stored.keys()
    assert all(torch.equal(v, stored[k]) for k, v in module.state_dict().items())


def test_released_upsampler_variants_are_all_covered():
    assert {k for _, k in UPSAMPLERS} == {"spatial-x2", "spatial-x1.5", "temporal-x2"}
    with pytest.raises(UsageError, match=r"spatial-x1\.5"):
        write_tiny_upsampler("unused.safetensors", "spatial-x1.5", "2.0")


def test_tiny_transformer_forward_is_finite(tiny):
    from ltx2cli.models.transformer import Modality

    config = tiny_config("2.0")["transformer"]
    model = load_component(tiny["2.0"], "transformer", dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    tokens = 3
    start = torch.rand(1, 3, tokens, 1, generator=g)
    video = Modality(
        latent=torch.randn(1, tokens, config["in_channels"], generator=g),
        sigma=torch.tensor([0.5]),
        timesteps=torch.full((1, tokens, 1), 0.5),
        positions=torch.cat([start, start + 1], dim=-1),
        context=torch.randn(1, 4, config["caption_channels"], generator=g),
    )
    out, _ = model(video, None)
    assert out.shape == (1, tokens, config["out_channels"])
    assert torch.isfinite(out).all()
