"""LTX-2.5 modules built on the meta device carry exactly the released split files' raw keys
and shapes (prefix removed as the official loader does); manifests in tests/data/manifests."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
import torch

from ltx2cli.models.audio_vae import build_audio_decoder, build_audio_encoder
from ltx2cli.models.diffusion_vae import (
    build_diffusion_decoder,
    build_diffusion_vae_encoder,
    raw_decoder_state,
)
from ltx2cli.models.text_connectors import (
    build_audio_connector,
    build_text_projection,
    build_video_connector,
)
from ltx2cli.models.transformer import build_transformer
from ltx2cli.models.upsampler import build_upsampler
from ltx2cli.models.video_vae import build_video_decoder
from ltx2cli.models.vocoder import VocoderWithBWE, build_vocoder

MANIFESTS = Path(__file__).resolve().parents[1] / "data" / "manifests"


@cache
def manifest(name: str) -> dict:
    return json.loads((MANIFESTS / f"{name}.json").read_text())


def expected_keys(data: dict, component: str) -> dict[str, list[int]]:
    part = data["components"][component]
    return {k.removeprefix(part["prefix"]): v for k, v in part["keys"].items()}


def shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(t.shape) for k, t in module.state_dict().items()}


def with_stats(data: dict, component: str, stats: str, module_prefix: str) -> dict:
    """A component's keys plus the file's shared latent statistics under `module_prefix`."""
    keys = expected_keys(data, component)
    part = data["components"][stats]
    for key, shape in part["keys"].items():
        keys[module_prefix + key.removeprefix(part["prefix"])] = shape
    return keys


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


@pytest.mark.parametrize("name", ["ltx-2.5-video-vae", "ltx-2.5-video-vae-conv"])
def test_video_encoder_of_both_vae_files_matches_manifest(name) -> None:
    data = manifest(name)
    with torch.device("meta"):
        encoder = build_diffusion_vae_encoder(data["config"])
    expected = with_stats(
        data, "vae_encoder", "vae_per_channel_statistics", "per_channel_statistics."
    )
    assert_same_keys(shapes(encoder), expected)
    assert (
        sum(p.numel() for p in encoder.parameters())
        == (data["components"]["vae_encoder"]["num_params"])
    )


def test_conv_decoder_matches_manifest() -> None:
    data = manifest("ltx-2.5-video-vae-conv")
    with torch.device("meta"):
        decoder = build_video_decoder(data["config"])
    expected = with_stats(
        data, "vae_decoder", "vae_per_channel_statistics", "per_channel_statistics."
    )
    assert_same_keys(shapes(decoder), expected)
    assert (
        sum(p.numel() for p in decoder.parameters())
        == (data["components"]["vae_decoder"]["num_params"])
    )


@pytest.mark.parametrize(
    ("component", "build"),
    [("audio_vae_encoder", build_audio_encoder), ("audio_vae_decoder", build_audio_decoder)],
)
def test_audio_vae_matches_manifest(component, build) -> None:
    data = manifest("ltx-2.5-audio-vae")
    with torch.device("meta"):
        module = build(data["config"])
    expected = with_stats(
        data, component, "audio_vae_per_channel_statistics", "per_channel_statistics."
    )
    assert_same_keys(shapes(module), expected)


def test_vocoder_matches_manifest() -> None:
    data = manifest("ltx-2.5-audio-vae")
    with torch.device("meta"):
        vocoder = build_vocoder(data["config"])
    assert type(vocoder) is VocoderWithBWE
    assert vocoder.output_sampling_rate == 48000
    assert_same_keys(shapes(vocoder), expected_keys(data, "vocoder"))
    assert (
        sum(p.numel() for p in vocoder.parameters())
        == (data["components"]["vocoder"]["num_params"])
    )


@pytest.mark.parametrize("name", ["ltx-2.5-spatial-upscaler-x2", "ltx-2.5-temporal-upscaler-x2"])
def test_upsamplers_match_manifest(name) -> None:
    data = manifest(name)
    with torch.device("meta"):
        upsampler = build_upsampler(data["config"])
    assert_same_keys(shapes(upsampler), expected_keys(data, "upsampler"))
    assert sum(p.numel() for p in upsampler.parameters()) == data["total_params"]


def test_text_projection_matches_manifest() -> None:
    # The manifest assumes a Gemma hidden size of 3840 and 48 layers + embeddings.
    data = manifest("ltx-2.5-text-projection")
    with torch.device("meta"):
        projection = build_text_projection(
            data["config"], gemma_hidden_size=3840, gemma_hidden_states=49
        )
    assert_same_keys(shapes(projection), expected_keys(data, "text_embedding_projection"))


def test_distilled_lora_covers_every_transformer_linear_at_rank_min_450() -> None:
    data = manifest("ltx-2.5-22b-distilled-lora-450")
    with torch.device("meta"):
        model = build_transformer(manifest("ltx-2.5-22b-transformer")["config"])
    expected: dict[str, list[int]] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            rank = min(450, module.in_features, module.out_features)
            expected[f"{name}.lora_A.weight"] = [rank, module.in_features]
            expected[f"{name}.lora_B.weight"] = [module.out_features, rank]
    assert_same_keys(expected, expected_keys(data, "lora"))
