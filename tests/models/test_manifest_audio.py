"""Audio VAE and vocoder modules built on meta carry exactly the released keys and shapes."""

from __future__ import annotations

import pytest
import torch

from ltx2cli.models.audio_vae import build_audio_decoder, build_audio_encoder
from ltx2cli.models.vocoder import Vocoder, VocoderWithBWE, build_vocoder, vocoder_fixed_buffers

GENERATIONS = ["ltx-2-19b", "ltx-2.3-22b"]
STATS = "audio_vae_per_channel_statistics"
STATS_PREFIX = "audio_vae.per_channel_statistics."
VOCODER_PREFIX = "vocoder."


def _strip(keys: dict[str, list[int]], prefix: str, new: str = "") -> dict[str, list[int]]:
    assert all(k.startswith(prefix) for k in keys)
    return {new + k[len(prefix) :]: shape for k, shape in keys.items()}


def _shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", GENERATIONS)
@pytest.mark.parametrize(
    ("component", "build"),
    [("audio_vae_encoder", build_audio_encoder), ("audio_vae_decoder", build_audio_decoder)],
)
def test_audio_vae_keys_and_shapes_match_manifest(manifest, name, component, build):
    m = manifest(name)
    part = m["components"][component]
    expected = _strip(part["keys"], part["prefix"])
    expected |= _strip(m["components"][STATS]["keys"], STATS_PREFIX, "per_channel_statistics.")
    with torch.device("meta"):
        module = build(m["config"])
    assert _shapes(module) == expected
    params = sum(p.numel() for p in module.parameters())
    assert params == part["num_params"]


@pytest.mark.parametrize(
    ("name", "kind", "rate"),
    [("ltx-2-19b", Vocoder, 24000), ("ltx-2.3-22b", VocoderWithBWE, 48000)],
)
def test_vocoder_keys_shapes_and_rate_match_manifest(manifest, name, kind, rate):
    m = manifest(name)
    part = m["components"]["vocoder"]
    with torch.device("meta"):
        module = build_vocoder(m["config"])
    assert type(module) is kind
    assert module.output_sampling_rate == rate
    assert _shapes(module) == _strip(part["keys"], VOCODER_PREFIX)
    assert sum(p.numel() for p in module.parameters()) == part["num_params"]
    buffers = {k for k, _ in module.named_buffers()}
    assert buffers == {k[len(VOCODER_PREFIX) :] for k in part["buffers"]}


@pytest.mark.parametrize("name", GENERATIONS)
def test_fixed_buffers_cover_every_stored_vocoder_buffer(manifest, name):
    m = manifest(name)
    part = m["components"]["vocoder"]
    fixed = vocoder_fixed_buffers(m["config"])
    expected = {k[len(VOCODER_PREFIX) :]: part["keys"][k] for k in part["buffers"]}
    assert {k: list(v.shape) for k, v in fixed.items()} == expected
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in fixed.values())
