"""Vocoders on tiny configs: filter formulas, SnakeBeta, the resblock mean, BWE, end to end."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from ltx2cli.errors import CheckpointError
from ltx2cli.families import GEN_2_0, GEN_2_3
from ltx2cli.models.audio_vae import build_audio_decoder, build_audio_encoder
from ltx2cli.models.mel import MelConfig, log_mel_spectrogram, mel_filterbank
from ltx2cli.models.tiny import tiny_config
from ltx2cli.models.vocoder import (
    ResBlock1,
    SnakeBeta,
    VocoderWithBWE,
    build_vocoder,
    hann_sinc_resample_filter,
    kaiser_sinc_filter,
    stft_bases,
    vocoder_fixed_buffers,
)

MEL_BINS = 64
HIFIGAN_HOP = 240  # 6·5·2·2·2: 100 mel frames/s → 24 kHz
BIGVGAN_HOP = 160  # 5·2·2·2·2·2: → 16 kHz
BWE_RATIO = 3  # 16 kHz → 48 kHz
SEED = 7
GENERATION = {"ltx-2-19b": GEN_2_0, "ltx-2.3-22b": GEN_2_3}
# Kaiser β for K = 12, half-width 0.3: A = 2.285·5·π·1.2 + 7.95 ≈ 51.02 > 50 → 0.1102·(A − 8.7)
KAISER_BETA = 0.1102 * (2.285 * 5 * math.pi * 1.2 + 7.95 - 8.7)


def _config(name: str) -> dict:
    """The tiny checkpoint's config (released vocoder structure) at the narrowest widths the
    stage count allows."""
    config = tiny_config(GENERATION[name])
    section = config["vocoder"]
    if "bwe" in section:
        section["vocoder"]["upsample_initial_channel"] = 64  # 6 stages → 1 channel
        section["bwe"]["upsample_initial_channel"] = 32  # 5 stages → 1 channel
    else:
        section["upsample_initial_channel"] = 32
    return config


def _fresh_vocoder(name: str):
    module = build_vocoder(_config(name))
    module.init_weights(torch.Generator().manual_seed(SEED))
    return module.eval()


_BUILT: dict[str, torch.nn.Module] = {}


def _vocoder(name: str):
    """A private copy of the seeded tiny vocoder (built once per module: BWE builds are slow)."""
    if name not in _BUILT:
        _BUILT[name] = _fresh_vocoder(name)
    return copy.deepcopy(_BUILT[name])


# --- fixed filters -----------------------------------------------------------------------------


def test_kaiser_filter_matches_numpy_formula():
    taps = kaiser_sinc_filter(0.25, 0.3, 12)
    assert taps.shape == (1, 1, 12)
    t = np.arange(-6, 6) + 0.5
    ref = 2 * 0.25 * np.kaiser(12, KAISER_BETA) * np.sinc(2 * 0.25 * t)
    ref /= ref.sum()
    np.testing.assert_allclose(taps.flatten().numpy(), ref, atol=1e-7)
    flat = taps.flatten()
    torch.testing.assert_close(flat, flat.flip(0))
    assert flat.sum().item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("kernel", [11, 12])
def test_kaiser_filter_is_evaluated_in_float32_like_the_reference_buffers(kernel):
    """The reference builds these buffers in float32 (sinc as sin(πx)/π/x); a float64 build
    rounded once differs in the last bit of some taps."""
    f32 = torch.float32
    half = kernel // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * 0.3) + 7.95  # 51.0 (K=12), 42.4 (K=11)
    if attenuation > 50:
        beta = 0.1102 * (attenuation - 8.7)
    else:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21)
    window = torch.kaiser_window(kernel, periodic=False, beta=beta, dtype=f32)
    if kernel % 2 == 0:
        t = torch.arange(-half, half, dtype=f32) + 0.5
    else:
        t = torch.arange(kernel, dtype=f32) - half
    x = 0.5 * t
    sinc = torch.where(x == 0, torch.ones_like(x), torch.sin(math.pi * x) / math.pi / x)
    taps = 0.5 * window * sinc
    expected = (taps / taps.sum()).view(1, 1, kernel)
    torch.testing.assert_close(kaiser_sinc_filter(0.25, 0.3, kernel), expected, rtol=0, atol=0)


@pytest.mark.parametrize("kernel", [11, 12])
def test_kaiser_filter_is_symmetric_and_unit_dc(kernel):
    flat = kaiser_sinc_filter(0.25, 0.3, kernel).flatten()
    torch.testing.assert_close(flat, flat.flip(0))
    assert flat.sum().item() == pytest.approx(1.0, abs=1e-6)
    # both polyphase halves sum to 1/2, so ×2 upsampling keeps a constant constant
    assert 2 * flat[0::2].sum().item() == pytest.approx(1.0, abs=5e-3)


def test_hann_resample_filter_matches_formula():
    taps = hann_sinc_resample_filter(BWE_RATIO).flatten().double()
    width = math.ceil(6 / 0.99)  # 7
    assert taps.numel() == 2 * width * BWE_RATIO + 1 == 43
    t = (np.arange(43) / BWE_RATIO - width) * 0.99
    window = np.cos(np.clip(t, -6, 6) * np.pi / 12) ** 2
    np.testing.assert_allclose(taps.numpy(), np.sinc(t) * window * 0.99 / BWE_RATIO, atol=1e-7)
    assert taps[21].item() == pytest.approx(0.99 / BWE_RATIO)
    torch.testing.assert_close(taps, taps.flip(0))


def test_stft_forward_basis_is_windowed_rfft():
    forward, _ = stft_bases(512, 80, 512)
    assert forward.shape == (514, 1, 512)
    frame = np.random.default_rng(0).standard_normal(512)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)  # periodic Hann
    spectrum = np.fft.rfft(frame * window)
    projected = forward[:, 0].double().numpy() @ frame
    np.testing.assert_allclose(projected[:257], spectrum.real, atol=1e-4)
    np.testing.assert_allclose(projected[257:], spectrum.imag, atol=1e-4)


def test_stft_inverse_basis_is_the_scaled_pseudo_inverse():
    n_fft, hop = 64, 16
    forward, inverse = stft_bases(n_fft, hop, n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    # invᵀ·(scale·fwd) = diag(w)·pinv(scale·D)·(scale·D)·diag(w) = diag(w²)
    product = inverse[:, 0].double().T @ (forward[:, 0].double() * (n_fft / hop))
    np.testing.assert_allclose(product.numpy(), np.diag(window**2), atol=1e-5)


# --- activations and blocks --------------------------------------------------------------------


def test_snakebeta_follows_its_log_scale_formula():
    gen = torch.Generator().manual_seed(SEED)
    act = SnakeBeta(4)
    with torch.no_grad():
        act.alpha.normal_(0, 0.5, generator=gen)
        act.beta.normal_(0, 0.5, generator=gen)
    x = torch.randn(2, 4, 9, generator=gen)
    alpha = act.alpha.detach().exp()[None, :, None]
    beta = act.beta.detach().exp()[None, :, None]
    expected = x + torch.sin(x * alpha) ** 2 / (beta + 1e-9)
    torch.testing.assert_close(act(x), expected)
    # log-scale zero init: α = β = 1 → x + sin²(x)
    torch.testing.assert_close(SnakeBeta(4)(x), x + torch.sin(x) ** 2)


@pytest.mark.parametrize("name", ["ltx-2-19b", "ltx-2.3-22b"])
def test_each_stage_averages_its_resblocks(name):
    """With every resblock an identity (second convs zeroed) a mean passes the upsampled signal
    through unchanged, where a sum would triple it at every stage."""
    module = _vocoder(name)
    generator = module.vocoder if isinstance(module, VocoderWithBWE) else module
    with torch.no_grad():
        for block in generator.resblocks:
            for conv in block.convs2:
                conv.weight.zero_()
                conv.bias.zero_()
        mel = torch.randn(1, 2, 3, MEL_BINS)
        x = generator.conv_pre(mel.transpose(2, 3).reshape(1, 2 * MEL_BINS, 3))
        for up in generator.ups:
            x = up(x if generator.config.is_amp else F.leaky_relu(x, 0.1))
        if generator.config.is_amp:
            expected = generator.conv_post(generator.act_post(x)).clamp(-1, 1)
        else:  # the final LeakyReLU uses PyTorch's default slope, 0.01
            expected = torch.tanh(generator.conv_post(F.leaky_relu(x, 0.01)))
        torch.testing.assert_close(generator(mel), expected)


def test_resblock1_matches_dilated_conv_formula():
    block = _vocoder("ltx-2-19b").resblocks[1]  # kernel 7, dilations 1/3/5
    x = torch.randn(1, 16, 40)
    expected = x
    for dilation, conv1, conv2 in zip((1, 3, 5), block.convs1, block.convs2, strict=True):
        h = F.conv1d(
            F.leaky_relu(expected, 0.1),
            conv1.weight,
            conv1.bias,
            dilation=dilation,
            padding=3 * dilation,
        )
        expected = expected + F.conv1d(F.leaky_relu(h, 0.1), conv2.weight, conv2.bias, padding=3)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected.detach())


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize(("kernel", "dilation"), [(4, 3), (7, 5)])
def test_resblock1_pads_same_with_the_extra_zero_on_the_right(kernel, dilation):
    """HiFi-GAN's ResBlock1 convs use `padding="same"`: total d·(k−1) zeros, ⌊total/2⌋ left."""
    block = ResBlock1(3, kernel, (dilation, 1, 1))
    x = torch.randn(1, 3, 20)
    total = dilation * (kernel - 1)
    conv1, conv2 = block.convs1[0], block.convs2[0]
    with torch.no_grad():
        h = F.conv1d(
            F.pad(F.leaky_relu(x, 0.1), (total // 2, total - total // 2)),
            conv1.weight,
            conv1.bias,
            dilation=dilation,
        )
        k2 = kernel - 1
        first = x + F.conv1d(
            F.pad(F.leaky_relu(h, 0.1), (k2 // 2, k2 - k2 // 2)), conv2.weight, conv2.bias
        )
        for conv in (*block.convs1[1:], *block.convs2[1:]):
            conv.weight.zero_()
            conv.bias.zero_()
        out = block(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, first)


@pytest.mark.parametrize("name", ["ltx-2-19b", "ltx-2.3-22b"])
def test_generators_read_128_mel_channels_whatever_the_mel_bins(name):
    """The reference hard-codes `conv_pre` to 2 × 64 inputs; neither the audio VAE's mel_bins
    nor the BWE's num_mels changes it (num_mels only sizes the mel basis)."""
    config = _config(name)
    config["audio_vae"]["model"]["params"]["ddconfig"]["mel_bins"] = 32
    if "bwe" in config["vocoder"]:
        config["vocoder"]["bwe"]["num_mels"] = 32
    with torch.device("meta"):
        module = build_vocoder(config)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    pre = [k for k in shapes if k.endswith("conv_pre.weight")]
    assert pre and all(shapes[k][1] == 2 * MEL_BINS for k in pre)
    if "bwe" in config["vocoder"]:
        assert shapes["mel_stft.mel_basis"] == (32, 257)


# --- whole vocoders ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "frames", "samples", "rate"),
    [
        ("ltx-2-19b", 5, 5 * HIFIGAN_HOP, 24000),
        ("ltx-2.3-22b", 5, 5 * BIGVGAN_HOP * BWE_RATIO, 48000),
    ],
)
def test_output_length_rate_and_determinism(name, frames, samples, rate):
    module = _vocoder(name)
    mel = torch.randn(2, 2, frames, MEL_BINS)
    with torch.no_grad():
        out = module(mel)
        # a separate build from the same seed gives bit-identical weights and output
        again = _fresh_vocoder(name)(mel)
    assert out.shape == (2, 2, samples)
    assert module.output_sampling_rate == rate
    assert torch.equal(out, again)
    assert out.abs().max() <= 1.0


def test_filters_are_computed_at_construction_and_match_the_helper():
    config = _config("ltx-2.3-22b")
    module = build_vocoder(config)
    fixed = vocoder_fixed_buffers(config)
    buffers = dict(module.named_buffers())
    assert set(fixed) == set(buffers)
    kaiser = kaiser_sinc_filter(0.25, 0.3, 12)
    for key, value in fixed.items():
        torch.testing.assert_close(buffers[key], value)
        if key.endswith("filter"):
            torch.testing.assert_close(value, kaiser)
    torch.testing.assert_close(buffers["mel_stft.mel_basis"], mel_filterbank(257, 64, 16000))


def test_meta_build_loads_by_assignment():
    module = _vocoder("ltx-2.3-22b")
    with torch.device("meta"):
        meta = build_vocoder(_config("ltx-2.3-22b"))
    meta.load_state_dict(module.state_dict(), strict=True, assign=True)
    mel = torch.randn(1, 2, 2, MEL_BINS)
    with torch.no_grad():
        torch.testing.assert_close(meta(mel), module(mel))


def test_bwe_mel_is_causal():
    mel_stft = _vocoder("ltx-2.3-22b").mel_stft
    hop = 80
    audio = 0.1 * torch.randn(1, 2, 8 * hop)
    later = audio.clone()
    later[..., 5 * hop :] = 0.0
    a, b = mel_stft(audio), mel_stft(later)
    assert a.shape == (1, 2, 8, MEL_BINS)
    torch.testing.assert_close(a[:, :, :5], b[:, :, :5])
    assert (a[:, :, 5:] - b[:, :, 5:]).abs().max() > 1e-2


BWE_HOP, BWE_N_FFT = 80, 512


def test_bwe_mel_uses_the_stored_bases_as_a_causal_framed_dft():
    """Whatever values the checkpoint stores: frame t covers samples [80t − 432, 80t + 80)
    (zeros before the start), rows 0..256 give the real parts and 257..513 the imaginary parts,
    magnitude has no epsilon, then `log(max(mel_basis @ |X|, 1e-5))`."""
    mel_stft = _vocoder("ltx-2.3-22b").mel_stft
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        mel_stft.stft_fn.forward_basis.normal_(0.0, 0.05, generator=gen)
        mel_stft.mel_basis.uniform_(0.0, 0.1, generator=gen)
    frames = 6
    audio = 0.3 * torch.randn(1, 2, frames * BWE_HOP, generator=gen)
    basis = mel_stft.stft_fn.forward_basis[:, 0].double().numpy()  # (514, 512)
    bank = mel_stft.mel_basis.double().numpy()
    out = mel_stft(audio)
    assert out.shape == (1, 2, frames, MEL_BINS)
    for c in range(2):
        padded = np.concatenate([np.zeros(BWE_N_FFT - BWE_HOP), audio[0, c].double().numpy()])
        for t in range(frames):
            spectrum = basis @ padded[t * BWE_HOP : t * BWE_HOP + BWE_N_FFT]
            magnitude = np.hypot(spectrum[:257], spectrum[257:])
            expected = np.log(np.maximum(bank @ magnitude, 1e-5))
            np.testing.assert_allclose(out[0, c, t].double().numpy(), expected, atol=1e-4)


def _hann_sinc(tau: np.ndarray, ratio: int) -> np.ndarray:
    """The ×ratio interpolation kernel at `tau` input samples (rolloff 0.99, 6 zero crossings)."""
    t = 0.99 * tau
    return np.sinc(t) * np.cos(np.pi * np.clip(t, -6, 6) / 12) ** 2 * 0.99 / ratio


def test_bwe_output_is_clamped_residual_plus_resampled_low_band():
    """With the BWE residual silenced, the output is the 16 kHz signal interpolated ×3 by a
    direct sum y[j] = 3·Σ_i x[clamp(i)]·h(j/3 − i) over |j/3 − i| ≤ 7 (edges replicated)."""
    module = _vocoder("ltx-2.3-22b")
    with torch.no_grad():
        module.bwe_generator.conv_post.weight.zero_()  # no bias: residual = 0
        mel = torch.randn(1, 2, 3, MEL_BINS)
        low = module.vocoder(mel)
        out = module(mel)
    length = low.shape[-1]
    assert out.shape == (1, 2, BWE_RATIO * length)
    width = math.ceil(6 / 0.99)
    taps = np.arange(-width, length + width)
    x = low[0].double().numpy()[:, np.clip(taps, 0, length - 1)]  # (2, L + 2w)
    j = np.arange(BWE_RATIO * length)
    tau = j[:, None] / BWE_RATIO - taps[None, :]
    kernel = np.where(np.abs(tau) <= width, _hann_sinc(tau, BWE_RATIO), 0.0)
    expected = np.clip(BWE_RATIO * x @ kernel.T, -1.0, 1.0)
    np.testing.assert_allclose(out[0].double().numpy(), expected, atol=1e-5)


def test_bwe_runs_in_float32_for_bfloat16_weights():
    module = _vocoder("ltx-2.3-22b")
    mel = torch.randn(1, 2, 4, MEL_BINS)
    upcast = copy.deepcopy(module.to(torch.bfloat16)).float()
    mel = mel[:, :, :2]
    with torch.no_grad():
        out = module(mel.to(torch.bfloat16))
        ref = upcast(mel.to(torch.bfloat16).float())
    assert out.dtype == torch.bfloat16
    # same as running a float32 copy of the (bf16-valued) weights, rounded once at the end
    torch.testing.assert_close(out, ref.to(torch.bfloat16), atol=0, rtol=0)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"resblock": "2"}, "resblock"),
        ({"stereo": False}, "stereo"),
        ({"upsample_rates": [6, 5]}, "upsample_rates"),
    ],
)
def test_unsupported_vocoder_configs_name_the_key(section, key):
    config = tiny_config(GEN_2_0)
    config["vocoder"].update(section)
    with pytest.raises(CheckpointError, match=key):
        build_vocoder(config)


def test_stage_widths_halve_with_floor_division():
    """The reference sizes stage i as ⌊C / 2^i⌋, so C need not be a multiple of 2^stages."""
    config = tiny_config(GEN_2_0)
    width = 40  # → 20, 10, 5, 2, 1
    config["vocoder"]["upsample_initial_channel"] = width
    with torch.device("meta"):
        module = build_vocoder(config)
    for i, up in enumerate(module.ups):
        assert tuple(up.weight.shape[:2]) == (width // 2**i, width // 2 ** (i + 1))
    assert tuple(module.conv_post.weight.shape) == (2, 1, 7)


def test_dilations_beyond_the_third_are_ignored():
    config = tiny_config(GEN_2_0)
    config["vocoder"]["upsample_initial_channel"] = 32
    config["vocoder"]["resblock_dilation_sizes"] = [[1, 3, 5, 7]] * 3
    with torch.device("meta"):
        module = build_vocoder(config)
    assert [c.dilation[0] for c in module.resblocks[0].convs1] == [1, 3, 5]
    assert len(module.resblocks[0].convs2) == 3


# --- end to end --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rate", "samples"),
    # 4000 samples @16 kHz → 26 mel frames → 7 latents → 25 mel frames → 25·240 or 25·160·3
    [("ltx-2-19b", 24000, 6000), ("ltx-2.3-22b", 48000, 12000)],
)
def test_waveform_to_latent_to_waveform(name, rate, samples):
    config = _config(name)
    config["audio_vae"]["model"]["params"]["ddconfig"].update(ch=16, z_channels=1)
    gen = torch.Generator().manual_seed(SEED)
    encoder, decoder = build_audio_encoder(config), build_audio_decoder(config)
    encoder.init_weights(gen)
    decoder.init_weights(gen)
    vocoder = build_vocoder(config)
    vocoder.init_weights(gen)
    wave = 0.1 * torch.randn(1, 2, 4000, generator=gen)
    with torch.no_grad():
        mel = log_mel_spectrogram(wave, MelConfig.from_checkpoint_config(config))
        latent = encoder(mel)
        back = decoder(latent)
        out = vocoder(back)
    assert mel.shape == (1, 2, 26, MEL_BINS)
    assert latent.shape == (1, 1, 7, 16)
    assert back.shape == (1, 2, 25, MEL_BINS)
    assert out.shape == (1, 2, samples)
    assert vocoder.output_sampling_rate == rate
    assert out.shape[-1] / rate == pytest.approx(25 / 100)  # 100 mel frames per second
    assert torch.isfinite(out).all()
