"""Tiny random LTX-2.5 checkpoints: one file per released file, in the split layout.

- `write_tiny_ltx25(folder)` writes every file of the `Lightricks/LTX-2.5` repository under its
  hub path (transformer, text encoder, diffusion and conv video VAEs, audio VAE, spatial and
  temporal upsamplers, duration head, distilled LoRA) with the raw prefixes and metadata of
  ltx-2.5.md §2.2: bare `encoder.`/`decoder.` video-VAE keys, the diffusion decoder's fused
  `qkv` and `t_embedder.mlp`, its module-less `decoder.type_emb`, `duration_head.*`,
  `diffusion_model.<module>.lora_{A,B}.weight` at rank min(r, in, out), and every
  `*scale_shift_table*` of the transformer file stored as float32.
- Shapes shrink as in `tiny.tiny_config` (LTX-2.3 plus the 2.5 transformer deltas); the video
  latent keeps the tiny 16 channels, so the diffusion decoder reads 16-channel latents.
- Weights come from each module's `init_weights(generator)` with one seeded generator, in file
  order, so a seed writes the same bytes every time.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ltx2cli.families import GEN_2_3
from ltx2cli.models.audio_vae import build_audio_decoder, build_audio_encoder
from ltx2cli.models.diffusion_vae import (
    build_diffusion_decoder,
    build_diffusion_vae_encoder,
    raw_decoder_state,
)
from ltx2cli.models.duration_head import build_duration_head
from ltx2cli.models.gemma4 import LTX25_GEMMA_VERSION, write_tiny_gemma4_text_encoder
from ltx2cli.models.text_connectors import build_audio_connector, build_video_connector
from ltx2cli.models.tiny import (
    TINY_VIDEO_LATENT_CHANNELS,
    tiny_config,
    tiny_upsampler_config,
)
from ltx2cli.models.transformer import build_transformer
from ltx2cli.models.upsampler import build_upsampler
from ltx2cli.models.video_vae import build_video_decoder, build_video_encoder
from ltx2cli.models.vocoder import build_vocoder

MODEL_VERSION_2_5 = "2.5.0"
TINY_LICENSE = "LTX-2.x Community License Agreement (tiny test checkpoint)"
TINY_LORA_RANK = 8
TRANSFORMER_PREFIX = "model.diffusion_model."

# Hub paths of the released files (ltx-2.5.md §1), relative to the repository root.
FILES = {
    "transformer": "diffusion_models/ltx-2.5-22b-distilled-transformer-bf16.safetensors",
    "dev_transformer": "diffusion_models/ltx-2.5-22b-dev-transformer-bf16.safetensors",
    "text_encoder": "text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors",
    "video_vae": "vae/ltx-2.5-video-vae-bf16.safetensors",
    "video_vae_conv": "vae/ltx-2.5-video-vae-conv-bf16.safetensors",
    "audio_vae": "vae/ltx-2.5-audio-vae-bf16.safetensors",
    "spatial_upscaler": (
        "latent_upscale_models/ltx-2.5-latent-spatial-upscaler-x2-bf16-1.0.safetensors"
    ),
    "temporal_upscaler": (
        "latent_upscale_models/ltx-2.5-latent-temporal-upscaler-x2-bf16-1.0.safetensors"
    ),
    "duration_head": "model_patches/ltx-2.5-duration-head-bf16.safetensors",
    "distilled_lora": "loras/ltx-2.5-22b-distilled-lora-450-bf16.safetensors",
}

# A 4-stage decoder on the tiny 16-channel latent: widths 64 → 32 → 16 → 16 → 16.
_TINY_DIFFUSION_DECODER = {
    "default_num_inference_steps": 1,
    "head_dim": 16,
    "in_channels": TINY_VIDEO_LATENT_CHANNELS,
    "out_channels": 3,
    "patch_size": 4,
    "stage5_kernel": [3, 3, 3],
    "stage_channels": [64, 32, 16, 16, 16],
    "stage_depths": [1, 1, 1, 1, 2],
    "stage_kernels": [[3, 3, 3]] * 5,
    "t_emb_dim": 16,
    "timestep_scale_multiplier": 1000.0,
    "upsamples": [[[1, 2, 2], 2], [[2, 1, 1], 2], [[2, 2, 2], 1], [[2, 2, 2], 1]],
}


def tiny_ltx25_config() -> dict[str, Any]:
    """The tiny LTX-2.3 config with the 2.5 transformer deltas (a fresh copy)."""
    config = tiny_config(GEN_2_3)
    config["transformer"] |= {"ff_bias": False, "use_keyframes_abs_pos_embedding": True}
    return config


def tiny_diffusion_vae_config() -> dict[str, Any]:
    """`config` of the tiny diffusion video-VAE file (nested `CausalDiffusionVAE` layout)."""
    vae = tiny_config(GEN_2_3)["vae"]
    encoder = {
        "blocks": vae["encoder_blocks"],
        "dims": 3,
        "in_channels": 3,
        "latent_log_var": vae["latent_log_var"],
        "norm_layer": vae["norm_layer"],
        "out_channels": TINY_VIDEO_LATENT_CHANNELS,
        "patch_size": vae["patch_size"],
        "spatial_padding_mode": vae["spatial_padding_mode"],
    }
    return {
        "vae": {
            "_class_name": "CausalDiffusionVAE",
            "decoder": copy.deepcopy(_TINY_DIFFUSION_DECODER),
            "encoder": encoder,
            "latent_channels": TINY_VIDEO_LATENT_CHANNELS,
            "model_output_type": "x0",
        }
    }


def _init(module: nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    module.init_weights(generator)
    return module.state_dict()


def _prefixed(
    state: dict[str, torch.Tensor], prefix: str, shared: str | None = None, shared_to: str = ""
) -> dict[str, torch.Tensor]:
    """`prefix + key`; keys under `shared` (latent statistics) go to `shared_to + key`."""
    out = {}
    for key, value in state.items():
        if shared is not None and key.startswith(shared):
            out[shared_to + key] = value
        else:
            out[prefix + key] = value
    return out


def _save(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(partial), metadata=text)
    os.replace(partial, path)
    return path


def _cast(
    tensors: dict[str, torch.Tensor], dtype: torch.dtype, f32: str | None
) -> dict[str, torch.Tensor]:
    """Floating tensors to `dtype`, those whose key contains `f32` to float32."""
    return {
        k: v.to(torch.float32 if f32 is not None and f32 in k else dtype)
        if v.is_floating_point()
        else v
        for k, v in tensors.items()
    }


def _transformer_file(config: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
    tensors = _prefixed(_init(build_transformer(config), generator), TRANSFORMER_PREFIX)
    for name, build in (("video", build_video_connector), ("audio", build_audio_connector)):
        state = _init(build(config), generator)
        tensors |= _prefixed(state, f"{TRANSFORMER_PREFIX}{name}_embeddings_connector.")
    return tensors


def _lora_file(config: dict, generator: torch.Generator, rank: int) -> dict[str, torch.Tensor]:
    """A pair for every Linear of the transformer (no connectors) at rank min(r, in, out)."""
    with torch.device("meta"):
        model = build_transformer(config)
    tensors = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            r = min(rank, module.in_features, module.out_features)
            a = torch.randn(r, module.in_features, generator=generator) / module.in_features**0.5
            b = 0.01 * torch.randn(module.out_features, r, generator=generator)
            tensors[f"diffusion_model.{name}.lora_A.weight"] = a
            tensors[f"diffusion_model.{name}.lora_B.weight"] = b
    return tensors


def write_tiny_ltx25(
    folder: str | os.PathLike[str],
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    files: tuple[str, ...] | None = None,
) -> dict[str, Path]:
    """Write the tiny LTX-2.5 files under `folder` (hub paths); `files` limits which (names of
    `FILES`). Returns name → path."""
    folder = Path(folder)
    config = tiny_ltx25_config()
    generator = torch.Generator().manual_seed(seed)
    base = {"license": TINY_LICENSE, "model_version": MODEL_VERSION_2_5}
    transformer_meta = base | {
        "config": {"transformer": config["transformer"]},
        "gemma_source_checkpoint": {"gemma_version": LTX25_GEMMA_VERSION},
    }
    vae = tiny_diffusion_vae_config()
    conv_vae = {"vae": config["vae"]}
    audio = {"audio_vae": config["audio_vae"], "vocoder": config["vocoder"]}
    stats = "per_channel_statistics."

    def video_vae() -> dict[str, torch.Tensor]:
        tensors = _prefixed(
            _init(build_diffusion_vae_encoder(vae), generator),
            "encoder.",
            stats,
        )
        decoder = build_diffusion_decoder(vae)
        raw = raw_decoder_state(_init(decoder, generator))
        tensors |= {k: v for k, v in _prefixed(raw, "decoder.", stats).items() if k not in tensors}
        # In the released file, with no module behind it (ignored by the loader).
        tensors["decoder.type_emb"] = 0.02 * torch.randn(2, 16, generator=generator)
        return tensors

    def conv_video_vae() -> dict[str, torch.Tensor]:
        tensors = _prefixed(_init(build_video_encoder(conv_vae), generator), "encoder.", stats)
        decoder = _prefixed(_init(build_video_decoder(conv_vae), generator), "decoder.", stats)
        return tensors | {k: v for k, v in decoder.items() if k not in tensors}

    def audio_vae() -> dict[str, torch.Tensor]:
        tensors = _prefixed(
            _init(build_audio_encoder(audio), generator),
            "audio_vae.encoder.",
            stats,
            "audio_vae.",
        )
        decoder = _prefixed(
            _init(build_audio_decoder(audio), generator), "audio_vae.decoder.", stats, "audio_vae."
        )
        tensors |= {k: v for k, v in decoder.items() if k not in tensors}
        return tensors | _prefixed(_init(build_vocoder(audio), generator), "vocoder.")

    def upsampler(kind: str) -> Callable[[], dict[str, torch.Tensor]]:
        return lambda: _init(build_upsampler(tiny_upsampler_config(kind, GEN_2_3)), generator)

    duration_config = {
        "transformer": {
            "cross_attention_dim": config["transformer"]["cross_attention_dim"],
            "audio_cross_attention_dim": config["transformer"]["audio_cross_attention_dim"],
        }
    }
    plans: dict[str, tuple[Callable[[], dict[str, torch.Tensor]], dict[str, Any]]] = {
        "transformer": (lambda: _transformer_file(config, generator), transformer_meta),
        "dev_transformer": (lambda: _transformer_file(config, generator), transformer_meta),
        "video_vae": (video_vae, base | {"config": vae}),
        "video_vae_conv": (conv_video_vae, base | {"config": conv_vae}),
        "audio_vae": (audio_vae, base | {"config": audio}),
        "spatial_upscaler": (
            upsampler("spatial-x2"),
            {"config": tiny_upsampler_config("spatial-x2", GEN_2_3), "license": TINY_LICENSE},
        ),
        "temporal_upscaler": (
            upsampler("temporal-x2"),
            {"config": tiny_upsampler_config("temporal-x2", GEN_2_3)},
        ),
        "duration_head": (
            lambda: _prefixed(
                _init(build_duration_head(duration_config), generator), "duration_head."
            ),
            base | {"config": duration_config},
        ),
        "distilled_lora": (
            lambda: _lora_file(config, generator, TINY_LORA_RANK),
            base | {"lora_rank": str(TINY_LORA_RANK), "lora_alpha": str(TINY_LORA_RANK)},
        ),
    }
    written: dict[str, Path] = {}
    for name in files or tuple(FILES):
        path = folder / FILES[name]
        if name == "text_encoder":
            written[name] = write_tiny_gemma4_text_encoder(
                path,
                video_dim=config["transformer"]["cross_attention_dim"],
                audio_dim=config["transformer"]["audio_cross_attention_dim"],
                seed=seed,
            )
            continue
        make, metadata = plans[name]
        # The transformer files store every AdaLN table in float32.
        f32 = "scale_shift_table" if name.endswith("transformer") else None
        tensors = _cast(make(), dtype, f32)
        written[name] = _save(path, tensors, metadata)
    return written
