"""Vocoders: decoded log-mel `(B, 2, T, 64)` → stereo waveform.

Design choices:
- LTX-2 (19B): HiFi-GAN, 16 kHz mel frames → 24 kHz (`ups` ×6·5·2·2·2 = 240 per frame).
  LeakyReLU(0.1) before each transposed conv; the three `ResBlock1` of a stage run on the same
  input and are AVERAGED (mean, not sum); final LeakyReLU uses PyTorch's default slope 0.01,
  then `conv_post` and tanh.
- LTX-2.3: BigVGAN-v2 (`vocoder.*`, ×160 → 16 kHz, clamped to [−1, 1]) followed by bandwidth
  extension to 48 kHz: a causal log-mel of the 16 kHz signal (`mel_stft`) drives a second
  BigVGAN (`bwe_generator`, ×240, no final activation) whose output is a residual over a
  Hann-sinc ×3 resampling of the 16 kHz signal. Runs in float32 whatever the weight dtype.
- BigVGAN blocks (`AMPBlock1`) wrap every SnakeBeta in an anti-aliased activation: ×2
  kaiser-sinc upsample → SnakeBeta (log-scale α, β) → ×2 kaiser-sinc lowpass downsample.
- Selection: `config.vocoder` with a `bwe` sub-dict → `VocoderWithBWE`, else `Vocoder`.
- Both generators read 128 input channels (2 × 64 mel bins), as the reference hard-codes.
- The filters and STFT/mel bases are persistent buffers (checkpoint keys). On a real device
  they are computed from the config at construction; on meta they come from the checkpoint;
  `vocoder_fixed_buffers(config)` returns the computed values for a file that lacks them.
  The kaiser filters equal the reference's construction bit for bit. The reference builds the
  three `mel_stft` buffers as zeros and relies on the checkpoint's (training) values; ours
  follow the standard convention (windowed rfft rows, Tacotron pinv inverse, Slaney mel
  filters 0…sr/2), which is a guess that no released code confirms.
  The ×3 resampler filter is not a checkpoint key and is computed (and cached) in `forward`.
- Weights are cast per op to the compute dtype, so a bf16 checkpoint runs the BWE in float32
  without a float32 copy of the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ltx2cli.errors import CheckpointError
from ltx2cli.models.mel import LOG_FLOOR, mel_filterbank

LRELU_SLOPE = 0.1
FINAL_LRELU_SLOPE = 0.01  # nn.LeakyReLU() default: the reference's `act_post` for HiFi-GAN
SNAKE_EPS = 1e-9
AA_RATIO = 2
AA_KERNEL = 12  # int(6·ratio/2)·2
RESAMPLE_ROLLOFF = 0.99
RESAMPLE_ZERO_CROSSINGS = 6
STEREO = 2
# Both generators read 2 (stereo) × 64 mel bins whatever the configs say: the reference builds
# `conv_pre` with 128 input channels unconditionally (the BWE's `num_mels` sizes only its mel
# basis), so a checkpoint's vocoder always has `conv_pre.weight` [C, 128, 7].
MEL_CHANNELS = 128
# Formula buffers are built on the CPU whatever device context the module is built under.
CPU = torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# Fixed filters (formulas)


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """BigVGAN's kaiser-windowed sinc lowpass, `(1, 1, kernel_size)`, normalised to sum 1.

    Kaiser β from the stopband attenuation `A = 2.285·(K/2 − 1)·π·4·half_width + 7.95`;
    taps at `t = n − K/2 + 0.5` (even K) or `n − ⌊K/2⌋` (odd K); `h = 2c·w·sinc(2c·t)`.
    Evaluated in float32 in the reference's order, so the values equal the buffers the
    reference module holds before a checkpoint overwrites them.
    """
    return _kaiser_sinc_filter(cutoff, half_width, kernel_size).clone()


@lru_cache(maxsize=8)
def _kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    half = kernel_size // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    f32 = torch.float32
    window = torch.kaiser_window(kernel_size, periodic=False, beta=beta, dtype=f32, device=CPU)
    if kernel_size % 2 == 0:
        t = torch.arange(-half, half, dtype=f32, device=CPU) + 0.5
    else:
        t = torch.arange(kernel_size, dtype=f32, device=CPU) - half
    if cutoff == 0:
        return torch.zeros(1, 1, kernel_size)
    x = 2 * cutoff * t
    # sinc as sin(πx)/π/x (two divisions, not torch.sinc's one) to round like the reference
    sinc = torch.where(x == 0, torch.ones_like(x), torch.sin(math.pi * x) / math.pi / x)
    taps = 2 * cutoff * window * sinc
    return (taps / taps.sum()).view(1, 1, kernel_size)


def hann_sinc_resample_filter(
    ratio: int,
    rolloff: float = RESAMPLE_ROLLOFF,
    zero_crossings: int = RESAMPLE_ZERO_CROSSINGS,
) -> torch.Tensor:
    """Hann-windowed sinc for integer ×`ratio` upsampling, `(1, 1, 2·width·ratio + 1)`.

    `width = ⌈zero_crossings / rolloff⌉`; taps `t = (n/ratio − width)·rolloff`,
    `h = sinc(t) · cos²(π·clamp(t, ±zc) / (2·zc)) · rolloff / ratio`.
    """
    width = math.ceil(zero_crossings / rolloff)
    kernel = 2 * width * ratio + 1
    t = (torch.arange(kernel, dtype=torch.float32, device=CPU) / ratio - width) * rolloff
    clamped = t.clamp(-zero_crossings, zero_crossings)
    window = torch.cos(clamped * math.pi / zero_crossings / 2) ** 2
    return (torch.sinc(t) * window * rolloff / ratio).view(1, 1, -1)


def stft_bases(n_fft: int, hop_length: int, win_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Windowed DFT analysis/synthesis bases `(2·(n_fft/2+1), 1, n_fft)` each (float32).

    Rows are `[Re; Im]` of `e^{−2πikn/N}` for `k ≤ N/2` times a periodic Hann window of
    `win_length` centred in `n_fft`; the synthesis basis is `pinv((N/hop)·DFT)ᵀ` times the same
    window (the pytorch-stft / Tacotron convention).
    """
    forward, inverse = _stft_bases(n_fft, hop_length, win_length)
    return forward.clone(), inverse.clone()


@lru_cache(maxsize=4)
def _stft_bases(n_fft: int, hop_length: int, win_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = torch.arange(n_fft, dtype=torch.float64, device=CPU)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64, device=CPU)
    angle = 2 * math.pi * torch.outer(k, n) / n_fft
    dft = torch.cat([torch.cos(angle), -torch.sin(angle)], dim=0)  # (2·freqs, N)
    window = torch.zeros(n_fft, dtype=torch.float64, device=CPU)
    left = (n_fft - win_length) // 2
    window[left : left + win_length] = torch.hann_window(
        win_length, periodic=True, dtype=torch.float64, device=CPU
    )
    # pinv(A) = (AᵀA)⁻¹Aᵀ for this full-column-rank A; an LU solve is far cheaper than SVD.
    scaled = dft * (n_fft / hop_length)
    inverse = torch.linalg.solve(scaled.T @ scaled, scaled.T).T
    forward = (dft * window).to(torch.float32).unsqueeze(1)
    return forward, (inverse * window).to(torch.float32).unsqueeze(1)


# ---------------------------------------------------------------------------------------------
# Configs


def _positive(where: str, **values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value <= 0:
            raise CheckpointError(f"{where}.{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class GeneratorConfig:
    """One HiFi-GAN / BigVGAN generator; defaults = the LTX-2 (19B) vocoder."""

    upsample_initial_channel: int = 1024
    upsample_rates: tuple[int, ...] = (6, 5, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 15, 8, 4, 4)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    resblock: str = "1"
    activation: str = "snakebeta"
    use_tanh_at_final: bool = True
    use_bias_at_final: bool = True
    apply_final_activation: bool = True
    output_sampling_rate: int = 24000
    where: str = field(default="vocoder", compare=False)

    def __post_init__(self) -> None:
        w = self.where
        _positive(w, upsample_initial_channel=self.upsample_initial_channel)
        _positive(w, output_sampling_rate=self.output_sampling_rate)
        if self.resblock not in ("1", "AMP1"):
            raise CheckpointError(
                f"{w}.resblock={self.resblock!r} is not supported ('1' or 'AMP1')"
            )
        if self.resblock == "AMP1" and self.activation != "snakebeta":
            raise CheckpointError(f"{w}.activation={self.activation!r} is not supported")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes) or not self.upsample_rates:
            raise CheckpointError(
                f"{w}.upsample_rates {list(self.upsample_rates)} and upsample_kernel_sizes "
                f"{list(self.upsample_kernel_sizes)} must be non-empty and of equal length"
            )
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise CheckpointError(
                f"{w}.resblock_kernel_sizes and resblock_dilation_sizes differ in length"
            )
        if any(len(d) != 3 for d in self.resblock_dilation_sizes):
            raise CheckpointError(
                f"{w}.resblock_dilation_sizes={[list(d) for d in self.resblock_dilation_sizes]} "
                "must hold three dilations per block"
            )
        stages = len(self.upsample_rates)
        if self.upsample_initial_channel >> stages < 1:
            # Stage widths are ⌊C / 2^i⌋ like the reference's; the last one must stay ≥ 1.
            raise CheckpointError(
                f"{w}.upsample_initial_channel={self.upsample_initial_channel} is too small for "
                f"{stages} stages (needs at least {2**stages})"
            )

    @property
    def hop(self) -> int:
        """Output samples per mel frame."""
        return math.prod(self.upsample_rates)

    @property
    def is_amp(self) -> bool:
        return self.resblock == "AMP1"

    @classmethod
    def from_section(cls, section: dict[str, Any], where: str, **overrides: Any) -> GeneratorConfig:
        if section.get("stereo", True) is not True:
            raise CheckpointError(f"{where}.stereo={section['stereo']!r}: only stereo is supported")
        values: dict[str, Any] = {}
        for name in (
            "upsample_initial_channel",
            "resblock",
            "activation",
            "use_tanh_at_final",
            "use_bias_at_final",
            "output_sampling_rate",
        ):
            if name in section:
                values[name] = section[name]
        for name in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
            if name in section:
                values[name] = tuple(int(v) for v in section[name])
        if "resblock_dilation_sizes" in section:
            # The reference's blocks index dilations 0..2 and ignore any further entries.
            values["resblock_dilation_sizes"] = tuple(
                tuple(int(d) for d in ds[:3]) for ds in section["resblock_dilation_sizes"]
            )
        values.update(overrides)
        return cls(**values, where=where)


@dataclass(frozen=True)
class BWEConfig:
    """Bandwidth extension (`config.vocoder.bwe`); defaults = LTX-2.3."""

    generator: GeneratorConfig
    n_fft: int = 512
    hop_length: int = 80
    num_mels: int = 64
    input_sampling_rate: int = 16000
    output_sampling_rate: int = 48000

    def __post_init__(self) -> None:
        _positive("vocoder.bwe", n_fft=self.n_fft, hop_length=self.hop_length)
        _positive(
            "vocoder.bwe", num_mels=self.num_mels, input_sampling_rate=self.input_sampling_rate
        )
        if self.output_sampling_rate % self.input_sampling_rate:
            raise CheckpointError(
                f"vocoder.bwe.output_sampling_rate={self.output_sampling_rate} must be a multiple "
                f"of input_sampling_rate={self.input_sampling_rate}"
            )
        if self.hop_length > self.n_fft:
            raise CheckpointError(
                f"vocoder.bwe.hop_length={self.hop_length} exceeds n_fft={self.n_fft}"
            )

    @property
    def ratio(self) -> int:
        return self.output_sampling_rate // self.input_sampling_rate


@dataclass(frozen=True)
class VocoderConfig:
    """`config.vocoder`: a plain generator (LTX-2) or generator + BWE (LTX-2.3)."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    bwe: BWEConfig | None = None

    @property
    def output_sampling_rate(self) -> int:
        return self.bwe.output_sampling_rate if self.bwe else self.generator.output_sampling_rate

    @classmethod
    def from_checkpoint_config(cls, config: dict[str, Any]) -> VocoderConfig:
        """Accepts the whole checkpoint config or just its `vocoder` section."""
        section = config if "bwe" in config else config.get("vocoder", config)
        if "bwe" not in section:
            if section.get("resblock", "1") != "1":
                raise CheckpointError(
                    f"vocoder.resblock={section['resblock']!r} without a bwe section is not "
                    "supported (LTX-2 vocoders use '1')"
                )
            return cls(GeneratorConfig.from_section(section, "vocoder"))
        bwe = section["bwe"]
        main = section.get("vocoder", {})
        for where, sub in (("vocoder.vocoder", main), ("vocoder.bwe", bwe)):
            if sub.get("resblock", "AMP1") != "AMP1":
                raise CheckpointError(f"{where}.resblock={sub['resblock']!r}: BWE needs 'AMP1'")
        in_rate = bwe.get("input_sampling_rate", BWEConfig.input_sampling_rate)
        out_rate = bwe.get("output_sampling_rate", BWEConfig.output_sampling_rate)
        num_mels = bwe.get("num_mels", BWEConfig.num_mels)
        amp = {"resblock": "AMP1"}
        return cls(
            generator=GeneratorConfig.from_section(
                {**amp, **main}, "vocoder.vocoder", output_sampling_rate=in_rate
            ),
            bwe=BWEConfig(
                generator=GeneratorConfig.from_section(
                    {**amp, **bwe},
                    "vocoder.bwe",
                    output_sampling_rate=out_rate,
                    apply_final_activation=False,
                ),
                n_fft=bwe.get("n_fft", BWEConfig.n_fft),
                hop_length=bwe.get("hop_length", BWEConfig.hop_length),
                num_mels=num_mels,
                input_sampling_rate=in_rate,
                output_sampling_rate=out_rate,
            ),
        )


# ---------------------------------------------------------------------------------------------
# Layers


def _conv(conv: nn.Conv1d | nn.ConvTranspose1d, x: torch.Tensor) -> torch.Tensor:
    """Run `conv` in the dtype of `x` (weights cast per op, like float32 autocast)."""
    weight = conv.weight.to(x.dtype)
    bias = None if conv.bias is None else conv.bias.to(x.dtype)
    if isinstance(conv, nn.ConvTranspose1d):
        return F.conv_transpose1d(x, weight, bias, conv.stride, conv.padding)
    return F.conv1d(x, weight, bias, conv.stride, conv.padding, conv.dilation)


class SnakeBeta(nn.Module):
    """`x + sin²(x·e^α) / (e^β + 1e-9)` per channel; α, β stored in log scale (init 0)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Coefficients in the compute dtype: the BWE upcasts bf16 weights per op, as if the
        # model were float32 (the reference's float32 autocast).
        alpha = torch.exp(self.alpha.to(x.dtype))[None, :, None]
        inv_beta = (1.0 / (torch.exp(self.beta.to(x.dtype)) + SNAKE_EPS))[None, :, None]
        return x + inv_beta * torch.sin(x * alpha).pow(2)


def upsample_with_filter(
    x: torch.Tensor, taps: torch.Tensor, ratio: int, pad: int, crop: tuple[int, int]
) -> torch.Tensor:
    """Depthwise ×`ratio` interpolation of `(B, C, L)`: replicate-pad `pad` each side, transposed
    conv with `ratio·taps` at stride `ratio`, then drop `crop` = (left, right) samples."""
    channels = x.shape[1]
    x = F.pad(x, (pad, pad), mode="replicate")
    weight = taps.to(x.dtype).expand(channels, -1, -1)
    x = ratio * F.conv_transpose1d(x, weight, stride=ratio, groups=channels)
    return x[..., crop[0] : x.shape[-1] - crop[1]]


class UpSample1d(nn.Module):
    """×2 kaiser-sinc upsampling: replicate-pad 5, transposed conv stride 2 with 2·filter,
    crop 15 each side (lengths L → 2L). Buffer `filter` (1, 1, 12)."""

    def __init__(self, ratio: int = AA_RATIO, kernel_size: int = AA_KERNEL) -> None:
        super().__init__()
        self.ratio = ratio
        self.pad = kernel_size // ratio - 1
        self.crop_left = self.pad * ratio + (kernel_size - ratio) // 2
        self.crop_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
        self.register_buffer("filter", torch.zeros(1, 1, kernel_size))

    def fixed_buffers(self) -> dict[str, torch.Tensor]:
        size = self.filter.shape[-1]
        return {"filter": kaiser_sinc_filter(0.5 / self.ratio, 0.6 / self.ratio, size)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        crop = (self.crop_left, self.crop_right)
        return upsample_with_filter(x, self.filter, self.ratio, self.pad, crop)


class LowPassFilter1d(nn.Module):
    """Replicate-pad (K/2 − 1, K/2) for even K, depthwise conv with `filter`, given stride."""

    def __init__(self, stride: int = AA_RATIO, kernel_size: int = AA_KERNEL) -> None:
        super().__init__()
        self.stride = stride
        even = kernel_size % 2 == 0
        self.padding = (kernel_size // 2 - int(even), kernel_size // 2)
        self.register_buffer("filter", torch.zeros(1, 1, kernel_size))

    def fixed_buffers(self) -> dict[str, torch.Tensor]:
        size = self.filter.shape[-1]
        return {"filter": kaiser_sinc_filter(0.5 / self.stride, 0.6 / self.stride, size)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, self.padding, mode="replicate")
        taps = self.filter.to(x.dtype).expand(channels, -1, -1)
        return F.conv1d(x, taps, stride=self.stride, groups=channels)


class DownSample1d(nn.Module):
    """×2 anti-aliased downsampling; the filter lives at `lowpass.filter`."""

    def __init__(self, ratio: int = AA_RATIO, kernel_size: int = AA_KERNEL) -> None:
        super().__init__()
        self.lowpass = LowPassFilter1d(ratio, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class Activation1d(nn.Module):
    """Anti-aliased SnakeBeta: upsample ×2 → act → downsample ×2 (length preserved)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.act = SnakeBeta(channels)
        self.upsample = UpSample1d()
        self.downsample = DownSample1d()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


def _dilated_convs(
    channels: int, kernel: int, dilations: tuple[int, ...], *, same: bool
) -> nn.ModuleList:
    # HiFi-GAN's ResBlock1 uses `padding="same"` (for an even kernel the extra zero goes on
    # the right); BigVGAN's AMP block pads `d·(k−1)/2` on both sides. Equal for odd kernels.
    convs = nn.ModuleList()
    for d in dilations:
        padding = "same" if same else d * (kernel - 1) // 2
        convs.append(nn.Conv1d(channels, channels, kernel, dilation=d, padding=padding))
    return convs


class ResBlock1(nn.Module):
    """HiFi-GAN: `x += conv2_j(lrelu(conv1_j(lrelu(x))))` for three dilations (slope 0.1)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = _dilated_convs(channels, kernel, dilations, same=True)
        self.convs2 = _dilated_convs(channels, kernel, (1,) * len(dilations), same=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv1, conv2 in zip(self.convs1, self.convs2, strict=True):
            h = _conv(conv1, F.leaky_relu(x, LRELU_SLOPE))
            x = x + _conv(conv2, F.leaky_relu(h, LRELU_SLOPE))
        return x


class AMPBlock1(nn.Module):
    """BigVGAN: `x += conv2_j(act2_j(conv1_j(act1_j(x))))` with anti-aliased SnakeBeta."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = _dilated_convs(channels, kernel, dilations, same=False)
        self.convs2 = _dilated_convs(channels, kernel, (1,) * len(dilations), same=False)
        self.acts1 = nn.ModuleList(Activation1d(channels) for _ in dilations)
        self.acts2 = nn.ModuleList(Activation1d(channels) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv1, conv2, act1, act2 in zip(
            self.convs1, self.convs2, self.acts1, self.acts2, strict=True
        ):
            x = x + _conv(conv2, act2(_conv(conv1, act1(x))))
        return x


class _FixedBufferMixin:
    """Fills every `fixed_buffers()` submodule's buffers with their formula values."""

    def fixed_buffers(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for prefix, module in self.named_modules():  # type: ignore[attr-defined]
            if module is not self and hasattr(module, "fixed_buffers"):
                if isinstance(module, _FixedBufferMixin):
                    continue  # its leaves are visited directly
                for name, value in module.fixed_buffers().items():
                    out[f"{prefix}.{name}"] = value
        return out

    def reset_fixed_buffers(self) -> None:
        """Overwrite the filter / STFT / mel buffers with values computed from the config."""
        with torch.no_grad():
            for name, value in self.fixed_buffers().items():
                buffer = self.get_buffer(name)  # type: ignore[attr-defined]
                buffer.copy_(value.to(buffer.dtype))


def _init_generator_weights(module: nn.Module, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.ConvTranspose1d):
                fan_in = sub.in_channels * sub.kernel_size[0] / sub.stride[0]
                sub.weight.normal_(0.0, 0.5 / math.sqrt(fan_in), generator=generator)
            elif isinstance(sub, nn.Conv1d):
                fan_in = sub.in_channels * sub.kernel_size[0]
                sub.weight.normal_(0.0, 0.5 / math.sqrt(fan_in), generator=generator)
            elif isinstance(sub, SnakeBeta):
                sub.alpha.normal_(0.0, 0.1, generator=generator)
                sub.beta.normal_(0.0, 0.1, generator=generator)
                continue
            else:
                continue
            if sub.bias is not None:
                sub.bias.normal_(0.0, 0.01, generator=generator)


class Vocoder(_FixedBufferMixin, nn.Module):
    """HiFi-GAN (`resblock "1"`) or BigVGAN-v2 (`"AMP1"`) generator: mel → waveform.

    Input `(B, 2, T, 64)`, output `(B, 2, T·prod(upsample_rates))` at
    `output_sampling_rate`. Computes in the input's dtype.
    """

    def __init__(self, config: GeneratorConfig, *, compute_buffers: bool = True) -> None:
        super().__init__()
        self.config = config
        self.output_sampling_rate = config.output_sampling_rate
        width = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(MEL_CHANNELS, width, 7, padding=3)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(width >> i, width >> (i + 1), k, s, padding=(k - s) // 2)
            for i, (s, k) in enumerate(
                zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True)
            )
        )
        block = AMPBlock1 if config.is_amp else ResBlock1
        self.resblocks = nn.ModuleList(
            block(width >> (i + 1), k, d)
            for i in range(len(config.upsample_rates))
            for k, d in zip(
                config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True
            )
        )
        final = width >> len(config.upsample_rates)
        if config.is_amp:
            self.act_post = Activation1d(final)
        self.conv_post = nn.Conv1d(final, STEREO, 7, padding=3, bias=config.use_bias_at_final)
        if compute_buffers and not self.conv_pre.weight.is_meta:
            self.reset_fixed_buffers()

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.ndim != 4 or mel.shape[1] * mel.shape[3] != MEL_CHANNELS:
            raise ValueError(f"vocoder input must be (B, 2, T, 64), got {tuple(mel.shape)}")
        # 1. (B, 2, T, F) → (B, 2·F, T), channel index stereo·F + bin
        x = mel.transpose(2, 3).reshape(mel.shape[0], -1, mel.shape[2])
        x = _conv(self.conv_pre, x)
        # 2. upsampling stages; each stage's resblocks see the same input and are averaged
        per_stage = len(self.config.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            if not self.config.is_amp:
                x = F.leaky_relu(x, LRELU_SLOPE)
            x = _conv(up, x)
            blocks = self.resblocks[i * per_stage : (i + 1) * per_stage]
            x = torch.stack([block(x) for block in blocks]).mean(dim=0)
        # 3. output head
        x = self.act_post(x) if self.config.is_amp else F.leaky_relu(x, FINAL_LRELU_SLOPE)
        x = _conv(self.conv_post, x)
        if not self.config.apply_final_activation:
            return x
        return torch.tanh(x) if self.config.use_tanh_at_final else x.clamp(-1.0, 1.0)

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Random weights for tiny test checkpoints; filters are set from their formulas."""
        _init_generator_weights(self, generator)
        self.reset_fixed_buffers()


class CausalSTFT(nn.Module):
    """Magnitude STFT as a strided conv with the stored windowed DFT basis.

    Left-pads `win − hop` zeros so a frame never looks ahead; `L/hop` frames for `L` divisible
    by hop. Buffers `forward_basis`, `inverse_basis` `(2·(n_fft/2+1), 1, n_fft)`; the inverse
    basis is carried for the checkpoint and not used here.
    """

    def __init__(self, n_fft: int, hop_length: int, win_length: int) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        rows = 2 * (n_fft // 2 + 1)
        self.register_buffer("forward_basis", torch.zeros(rows, 1, n_fft))
        self.register_buffer("inverse_basis", torch.zeros(rows, 1, n_fft))

    def fixed_buffers(self) -> dict[str, torch.Tensor]:
        forward, inverse = stft_bases(self.n_fft, self.hop_length, self.win_length)
        return {"forward_basis": forward, "inverse_basis": inverse}

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """`(N, samples)` → magnitude `(N, n_fft/2+1, frames)`."""
        y = F.pad(y.unsqueeze(1), (max(0, self.win_length - self.hop_length), 0))
        spec = F.conv1d(y, self.forward_basis.to(y.dtype), stride=self.hop_length)
        real, imag = spec.chunk(2, dim=1)
        return torch.sqrt(real**2 + imag**2)


class MelSTFT(nn.Module):
    """Causal log-mel of the 16 kHz signal for the BWE generator; buffer `mel_basis`."""

    def __init__(self, config: BWEConfig) -> None:
        super().__init__()
        self.sample_rate = config.input_sampling_rate
        self.stft_fn = CausalSTFT(config.n_fft, config.hop_length, config.n_fft)
        self.register_buffer("mel_basis", torch.zeros(config.num_mels, config.n_fft // 2 + 1))

    def fixed_buffers(self) -> dict[str, torch.Tensor]:
        # Slaney mel scale and norm over 0 … sample_rate/2 (librosa's default filterbank).
        mels, freqs = self.mel_basis.shape
        return {"mel_basis": mel_filterbank(freqs, mels, self.sample_rate)}

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """`(B, C, samples)` → log-mel `(B, C, frames, num_mels)`."""
        batch, channels, samples = audio.shape
        magnitude = self.stft_fn(audio.reshape(batch * channels, samples))
        mel = torch.matmul(self.mel_basis.to(magnitude.dtype), magnitude)
        logmel = torch.log(torch.clamp(mel, min=LOG_FLOOR))
        return logmel.reshape(batch, channels, *logmel.shape[1:]).transpose(2, 3)


class VocoderWithBWE(_FixedBufferMixin, nn.Module):
    """BigVGAN-v2 at 16 kHz + bandwidth extension → `(B, 2, 3·T·160)` at 48 kHz."""

    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        if config.bwe is None:
            raise ValueError("VocoderWithBWE needs a config with a bwe section")
        self.config = config
        self.bwe = config.bwe
        self.output_sampling_rate = config.bwe.output_sampling_rate
        self.vocoder = Vocoder(config.generator, compute_buffers=False)
        self.bwe_generator = Vocoder(config.bwe.generator, compute_buffers=False)
        self.mel_stft = MelSTFT(config.bwe)
        self._resample_cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
        if not self.vocoder.conv_pre.weight.is_meta:
            self.reset_fixed_buffers()

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        # Float32 throughout: bf16 accumulation through ~100 convs degrades the spectrum.
        work = mel.float()
        # 1. main vocoder at the low rate → (B, 2, L)
        low = self.vocoder(work)
        out_len = low.shape[-1] * self.bwe.ratio
        # 2. right-pad to whole hops so the causal mel has exactly L/hop frames
        low = F.pad(low, (0, -low.shape[-1] % self.bwe.hop_length))
        # 3. residual from the BWE generator on the causal log-mel → (B, 2, ratio·L)
        residual = self.bwe_generator(self.mel_stft(low))
        # 4. skip path: Hann-sinc ×ratio resampling of the low-rate signal
        skip = self._resample(low)
        return torch.clamp(residual + skip, -1.0, 1.0)[..., :out_len].to(mel.dtype)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        ratio = self.bwe.ratio
        key = (x.device, x.dtype)
        if key not in self._resample_cache:
            taps = hann_sinc_resample_filter(ratio).to(device=x.device, dtype=x.dtype)
            self._resample_cache[key] = taps
        taps = self._resample_cache[key]
        # Kernel 2·width·ratio + 1: pad `width`, keep the samples aligned with the input grid.
        width = (taps.shape[-1] - 1) // (2 * ratio)
        return upsample_with_filter(
            x, taps, ratio, width, (2 * width * ratio, taps.shape[-1] - ratio)
        )

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Random weights for tiny test checkpoints; filters and bases from their formulas."""
        _init_generator_weights(self, generator)
        self.reset_fixed_buffers()


def build_vocoder(config: dict[str, Any], **options: Any) -> Vocoder | VocoderWithBWE:
    """`Vocoder` (LTX-2, 24 kHz) or `VocoderWithBWE` (LTX-2.3, 48 kHz) from the checkpoint
    config, picked by the presence of `vocoder.bwe`. Keys: raw `vocoder.X` → `X` (strip once).
    The output rate is the module's `output_sampling_rate`."""
    parsed = VocoderConfig.from_checkpoint_config(config)
    return VocoderWithBWE(parsed) if parsed.bwe else Vocoder(parsed.generator)


def vocoder_fixed_buffers(config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The formula values of every filter / STFT / mel buffer of the vocoder `config` builds,
    keyed like its `state_dict()` (raw key minus the leading `vocoder.`), float32 on CPU."""
    with torch.device("meta"):
        module = build_vocoder(config)
    return module.fixed_buffers()
