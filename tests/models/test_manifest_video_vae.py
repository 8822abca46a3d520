"""The video VAE built from each released config has exactly the manifest's keys and shapes."""

from __future__ import annotations

import copy

import pytest
import torch

from ltx2cli.models.video_vae import VideoVAEConfig, build_video_decoder, build_video_encoder

GENERATIONS = ["ltx-2-19b", "ltx-2.3-22b"]
STATS_RAW = "vae.per_channel_statistics."
STATS_MODULE = "per_channel_statistics."
TC_ALTERNATIVE = "vae_timestep_conditioning_true"
SCALE = (8, 32, 32)


def _expected(manifest: dict, component: str, extra: dict | None = None) -> dict[str, list[int]]:
    """Raw keys of one component with the loader's renames applied."""
    prefix = manifest["components"][component]["prefix"]
    keys = {k.removeprefix(prefix): v for k, v in manifest["components"][component]["keys"].items()}
    for raw, shape in manifest["components"]["vae_per_channel_statistics"]["keys"].items():
        keys[STATS_MODULE + raw.removeprefix(STATS_RAW)] = shape
    for raw, shape in (extra or {}).items():
        keys[raw.removeprefix(prefix)] = shape
    return keys


def _shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", GENERATIONS)
def test_encoder_matches_manifest(manifest, name):
    m = manifest(name)
    with torch.device("meta"):
        encoder = build_video_encoder(m["config"])
    assert _shapes(encoder) == _expected(m, "vae_encoder")


@pytest.mark.parametrize("name", GENERATIONS)
def test_decoder_matches_manifest(manifest, name):
    m = manifest(name)
    with torch.device("meta"):
        decoder = build_video_decoder(m["config"])
    assert _shapes(decoder) == _expected(m, "vae_decoder")
    assert (
        sum(p.numel() for p in decoder.parameters()) == m["components"]["vae_decoder"]["num_params"]
    )


def test_19b_decoder_with_timestep_conditioning_matches_the_alternative(manifest):
    m = manifest("ltx-2-19b")
    alternative = m["alternatives"][TC_ALTERNATIVE]
    config = copy.deepcopy(m["config"])
    config["vae"]["timestep_conditioning"] = True
    with torch.device("meta"):
        decoder = build_video_decoder(config)
    assert _shapes(decoder) == _expected(m, "vae_decoder", alternative["added_keys"])
    base = m["components"]["vae_decoder"]["num_params"]
    assert sum(p.numel() for p in decoder.parameters()) == base + alternative["param_delta"]


@pytest.mark.parametrize("name", GENERATIONS)
def test_released_configs_scale_by_8_32_32(manifest, name):
    config = VideoVAEConfig.from_checkpoint_config(manifest(name)["config"])
    assert config.encoder_scale == SCALE
    assert config.decoder_scale == SCALE
    assert not config.timestep_conditioning


@pytest.mark.parametrize(
    ("name", "encoder_padding", "decoder_padding"),
    [("ltx-2-19b", "zeros", "reflect"), ("ltx-2.3-22b", "zeros", "zeros")],
)
def test_padding_modes_follow_the_config(manifest, name, encoder_padding, decoder_padding):
    with torch.device("meta"):
        encoder = build_video_encoder(manifest(name)["config"])
        decoder = build_video_decoder(manifest(name)["config"])
    assert encoder.conv_in.conv.padding_mode == encoder_padding
    assert decoder.conv_in.conv.padding_mode == decoder_padding
