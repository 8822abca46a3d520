"""The LTX-2.5 text encoder file: Lightricks' Gemma 4 12B ("gemma4_unified"), its tokenizer and
the text projection in one safetensors file (ltx-2.5.md §2.2, §3.2).

- The Hugging Face config travels as the `gemma_config` metadata (model_type `gemma4_unified`,
  top-level `gemma_version`); the tokenizer and processor files travel as U8 tensors
  (`tokenizer_json`, `hf_asset__<file name>`). The model is built from that config through
  transformers' Gemma 4 classes, which also fill its non-persistent buffers (RoPE tables, the
  embedding scale).
- Gemma keys come in the ComfyUI-flat layout (`model.layers.N.*`, `vision_model.*`, …) or the
  HF-nested one; both are mapped to the transformers module names the reference uses, and the
  tied LM head is filled from the embeddings.
- Encoding is the Gemma 3 path of `text_encoder.GemmaTextEncoder` (strip, BOS prepended when the
  tokenizer does not add it, left padding to 1024, all L+1 hidden states of `model.model`).
- A transformer declares the Gemma it was trained with (`gemma_source_checkpoint`); the pair is
  checked before anything heavy loads (`check_text_encoder_pairing`).
- The 2.5 encoder only encodes. Prompt enhancement uses a separate generative Gemma directory;
  a Gemma 4 one (`gemma4`, `gemma4_text`) decodes greedily (no 5-gram repeated, at most 600 new
  tokens) with our system prompts (`enhance_with_gemma4`); Gemma 3 keeps
  `GemmaTextEncoder.enhance`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.families import parse_model_version
from ltx2cli.models.checkpoint import read_checkpoint
from ltx2cli.models.text_encoder import (
    GEMMA_MAX_LENGTH,
    GemmaTextEncoder,
    clean_enhanced_prompt,
    find_gemma_dir,
    system_prompt,
)
from ltx2cli.models.tiny_gemma import build_tiny_tokenizer

logger = logging.getLogger(__name__)

GEMMA4_MODEL_TYPE = "gemma4_unified"
ENHANCER_MODEL_TYPES = ("gemma4", "gemma4_text")
# Gemma 4 enhancers decode greedily (ltx-2.5.md §3.2).
GEMMA4_ENHANCE_SETTINGS = {"do_sample": False, "no_repeat_ngram_size": 5, "max_new_tokens": 600}
LTX25_GEMMA_VERSION = "gemma4-12b-ltx-v1"
TOKENIZER_KEY = "tokenizer_json"
ASSET_PREFIX = "hf_asset__"
PROJECTION_PREFIX = "text_embedding_projection."
# A file in the ComfyUI-flat layout has this key (the reference's test for the layout).
COMFY_FLAT_MARKER = "model.layers.0.post_feedforward_layernorm.weight"
_COMFY_FLAT = (
    ("model.layers.", "model.language_model.layers."),
    ("model.embed_tokens.", "model.language_model.embed_tokens."),
    ("model.norm.", "model.language_model.norm."),
    ("vision_model.", "model.embed_vision."),
    (
        "multi_modal_projector.embedding_projection.",
        "model.embed_vision.multimodal_embedder.embedding_projection.",
    ),
    ("audio_projector.", "model.embed_audio."),
)
_HF_NESTED = (
    "model.language_model.",
    "model.vision_embedder.",
    "model.embed_vision.",
    "model.embed_audio.",
)


def gemma_config_of(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The `gemma_config` metadata of a text-encoder file (a JSON object)."""
    info = read_checkpoint(path)
    config = info.metadata.get("gemma_config")
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{info.path.name} has no 'gemma_config' metadata: not an LTX-2.5 text encoder file",
            "pass the text_encoders/gemma4-12b-with-proj-ltx-2.5 file",
        )
    return config


def projection_sizes(gemma_config: Mapping[str, Any]) -> tuple[int, int]:
    """`(hidden size, hidden states)` that the text projection reads: H and L + 1."""
    text = gemma_config.get("text_config", gemma_config)
    return int(text["hidden_size"]), int(text["num_hidden_layers"]) + 1


def check_text_encoder_pairing(
    transformer_metadata: Mapping[str, Any], gemma_config: Mapping[str, Any] | None
) -> None:
    """The reference's Gemma check, before anything loads (ltx-2.5.md §2.2).

    A transformer naming its Gemma (`gemma_source_checkpoint.gemma_version`) needs a text
    encoder with that `gemma_version`. One that names none needs Gemma 3, unless its
    `model_version` is 2.4 or later: then it is an error, only a warning when the text encoder
    declares no version either. `gemma_config` None stands for a Gemma 3 directory.
    """
    source = transformer_metadata.get("gemma_source_checkpoint")
    if isinstance(source, str):
        try:
            source = json.loads(source)
        except json.JSONDecodeError:
            source = {"gemma_version": source}
    have = (gemma_config or {}).get("gemma_version")
    if isinstance(source, Mapping):
        want = source.get("gemma_version")
        if want != have:
            raise CheckpointError(
                f"text encoder version {have!r} does not match the transformer's {want!r}",
                f"use the text encoder released with the transformer ({want})",
            )
        return
    version = transformer_metadata.get("model_version")
    if parse_model_version(None if version is None else str(version)) >= (2, 4, 0):
        if have is None:
            logger.warning(
                "the transformer (model_version %s) names no Gemma and the text encoder no "
                "version; the pairing cannot be checked",
                version,
            )
            return
        raise CheckpointError(
            f"the transformer (model_version {version}) names no Gemma, but the text encoder "
            f"is {have!r}",
            "use a transformer file with gemma_source_checkpoint metadata",
        )
    if gemma_config is not None and gemma_config.get("model_type") == GEMMA4_MODEL_TYPE:
        raise CheckpointError(
            "this transformer was trained with Gemma 3, not the Gemma 4 text encoder",
            "use the Gemma 3 text encoder with LTX-2 / LTX-2.3 checkpoints",
        )


def _flat_key(module_key: str) -> str | None:
    """Inverse of the ComfyUI-flat map (longest module prefix first); None: not stored."""
    for flat, module in sorted(_COMFY_FLAT, key=lambda rule: -len(rule[1])):
        if module_key.startswith(module):
            return flat + module_key.removeprefix(module)
    return None


def gemma_module_key(key: str, comfy_flat: bool) -> str | None:
    """File key → transformers module key (None: not a Gemma tensor)."""
    if comfy_flat:
        for old, new in _COMFY_FLAT:
            if key.startswith(old):
                return new + key.removeprefix(old)
        return None
    return key if key.startswith(_HF_NESTED) else None


def _asset_files(handle: Any, keys: list[str]) -> dict[str, bytes]:
    files = {}
    if TOKENIZER_KEY in keys:
        files["tokenizer.json"] = bytes(handle.get_tensor(TOKENIZER_KEY).numpy().tobytes())
    for key in keys:
        if key.startswith(ASSET_PREFIX):
            files[key.removeprefix(ASSET_PREFIX)] = bytes(handle.get_tensor(key).numpy().tobytes())
    return files


def _gemma4_class() -> type:
    try:
        from transformers import Gemma4UnifiedForConditionalGeneration
    except ImportError as exc:
        import transformers

        raise CheckpointError(
            f"transformers {transformers.__version__} has no Gemma 4 ({GEMMA4_MODEL_TYPE}) model",
            "install a transformers release with gemma4_unified (5.8 or later)",
        ) from exc
    return Gemma4UnifiedForConditionalGeneration


def load_gemma4_text_encoder(
    path: str | os.PathLike[str],
    *,
    dtype: torch.dtype = torch.bfloat16,
    device: torch.device | str = "cpu",
    max_length: int = GEMMA_MAX_LENGTH,
) -> GemmaTextEncoder:
    """Build the Gemma 4 encoder and its tokenizer from the LTX-2.5 text-encoder file."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer

    model_class = _gemma4_class()
    gemma_config = gemma_config_of(path)
    if gemma_config.get("model_type") != GEMMA4_MODEL_TYPE:
        raise CheckpointError(
            f"{Path(path).name} holds a {gemma_config.get('model_type')!r} model, not "
            f"{GEMMA4_MODEL_TYPE}",
            "pass the LTX-2.5 text encoder file",
        )
    fields = {k: v for k, v in gemma_config.items() if k != "model_type"}
    config = AutoConfig.for_model(GEMMA4_MODEL_TYPE, **fields)
    with safe_open(os.fspath(path), framework="pt") as handle:
        keys = list(handle.keys())
        comfy_flat = COMFY_FLAT_MARKER in keys
        state: dict[str, torch.Tensor] = {}
        for key in keys:
            name = gemma_module_key(key, comfy_flat)
            if name is not None:
                state[name] = handle.get_tensor(key).to(dtype)
        assets = _asset_files(handle, keys)
    embeddings = "model.language_model.embed_tokens.weight"
    if embeddings in state:
        state.setdefault("lm_head.weight", state[embeddings])
    if "tokenizer.json" not in assets:
        raise CheckpointError(
            f"{Path(path).name} carries no tokenizer ('{TOKENIZER_KEY}')",
            "re-download the LTX-2.5 text encoder file",
        )
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # library code does not print
    try:
        model, info = model_class.from_pretrained(
            None, config=config, state_dict=state, dtype=dtype, output_loading_info=True
        )
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    if info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]:
        bad = [*sorted(info["missing_keys"]), *sorted(info["unexpected_keys"])]
        bad += [str(k) for k in info["mismatched_keys"]]
        raise CheckpointError(
            f"the Gemma 4 weights in {Path(path).name} do not fit its gemma_config "
            f"({len(bad)} missing, unexpected or mis-shaped tensors, e.g. {bad[0]})",
            "re-download the LTX-2.5 text encoder file",
        )
    with tempfile.TemporaryDirectory() as folder:
        for name, data in assets.items():
            (Path(folder) / name).write_bytes(data)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    return GemmaTextEncoder(model.to(device), tokenizer, max_length=max_length)


def write_tiny_gemma4_text_encoder(
    path: str | os.PathLike[str],
    *,
    video_dim: int,
    audio_dim: int,
    seed: int = 0,
    gemma_version: str = LTX25_GEMMA_VERSION,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    multimodal: bool = False,
) -> Path:
    """Write a random tiny LTX-2.5 text-encoder file: a `gemma4_unified` in the ComfyUI-flat
    layout (with `multimodal`, its vision and audio embedders too), its tokenizer (no automatic
    BOS, like Gemma 4's) as U8 tensors and the text projection to `video_dim` / `audio_dim`
    (the transformer's widths)."""
    from safetensors.torch import save_file
    from transformers import AutoConfig

    tokenizer = build_tiny_tokenizer()
    head_dim = 16
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": head_dim,
        "layer_types": ["sliding_attention"] * (num_hidden_layers - 1) + ["full_attention"],
        "sliding_window": 64,
        "max_position_embeddings": 2048,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    vision = audio = None
    if multimodal:
        vision = {"patch_size": 4, "mm_embed_dim": 16, "mm_posemb_size": 8}
        vision["output_proj_dims"] = hidden_size
        audio = {"audio_embed_dim": 8}
    config = AutoConfig.for_model(
        GEMMA4_MODEL_TYPE, text_config=text, vision_config=vision, audio_config=audio
    )
    torch.manual_seed(seed)
    model = _gemma4_class()(config)
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        flat = _flat_key(key)
        if flat is None:
            continue  # the tied LM head is not stored
        if value.ndim == 2:
            value = torch.randn(value.shape, generator=generator) / value.shape[1] ** 0.5
        elif key.endswith("layer_scalar"):
            value = torch.ones(value.shape)
        else:
            value = 1 + 0.1 * torch.randn(value.shape, generator=generator)
        tensors[flat] = value.to(torch.bfloat16).contiguous()
    width = hidden_size * (num_hidden_layers + 1)
    for name, dim in (("video", video_dim), ("audio", audio_dim)):
        tensors[f"{PROJECTION_PREFIX}{name}_aggregate_embed.weight"] = (
            torch.randn(dim, width, generator=generator) / width**0.5
        ).to(torch.bfloat16)
        tensors[f"{PROJECTION_PREFIX}{name}_aggregate_embed.bias"] = (
            0.02 * torch.randn(dim, generator=generator)
        ).to(torch.bfloat16)
    tokenizer_json = json.loads(tokenizer.backend_tokenizer.to_str())
    tokenizer_json["post_processor"] = None  # Gemma 4's tokenizer adds no BOS itself
    special = {
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    for key, data in (
        (TOKENIZER_KEY, json.dumps(tokenizer_json).encode()),
        (f"{ASSET_PREFIX}tokenizer_config.json", json.dumps(special).encode()),
    ):
        tensors[key] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    gemma_config = config.to_dict() | {"gemma_version": gemma_version}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, partial, metadata={"format": "pt", "gemma_config": json.dumps(gemma_config)})
    partial.replace(path)
    return path


def load_gemma4_enhancer(
    root: str | os.PathLike[str],
    *,
    dtype: torch.dtype = torch.bfloat16,
    device: torch.device | str = "cpu",
) -> GemmaTextEncoder:
    """A generative Gemma 4 model directory (dense, e.g. E2B-it) for prompt enhancement."""
    from transformers import AutoConfig, AutoTokenizer

    folder = find_gemma_dir(Path(root))
    config = AutoConfig.from_pretrained(folder)
    if config.model_type not in ENHANCER_MODEL_TYPES:
        raise UsageError(
            f"{folder} holds a {config.model_type!r} model, not a generative Gemma 4",
            "point --prompt-enhancer at a Gemma 4 (gemma4) or Gemma 3 model directory",
        )
    if config.model_type == "gemma4":
        from transformers import Gemma4ForConditionalGeneration as model_class
    else:
        from transformers import Gemma4ForCausalLM as model_class
    model = model_class.from_pretrained(folder, dtype=dtype).to(device)
    return GemmaTextEncoder(model, AutoTokenizer.from_pretrained(folder))


@torch.inference_mode()
def enhance_with_gemma4(
    enhancer: GemmaTextEncoder, prompt: str, *, static_cache: bool = False
) -> str:
    """Rewrite `prompt` with a Gemma 4 enhancer: our text-to-video system prompt, greedy.

    `static_cache` decodes with a preallocated (static) KV cache, as `--enhance-static-cache`.
    """
    tokenizer = enhancer.tokenizer
    chat = [
        {"role": "system", "content": system_prompt("t2v")},
        {"role": "user", "content": f"user prompt: {prompt.strip()}"},
    ]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    ids = ids.to(enhancer.device)
    generated = enhancer.model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        pad_token_id=tokenizer.pad_token_id,
        **GEMMA4_ENHANCE_SETTINGS,
        **({"cache_implementation": "static"} if static_cache else {}),
    )
    return clean_enhanced_prompt(
        tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True)
    )
