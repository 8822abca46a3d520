"""Audio VAE on tiny configs: lengths, causality, statistics, determinism, meta loading."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from ltx2cli.errors import CheckpointError
from ltx2cli.families import GEN_2_3
from ltx2cli.models.audio_vae import (
    AudioVAEConfig,
    PerChannelStatistics,
    audio_latent_frames,
    build_audio_decoder,
    build_audio_encoder,
)
from ltx2cli.models.tiny import tiny_config

RELEASED_LATENT_BINS = 16  # 64 mel bins through two stride-2 levels
# Two shrunk configs; the statistics need ch == z_channels · latent mel bins (= mel_bins / 4).
TINY = {
    "z2": {"ch": 16, "z_channels": 2, "mel_bins": 32},
    "z8": {"ch": 32, "z_channels": 8, "mel_bins": 16},
}
MEL_BINS = TINY["z2"]["mel_bins"]
LATENT_BINS = MEL_BINS // 4
SEED = 1234


def _config(name: str = "z2", **extra) -> dict:
    """The tiny checkpoint's audio VAE config (released structure) at the `TINY[name]` sizes."""
    config = tiny_config(GEN_2_3)
    config["audio_vae"]["model"]["params"]["ddconfig"].update(TINY[name], **extra)
    return config


def _models(config: dict, seed: int = SEED):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(seed)
    encoder, decoder = build_audio_encoder(config), build_audio_decoder(config)
    encoder.init_weights(gen)
    decoder.init_weights(gen)
    return encoder.eval(), decoder.eval()


# T' = ⌊⌊(T − 1)/2⌋/2⌋ + 1 (two stride-2 causal downsamplings), worked by hand;
# the decoder gives 4T' − 3 back.
@pytest.mark.parametrize(
    ("name", "mel_frames", "latent_frames", "decoded_frames"),
    [
        ("z2", 1, 1, 1),
        ("z2", 4, 1, 1),
        ("z2", 5, 2, 5),
        ("z2", 20, 5, 17),
        ("z2", 33, 9, 33),
        ("z8", 17, 5, 17),
    ],
)
def test_encode_decode_lengths(name, mel_frames, latent_frames, decoded_frames):
    encoder, decoder = _models(_config(name))
    z, bins = TINY[name]["z_channels"], TINY[name]["mel_bins"]
    mel = torch.randn(2, 2, mel_frames, bins)
    with torch.no_grad():
        latent = encoder(mel)
        back = decoder(latent)
    assert latent.shape == (2, z, latent_frames, bins // 4)
    assert back.shape == (2, 2, decoded_frames, bins)
    assert torch.isfinite(back).all()


@pytest.mark.parametrize(("seconds", "frames"), [(121 / 24, 126), (5.0, 125), (1.0, 25), (0.2, 5)])
def test_audio_latent_frames_is_25_per_second(seconds, frames):
    assert audio_latent_frames(seconds) == frames


def test_encoder_is_causal_in_time():
    encoder, _ = _models(_config())
    mel = torch.randn(1, 2, 17, MEL_BINS)
    later = mel.clone()
    later[:, :, 13:] = torch.randn(1, 2, 4, MEL_BINS)
    with torch.no_grad():
        a, b = encoder(mel), encoder(later)
    # latent frame j sees mel frames ≤ 4j: frames 0..3 cannot see frame 13
    torch.testing.assert_close(a[:, :, :4], b[:, :, :4], rtol=0, atol=1e-6)
    assert (a[:, :, 4] - b[:, :, 4]).abs().max() > 1e-3


def test_decoder_is_causal_in_time():
    _, decoder = _models(_config())
    latent = torch.randn(1, 2, 5, LATENT_BINS)
    later = latent.clone()
    later[:, :, 4] += 1.0
    with torch.no_grad():
        a, b = decoder(latent), decoder(later)
    # each upsample maps frame i to inputs ≤ ⌊(i+1)/2⌋: latent 4 first reaches mel frame 13
    torch.testing.assert_close(a[:, :, :13], b[:, :, :13], rtol=0, atol=1e-6)
    assert (a[:, :, 13:] - b[:, :, 13:]).abs().max() > 1e-3


def _patchify(x: torch.Tensor) -> torch.Tensor:
    batch, channels, frames, bins = x.shape
    return x.permute(0, 2, 1, 3).reshape(batch, frames, channels * bins)  # feature c·F + f


def _unpatchify(tokens: torch.Tensor, channels: int) -> torch.Tensor:
    batch, frames, features = tokens.shape
    return tokens.reshape(batch, frames, channels, features // channels).permute(0, 2, 1, 3)


def test_statistics_act_on_the_flattened_channel_major_features():
    channels, bins = 8, 16
    stats = PerChannelStatistics(channels * bins)
    mean = torch.arange(channels * bins, dtype=torch.float32)
    std = 1.0 + torch.arange(channels * bins, dtype=torch.float32) / 100
    stats.get_buffer("mean-of-means").copy_(mean)
    stats.get_buffer("std-of-means").copy_(std)
    latent = torch.randn(2, channels, 3, bins)
    expected = _unpatchify((_patchify(latent) - mean) / std, channels)
    torch.testing.assert_close(stats.normalize(latent), expected)
    # values reach ~100 after normalising, so the round trip is exact to float32 rounding
    torch.testing.assert_close(
        stats.denormalize(stats.normalize(latent)), latent, atol=1e-4, rtol=0
    )


def test_encoder_normalises_and_decoder_denormalises():
    config = _config()
    encoder, decoder = _models(config)
    plain_encoder, plain_decoder = _models(config)
    for module in (plain_encoder, plain_decoder):
        stats = module.per_channel_statistics
        stats.get_buffer("mean-of-means").zero_()
        stats.get_buffer("std-of-means").fill_(1.0)
    channels = TINY["z2"]["z_channels"]
    mel = torch.randn(1, 2, 9, MEL_BINS)
    with torch.no_grad():
        mean = encoder.per_channel_statistics.get_buffer("mean-of-means")
        std = encoder.per_channel_statistics.get_buffer("std-of-means")
        raw = plain_encoder(mel)
        torch.testing.assert_close(
            encoder(mel), _unpatchify((_patchify(raw) - mean) / std, channels)
        )
        mean = decoder.per_channel_statistics.get_buffer("mean-of-means")
        std = decoder.per_channel_statistics.get_buffer("std-of-means")
        latent = torch.randn(1, channels, 3, LATENT_BINS)
        unnormalised = _unpatchify(_patchify(latent) * std + mean, channels)
        torch.testing.assert_close(decoder(latent), plain_decoder(unnormalised))


def test_same_seed_same_weights_and_outputs():
    config = _config()
    (enc_a, dec_a), (enc_b, dec_b) = _models(config), _models(config)
    for a, b in ((enc_a, enc_b), (dec_a, dec_b)):
        for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.equal(x, y), key
    mel = torch.randn(1, 2, 12, MEL_BINS)
    with torch.no_grad():
        assert torch.equal(dec_a(enc_a(mel)), dec_b(enc_b(mel)))
    other, _ = _models(config, seed=SEED + 1)
    assert not torch.equal(other.conv_in.conv.weight, enc_a.conv_in.conv.weight)


def test_meta_build_loads_state_dict_by_assignment():
    config = _config()
    encoder, decoder = _models(config)
    with torch.device("meta"):
        meta_encoder, meta_decoder = build_audio_encoder(config), build_audio_decoder(config)
    meta_encoder.load_state_dict(encoder.state_dict(), strict=True, assign=True)
    meta_decoder.load_state_dict(decoder.state_dict(), strict=True, assign=True)
    mel = torch.randn(1, 2, 9, MEL_BINS)
    with torch.no_grad():
        torch.testing.assert_close(meta_decoder(meta_encoder(mel)), decoder(encoder(mel)))


def test_config_defaults_equal_released_ddconfig(manifest):
    for name in ("ltx-2-19b", "ltx-2.3-22b"):
        assert AudioVAEConfig.from_checkpoint_config(manifest(name)["config"]) == AudioVAEConfig()
    assert AudioVAEConfig().latent_mel_bins == RELEASED_LATENT_BINS


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"norm_type": "group"}, "norm_type"),  # GroupNorm only without causality
        ({"norm_type": "batch"}, "norm_type"),
        ({"attn_type": "linear"}, "attn_type"),
        ({"double_z": False}, "double_z"),
        ({"resamp_with_conv": False}, "resamp_with_conv"),  # pooling only without causality
        ({"causality_axis": "depth"}, "causality_axis"),
        ({"ch": 48}, "ch=48"),
        ({"z_channels": 0}, "z_channels"),
    ],
)
def test_unsupported_configs_name_the_key(extra, key):
    with pytest.raises(CheckpointError, match=key):
        build_audio_encoder(_config(**extra))


@pytest.mark.parametrize("axis", [None, "width"])
def test_other_causality_axes_build_and_run(axis):
    encoder, decoder = _models(_config(causality_axis=axis))
    with torch.no_grad():
        out = decoder(encoder(torch.randn(1, 2, 16, MEL_BINS)))
    assert out.shape == (1, 2, 16 if axis is None else 13, MEL_BINS)
    assert torch.isfinite(out).all()


# --- config keys the released files spell out, read as the reference reads them when absent --

ATTENTION_KEYS = ("mid_block_add_attention", "attn_resolutions")


def _ddconfig(config: dict) -> dict:
    return config["audio_vae"]["model"]["params"]["ddconfig"]


def _without(config: dict, *keys: str) -> dict:
    for key in keys:
        config["audio_vae"]["model"]["params"]["ddconfig"].pop(key)
    return config


def _attention_levels(module: torch.nn.Module) -> set[str]:
    return {k.split(".q.weight")[0] for k in module.state_dict() if k.endswith(".q.weight")}


@pytest.mark.parametrize(
    ("resolution", "levels"),
    # default attn_resolutions {8, 16, 32}: level l sits at resolution / 2^l (ch_mult has 3)
    [(256, set()), (64, {1, 2}), (32, {0, 1, 2})],  # 64 → 64/32/16
)
def test_absent_attention_keys_default_to_attention(resolution, levels):
    config = _without(_config(resolution=resolution), *ATTENTION_KEYS)
    encoder, decoder = build_audio_encoder(config), build_audio_decoder(config)
    blocks = _ddconfig(config)["num_res_blocks"]
    expected_enc = {"mid.attn_1"} | {f"down.{lv}.attn.{i}" for lv in levels for i in range(blocks)}
    expected_dec = {"mid.attn_1"} | {
        f"up.{lv}.attn.{i}" for lv in levels for i in range(blocks + 1)
    }
    assert _attention_levels(encoder) == expected_enc
    assert _attention_levels(decoder) == expected_dec
    # the released config writes both keys: no attention anywhere
    released = build_audio_decoder(_config(resolution=resolution))
    assert _attention_levels(released) == set()


@pytest.mark.parametrize(
    ("listed", "encoder_levels", "decoder_levels"),
    # resolution 30: encoder levels see 30, 15, 7; decoder levels 7·4 = 28, 7·2 = 14, 7
    [((15,), {1}, set()), ((14,), set(), {1}), ((7,), {2}, {2})],
)
def test_decoder_counts_attention_resolutions_up_from_the_deepest_level(
    listed, encoder_levels, decoder_levels
):
    config = _config(resolution=30, attn_resolutions=list(listed))
    encoder, decoder = build_audio_encoder(config), build_audio_decoder(config)
    assert {k.split(".")[1] for k in _attention_levels(encoder)} == {str(v) for v in encoder_levels}
    assert {k.split(".")[1] for k in _attention_levels(decoder)} == {str(v) for v in decoder_levels}


def test_attention_block_is_single_head_softmax_over_all_positions():
    config = _without(_config(), *ATTENTION_KEYS)
    encoder, _ = _models(config)
    block = encoder.mid.attn_1
    channels = encoder.conv_out.conv.in_channels
    x = torch.randn(2, channels, 3, 4)
    with torch.no_grad():
        h = x / torch.sqrt((x**2).mean(dim=1, keepdim=True) + 1e-6)  # PixelNorm
        q, k, v = (
            F.conv2d(h, getattr(block, n).weight, getattr(block, n).bias).flatten(2) for n in "qkv"
        )  # (B, C, H·W)
        weights = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(channels), dim=2)
        attended = torch.einsum("bij,bcj->bci", weights, v).reshape(x.shape)
        expected = x + F.conv2d(attended, block.proj_out.weight, block.proj_out.bias)
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


def test_absent_mel_bins_crops_decoder_output_to_the_latent_bins():
    config = _config()
    config["audio_vae"]["model"]["params"]["ddconfig"].pop("mel_bins")
    config["audio_vae"]["preprocessing"]["mel"].pop("n_mel_channels")
    assert AudioVAEConfig.from_checkpoint_config(config).mel_bins is None
    _, decoder = _models(config)
    with torch.no_grad():
        out = decoder(torch.randn(1, 2, 3, LATENT_BINS))
    assert out.shape == (1, 2, 9, LATENT_BINS)  # 4·3 − 3 frames, F' bins (not 4·F')
    config["audio_vae"]["variables"] = {"mel_bins": MEL_BINS}
    assert AudioVAEConfig.from_checkpoint_config(config).mel_bins == MEL_BINS


GROUP_CH = 64  # GroupNorm needs channels divisible by its 32 groups


def test_group_norm_non_causal_config_builds_and_normalises_per_group():
    config = _config(ch=GROUP_CH, z_channels=8, mel_bins=32, norm_type="group", causality_axis=None)
    encoder, decoder = _models(config)
    norm = encoder.down[0].block[0].norm1
    assert isinstance(norm, torch.nn.GroupNorm)
    assert (norm.num_groups, norm.eps) == (32, 1e-6)
    deepest = GROUP_CH * _ddconfig(config)["ch_mult"][-1]
    assert encoder.state_dict()["norm_out.weight"].shape == (deepest,)
    x = torch.randn(1, GROUP_CH, 3, 5)
    groups = x.reshape(1, 32, -1)
    manual = (groups - groups.mean(-1, keepdim=True)) / torch.sqrt(
        groups.var(-1, unbiased=False, keepdim=True) + 1e-6
    )
    manual = manual.reshape(x.shape) * norm.weight[:, None, None] + norm.bias[:, None, None]
    with torch.no_grad():
        torch.testing.assert_close(norm(x), manual, rtol=1e-5, atol=1e-5)
        out = decoder(encoder(torch.randn(1, 2, 8, 32)))
    assert out.shape == (1, 2, 8, 32)


def test_without_conv_resampling_the_encoder_average_pools():
    config = _config(causality_axis=None, resamp_with_conv=False)
    encoder, decoder = _models(config)
    assert not any(k.startswith("down.0.downsample") for k in encoder.state_dict())
    # the decoder ignores the key: strided-conv upsampling as always
    assert "up.1.upsample.conv.conv.weight" in decoder.state_dict()
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    pooled = encoder.down[0].downsample(x)
    # 2×2 means of [[0,1],[4,5]], [[2,3],[6,7]], ... worked by hand
    torch.testing.assert_close(pooled, torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))


def test_double_z_false_still_builds_the_decoder():
    decoder = build_audio_decoder(_config(double_z=False))
    assert decoder.conv_in.conv.in_channels == TINY["z2"]["z_channels"]
