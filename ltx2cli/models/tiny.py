"""Tiny random-weight checkpoints in the official on-disk layout, for tests, benchmarks and `demo`.

- `write_tiny_checkpoint` writes one monolithic safetensors file per generation with every raw
  prefix of the released files (transformer, connectors, text projection, video VAE, audio VAE,
  vocoder) and `__metadata__` holding the `config` JSON in the official nested shape (plus
  `model_version` for LTX-2.3). The configs shrink layers, heads and channel widths but keep
  every structural feature of their generation (2.3: cross-attention AdaLN, gated attention,
  feature extractor V2, non-residual VAE decoder, BigVGAN + BWE vocoder).
- Video latents have `TINY_VIDEO_LATENT_CHANNELS` (16) channels instead of 128: the video
  encoder's widths start at the latent width and double per stage, so 128 would make a 300M
  parameter encoder. Code that sizes video latents must read `vae.latent_channels`. The audio
  latent interface stays real (8 × 16 features per token, 64 mel bins).
- `write_tiny_upsampler` writes a separate latent-upsampler file (flat config, no key prefix)
  for every released variant.
- Weights come from the modules' own `init_weights(generator)` with a seeded generator, so the
  same seed writes the same bytes and forwards stay finite.
- The raw key names are derived from the loader's key table, the one source of truth.
- `write_tiny_gemma` (from `ltx2cli.models.tiny_gemma`) writes the matching tiny Gemma 3
  directory; the text projection is sized for it (`TINY_GEMMA_HIDDEN_SIZE`,
  `TINY_GEMMA_HIDDEN_STATES`).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import torch

from ltx2cli.errors import UsageError
from ltx2cli.families import GEN_2_0, GEN_2_3
from ltx2cli.models.loading import COMPONENTS, component_builder
from ltx2cli.models.tiny_gemma import TinyGemmaConfig, write_tiny_gemma

__all__ = ["write_tiny_checkpoint", "write_tiny_gemma", "write_tiny_upsampler"]

GENERATIONS = (GEN_2_0, GEN_2_3)
MODEL_VERSION_2_3 = "2.3.0"
TINY_VIDEO_LATENT_CHANNELS = 16
TINY_GEMMA_HIDDEN_SIZE = TinyGemmaConfig().hidden_size
TINY_GEMMA_HIDDEN_STATES = TinyGemmaConfig().num_hidden_layers + 1  # embeddings first
TINY_COMPONENTS = (
    "transformer",
    "video_connector",
    "audio_connector",
    "text_projection",
    "video_encoder",
    "video_decoder",
    "audio_encoder",
    "audio_decoder",
    "vocoder",
)

_DILATIONS = [[1, 3, 5], [1, 3, 5], [1, 3, 5]]

# The official nested config of the 19B file, shrunk: video 2 heads × 16, audio 2 heads × 8,
# two blocks, connector width equal to the tiny Gemma's hidden size.
_TINY_2_0: dict[str, Any] = {
    "transformer": {
        "_class_name": "AVTransformer3DModel",
        "activation_fn": "gelu-approximate",
        "attention_bias": True,
        "attention_head_dim": 16,
        "attention_type": "default",
        "audio_attention_head_dim": 8,
        "audio_cross_attention_dim": 16,
        "audio_num_attention_heads": 2,
        "audio_out_channels": 128,
        "audio_positional_embedding_max_pos": [20],
        "av_ca_timestep_scale_multiplier": 1000.0,
        "av_cross_ada_norm": True,
        "caption_channels": TINY_GEMMA_HIDDEN_SIZE,
        "causal_temporal_positioning": True,
        "connector_attention_head_dim": 16,
        "connector_norm_output": True,
        "connector_num_attention_heads": 2,
        "connector_num_layers": 1,
        "connector_num_learnable_registers": 128,
        "connector_positional_embedding_max_pos": [4096],
        "cross_attention_dim": 32,
        "cross_attention_norm": True,
        "double_self_attention": False,
        "dropout": 0.0,
        "frequencies_precision": "float64",
        "in_channels": TINY_VIDEO_LATENT_CHANNELS,
        "norm_elementwise_affine": False,
        "norm_eps": 1e-06,
        "norm_num_groups": 32,
        "num_attention_heads": 2,
        "num_embeds_ada_norm": 1000,
        "num_layers": 2,
        "num_vector_embeds": None,
        "only_cross_attention": False,
        "out_channels": TINY_VIDEO_LATENT_CHANNELS,
        "positional_embedding_max_pos": [20, 2048, 2048],
        "positional_embedding_theta": 10000.0,
        "positional_embedding_type": "rope",
        "qk_norm": "rms_norm",
        "rope_type": "split",
        "share_ff": False,
        "standardization_norm": "rms_norm",
        "timestep_scale_multiplier": 1000,
        "upcast_attention": False,
        "use_audio_video_cross_attention": True,
        "use_embeddings_connector": True,
        "use_linear_projection": False,
        "use_middle_indices_grid": True,
    },
    "vae": {
        "_class_name": "CausalVideoAutoencoder",
        "causal_decoder": False,
        "decoder_base_channels": 8,
        "decoder_blocks": [
            ["res_x", {"inject_noise": False, "num_layers": 1}],
            ["compress_all", {"multiplier": 2, "residual": True}],
            ["res_x", {"inject_noise": False, "num_layers": 1}],
            ["compress_all", {"multiplier": 2, "residual": True}],
            ["res_x", {"inject_noise": False, "num_layers": 1}],
            ["compress_all", {"multiplier": 2, "residual": True}],
            ["res_x", {"inject_noise": False, "num_layers": 1}],
        ],
        "dims": 3,
        "encoder_blocks": [
            ["res_x", {"num_layers": 1}],
            ["compress_space_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}],
            ["compress_time_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}],
            ["compress_all_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}],
            ["compress_all_res", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}],
        ],
        "in_channels": 3,
        "latent_channels": TINY_VIDEO_LATENT_CHANNELS,
        "latent_log_var": "uniform",
        "norm_layer": "pixel_norm",
        "normalize_latent_channels": False,
        "out_channels": 3,
        "patch_size": 4,
        "scaling_factor": 1.0,
        "timestep_conditioning": False,
        "use_quant_conv": False,
    },
    "audio_vae": {
        "model": {
            "params": {
                "ddconfig": {
                    "attn_resolutions": [],
                    "causality_axis": "height",
                    "ch": 128,  # = z_channels · latent mel bins, fixed by the latent interface
                    "ch_mult": [1, 1, 2],
                    "double_z": True,
                    "dropout": 0.0,
                    "in_channels": 2,
                    "mel_bins": 64,
                    "mid_block_add_attention": False,
                    "norm_type": "pixel",
                    "num_res_blocks": 1,
                    "out_ch": 2,
                    "resolution": 256,
                    "z_channels": 8,
                },
                "sampling_rate": 16000,
            }
        },
        "preprocessing": {
            "mel": {"mel_fmax": 8000, "mel_fmin": 0, "n_mel_channels": 64},
            "stft": {"causal": True, "filter_length": 1024, "hop_length": 160, "win_length": 1024},
        },
    },
    "vocoder": {
        "output_sampling_rate": 24000,
        "resblock": "1",
        "resblock_dilation_sizes": _DILATIONS,
        "resblock_kernel_sizes": [3, 7, 11],
        "stereo": True,
        "upsample_initial_channel": 64,
        "upsample_kernel_sizes": [16, 15, 8, 4, 4],
        "upsample_rates": [6, 5, 2, 2, 2],
    },
    "scheduler": {
        "_class_name": "RectifiedFlowScheduler",
        "num_train_timesteps": 1000,
        "sampler": "LinearQuadratic",
    },
}

# LTX-2.3 changes on top of the tiny 19B config: cross-attention AdaLN, gated attention,
# feature extractor V2, caption projection before the connectors, and their config keys.
_TINY_2_3_TRANSFORMER = {
    "apply_gated_attention": True,
    "audio_connector_attention_head_dim": 8,
    "audio_connector_num_attention_heads": 2,
    "caption_proj_before_connector": True,
    "caption_proj_input_norm": False,
    "caption_projection_first_linear": False,
    "caption_projection_second_linear": False,
    "connector_apply_gated_attention": True,
    "connector_learnable_registers_std": 1,
    "connector_num_layers": 2,
    "cross_attention_adaln": True,
    "text_encoder_norm_type": "per_token_rms",
}
_TINY_2_3_VAE = {
    "decoder_blocks": [
        ["res_x", {"num_layers": 1}],
        ["compress_space", {"multiplier": 2}],
        ["res_x", {"num_layers": 1}],
        ["compress_time", {"multiplier": 2}],
        ["res_x", {"num_layers": 1}],
        ["compress_all", {"multiplier": 1}],
        ["res_x", {"num_layers": 1}],
        ["compress_all", {"multiplier": 2}],
        ["res_x", {"num_layers": 1}],
    ],
    "encoder_blocks": [
        ["res_x", {"num_layers": 1}],
        ["compress_space_res", {"multiplier": 2}],
        ["res_x", {"num_layers": 1}],
        ["compress_time_res", {"multiplier": 2}],
        ["res_x", {"num_layers": 1}],
        ["compress_all_res", {"multiplier": 2}],
        ["res_x", {"num_layers": 1}],
        ["compress_all_res", {"multiplier": 1}],
        ["res_x", {"num_layers": 1}],
    ],
    "spatial_padding_mode": "zeros",
}
_AMP = {
    "activation": "snakebeta",
    "resblock": "AMP1",
    "resblock_dilation_sizes": _DILATIONS,
    "resblock_kernel_sizes": [3, 7, 11],
    "stereo": True,
    "use_bias_at_final": False,
    "use_tanh_at_final": False,
}
_TINY_2_3_VOCODER = {
    "bwe": {
        **_AMP,
        "apply_final_activation": False,
        "hop_length": 80,
        "input_sampling_rate": 16000,
        "n_fft": 512,
        "num_mels": 64,
        "output_sampling_rate": 48000,
        "upsample_initial_channel": 64,
        "upsample_kernel_sizes": [12, 11, 4, 4, 4],
        "upsample_rates": [6, 5, 2, 2, 2],
        "win_size": 512,
    },
    "vocoder": {
        **_AMP,
        "upsample_initial_channel": 128,
        "upsample_kernel_sizes": [11, 4, 4, 4, 4, 4],
        "upsample_rates": [5, 2, 2, 2, 2, 2],
    },
}

# Flat upsampler configs: (generation, kind) → the released file's structure, mid width 32.
_UPSAMPLER_BASE = {
    "dims": 3,
    "in_channels": TINY_VIDEO_LATENT_CHANNELS,
    "mid_channels": 32,
    "num_blocks_per_stage": 1,
}
UPSAMPLERS: dict[tuple[str, str], dict[str, Any]] = {
    (GEN_2_0, "spatial-x2"): {"rational_resampler": True, "spatial_scale": 2.0},
    (GEN_2_0, "temporal-x2"): {"spatial_upsample": False, "temporal_upsample": True},
    (GEN_2_3, "spatial-x2"): {"rational_resampler": False, "spatial_scale": 2.0},
    (GEN_2_3, "spatial-x1.5"): {"rational_resampler": True, "spatial_scale": 1.5},
    (GEN_2_3, "temporal-x2"): {"spatial_upsample": False, "temporal_upsample": True},
}


def _check_generation(generation: str) -> None:
    if generation not in GENERATIONS:
        raise UsageError(
            f"unknown generation {generation!r}", f"use one of: {', '.join(GENERATIONS)}"
        )


def tiny_config(generation: str = GEN_2_3) -> dict[str, Any]:
    """The embedded `config` of a tiny checkpoint (a fresh copy)."""
    _check_generation(generation)
    config = copy.deepcopy(_TINY_2_0)
    if generation == GEN_2_3:
        config["transformer"].update(copy.deepcopy(_TINY_2_3_TRANSFORMER))
        config["vae"].update(copy.deepcopy(_TINY_2_3_VAE))
        config["vocoder"] = copy.deepcopy(_TINY_2_3_VOCODER)
    return config


def tiny_upsampler_config(kind: str = "spatial-x2", generation: str = GEN_2_3) -> dict[str, Any]:
    """The flat `config` of a tiny upsampler file."""
    _check_generation(generation)
    try:
        variant = UPSAMPLERS[(generation, kind)]
    except KeyError:
        kinds = sorted(k for g, k in UPSAMPLERS if g == generation)
        raise UsageError(
            f"no {kind!r} upsampler for LTX-{generation}", f"use one of: {', '.join(kinds)}"
        ) from None
    defaults = {"rational_resampler": False, "spatial_scale": 2.0, "spatial_upsample": True}
    return {**_UPSAMPLER_BASE, **defaults, "temporal_upsample": False, **variant}


def builder_options(component: str) -> dict[str, Any]:
    """Builder options the tiny checkpoint needs (the tiny Gemma's width for the projection)."""
    if component == "text_projection":
        return {
            "gemma_hidden_size": TINY_GEMMA_HIDDEN_SIZE,
            "gemma_hidden_states": TINY_GEMMA_HIDDEN_STATES,
        }
    return {}


def _raw_key(component: str, key: str) -> str:
    """Invert the first (official monolithic) layout of the loader's table for `component`."""
    rules = [(raw, mod) for raw, mod in COMPONENTS[component].layouts[0] if mod is not None]
    for raw, mod in sorted(rules, key=lambda r: -len(r[1])):
        if key.startswith(mod):
            return raw + key[len(mod) :]
    raise AssertionError(f"no raw prefix for {component} key {key}")  # table invariant


def _random_state(
    component: str,
    config: dict[str, Any],
    generator: torch.Generator,
    options: dict[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    options = builder_options(component) if options is None else options
    module = component_builder(COMPONENTS[component])(config, **options)
    module.init_weights(generator)
    return module.state_dict()


def _save(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype) if t.is_floating_point() and t.dim() > 0 else t


def write_tiny_checkpoint(
    path: str | os.PathLike[str],
    generation: str = GEN_2_3,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    gemma: tuple[int, int] | None = None,
) -> Path:
    """Write a tiny monolithic checkpoint (random weights from `seed`) and return its path.

    Tensors are stored in `dtype` (bf16 like the released files); 0-d scalars stay float32.
    `gemma` = (hidden size, hidden states) sizes an LTX-2.3 text projection for another Gemma
    than the tiny one (the demo model pairs it with the 270M Gemma 3).
    """
    config = tiny_config(generation)
    projection = builder_options("text_projection")
    if gemma is not None:
        if generation != GEN_2_3:
            raise UsageError("only a tiny LTX-2.3 checkpoint can be sized for another Gemma")
        config["transformer"]["caption_channels"] = gemma[0]
        projection = {"gemma_hidden_size": gemma[0], "gemma_hidden_states": gemma[1]}
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for component in TINY_COMPONENTS:
        options = projection if component == "text_projection" else None
        for key, value in _random_state(component, config, generator, options).items():
            raw = _raw_key(component, key)
            # Encoder and decoder share one set of latent statistics in the file.
            tensors.setdefault(raw, _cast(value, dtype))
    metadata = {"config": json.dumps(config)}
    if generation == GEN_2_3:
        metadata["model_version"] = MODEL_VERSION_2_3
    return _save(Path(path), tensors, metadata)


def write_tiny_upsampler(
    path: str | os.PathLike[str],
    kind: str = "spatial-x2",
    generation: str = GEN_2_3,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """Write a tiny latent-upsampler file (`spatial-x2`, `spatial-x1.5`, `temporal-x2`)."""
    config = tiny_upsampler_config(kind, generation)
    generator = torch.Generator().manual_seed(seed)
    state = _random_state("upsampler", config, generator)
    tensors = {k: _cast(v, dtype) for k, v in state.items()}
    return _save(Path(path), tensors, {"config": json.dumps(config)})
