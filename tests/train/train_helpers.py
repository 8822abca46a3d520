"""Helpers of the training tests: synthetic clips and running the `ltx2` command."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

CLIP_FPS = 8.0
CLIP_FRAMES = 17
CLIP_SIZE = (64, 96)  # (H, W)
AUDIO_RATE = 48000
TONES_HZ = (330.0, 440.0, 550.0)
BUCKET = "96x64x9"
RANK = 4
# Words the tiny tokenizer knows, so every caption encodes differently.
CAPTIONS = (
    "a red fox runs in the snow with wind sound",
    "a blue bird flies in the sky with music",
    "a green car in the city street with voice",
)
SILENT_CAPTION = "a white cat walks at night"


def moving_square(index: int, frames: int = CLIP_FRAMES, size=CLIP_SIZE) -> torch.Tensor:
    """uint8 `[F, H, W, 3]`: a coloured square crossing a grey background."""
    h, w = size
    video = torch.full((frames, h, w, 3), 60, dtype=torch.uint8)
    colour = torch.tensor(
        [(200, 40, 40), (40, 200, 40), (40, 40, 200)][index % 3], dtype=torch.uint8
    )
    for f in range(frames):
        x = (f * 4 + index * 10) % (w - 16)
        video[f, 20:36, x : x + 16] = colour
    return video


def tone(freq: float, seconds: float) -> torch.Tensor:
    t = torch.arange(round(seconds * AUDIO_RATE)) / AUDIO_RATE
    return (0.3 * torch.sin(2 * math.pi * freq * t)).unsqueeze(0).repeat(2, 1)


def run_ltx2(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 900):
    return subprocess.run(
        [sys.executable, "-m", "ltx2cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def run_preprocess(data: Path, out: Path, model: tuple[Path, Path], *extra: str):
    """`ltx2 --json preprocess DATA -o OUT` with the tiny checkpoint and Gemma, bucket BUCKET."""
    checkpoint, gemma = model
    return run_ltx2(
        "--json", "preprocess", str(data), "-o", str(out), "-m", str(checkpoint),
        "-t", str(gemma), "-b", BUCKET, *extra,
    )  # fmt: skip


def _word_tokenizer(special: list[str], words: list[str], kept: list[str]):
    """(vocab, tokenizer): a word-level Qwen-style tokenizer over `special` tokens, `words` and
    single characters; `kept` special tokens are never split."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(special)}
    for w in [*words, *"abcdefghijklmnopqrstuvwxyz0123456789.,:!?'\n"]:
        vocab.setdefault(w, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        extra_special_tokens=kept,  # kept whole by the tokenizer
    )
    return vocab, tokenizer


def write_tiny_qwen_vl(path: Path) -> Path:
    """A random tiny Qwen2.5-VL model folder (config, weights, tokenizer, image processor)."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
    )
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    special = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
        "<unk>",
    ]
    words = ["a", "the", "red", "green", "blue", "square", "moves", "on", "grey", "camera"]
    vocab, tokenizer = _word_tokenizer(special, words, kept=special[1:7])
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
        "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "intermediate_size": 64,
            "max_position_embeddings": 4096,
            "bos_token_id": None,
            "pad_token_id": 0,
            "eos_token_id": vocab["<|im_end|>"],
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        },
        vision_config={
            "depth": 1,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_heads": 2,
            "out_hidden_size": 32,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 28,
            "fullatt_block_indexes": [0],
        },
        image_token_id=vocab["<|image_pad|>"],
        video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"],
        vision_end_token_id=vocab["<|vision_end|>"],
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config)
    # Random weights may stop at once; suppressing the special tokens (EOS included) makes
    # every caption max_new_tokens words long.
    model.generation_config.suppress_tokens = [vocab[t] for t in special]
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    Qwen2VLImageProcessorPil(
        min_pixels=28 * 28 * 4,
        max_pixels=56 * 56 * 4,
        patch_size=14,
        merge_size=2,
        temporal_patch_size=2,
    ).save_pretrained(path)
    return path


def train_config(dataset: Path, checkpoint: Path, out: Path, **sections) -> dict:
    """A small LoRA run on the tiny model; `sections` are merged over the defaults."""
    config = {
        "model": {"model_path": str(checkpoint)},
        "lora": {
            "rank": RANK,
            "alpha": RANK,
            "target_modules": ["to_q", "to_k", "to_v", "to_out.0"],
        },
        "training_strategy": {
            "name": "flexible",
            "video": {"is_generated": True, "latents_dir": "latents"},
            "audio": {"is_generated": True, "latents_dir": "audio_latents"},
        },
        "optimization": {"steps": 6, "batch_size": 1, "learning_rate": 1e-3},
        "acceleration": {"mixed_precision_mode": "no"},
        "data": {"preprocessed_data_root": str(dataset), "num_dataloader_workers": 0},
        "validation": {"interval": None},
        "checkpoints": {"interval": 3, "keep_last_n": 1, "precision": "float32"},
        "output_dir": str(out),
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


def write_yaml(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def write_tiny_qwen_omni(path: Path, *, full: bool = False) -> Path:
    """A random tiny Qwen2.5-Omni Thinker folder (tokenizer, image processor and Whisper
    feature extractor in one preprocessor config); `full`: saved as a whole Omni model
    without the speech talker (model_type qwen2_5_omni, weights under `thinker.`)."""
    import json

    from transformers import (
        Qwen2_5OmniConfig,
        Qwen2_5OmniForConditionalGeneration,
        Qwen2_5OmniThinkerConfig,
        Qwen2_5OmniThinkerForConditionalGeneration,
        WhisperFeatureExtractor,
    )
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    special = [
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_bos|>", "<|vision_eos|>",
        "<|IMAGE|>", "<|VIDEO|>", "<|audio_bos|>", "<|audio_eos|>", "<|AUDIO|>", "<unk>",
    ]  # fmt: skip
    # Weights larger than the usual 0.02 init, so that a 1-layer random model's words depend
    # on its inputs (at 0.02 every clip gets the same caption).
    INIT_RANGE = 0.3
    words = ["a", "the", "red", "tone", "music", "silent", "speech", "square", "moves"]
    vocab, tokenizer = _word_tokenizer(special, words, kept=special[1:10])
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<|vision_bos|><|IMAGE|><|vision_eos|>"
        "{% elif c['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>"
        "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    thinker = Qwen2_5OmniThinkerConfig(
        text_config={
            "vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 64,
            "max_position_embeddings": 4096, "pad_token_id": 0, "bos_token_id": None,
            "initializer_range": INIT_RANGE,
            "eos_token_id": vocab["<|im_end|>"],
            "rope_parameters": {
                "rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]
            },
        },
        audio_config={
            "num_mel_bins": 128, "encoder_layers": 1, "encoder_attention_heads": 2,
            "encoder_ffn_dim": 32, "d_model": 16, "output_dim": 32,
            "initializer_range": INIT_RANGE,
        },
        vision_config={
            "depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2,
            "out_hidden_size": 32, "fullatt_block_indexes": [0], "window_size": 28,
            "initializer_range": INIT_RANGE,
        },
        audio_token_index=vocab["<|AUDIO|>"],
        image_token_index=vocab["<|IMAGE|>"],
        video_token_index=vocab["<|VIDEO|>"],
        audio_start_token_id=vocab["<|audio_bos|>"],
        audio_end_token_id=vocab["<|audio_eos|>"],
        initializer_range=INIT_RANGE,
    )  # fmt: skip
    thinker.vision_start_token_id = vocab["<|vision_bos|>"]
    thinker.vision_end_token_id = vocab["<|vision_eos|>"]
    torch.manual_seed(0)
    if full:
        config = Qwen2_5OmniConfig(
            thinker_config=thinker.to_dict(),
            enable_audio_output=False,
            initializer_range=INIT_RANGE,
        )
        model = Qwen2_5OmniForConditionalGeneration(config)
        generation = model.thinker.generation_config
    else:
        model = Qwen2_5OmniThinkerForConditionalGeneration(thinker)
        generation = model.generation_config
    # Captions of max_new_tokens words: the special tokens (EOS among them) are never chosen.
    generation.suppress_tokens = [vocab[t] for t in special]
    model.generation_config.suppress_tokens = generation.suppress_tokens
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    Qwen2VLImageProcessorPil(
        min_pixels=28 * 28 * 4, max_pixels=56 * 56 * 4, patch_size=14, merge_size=2,
        temporal_patch_size=2,
    ).save_pretrained(path)  # fmt: skip
    # One preprocessor config for both processors, as the released Omni folders have it.
    merged = json.loads((path / "preprocessor_config.json").read_text())
    merged.update(WhisperFeatureExtractor(feature_size=128).to_dict())
    (path / "preprocessor_config.json").write_text(json.dumps(merged))
    return path


def validating_config(
    dataset: Path, model: tuple[Path, Path], out: Path, validation: dict | None = None, **sections
) -> dict:
    """`train_config` with validation on: one prompt sampled at 64x32x9 and 8 fps in one step,
    every 2 optimizer steps (2 steps in all, no intermediate checkpoints)."""
    checkpoint, gemma = model
    defaults = {
        "samples": [{"prompt": "a red fox runs"}],
        "video_dims": [64, 32, 9],
        "frame_rate": 8.0,
        "inference_steps": 1,
        "interval": 2,
        "stg_blocks": [0],
    }
    return train_config(
        dataset,
        checkpoint,
        out,
        **{
            "model": {"model_path": str(checkpoint), "text_encoder_path": str(gemma)},
            "optimization": {"steps": 2},
            "checkpoints": {"interval": None},
            "validation": {**defaults, **(validation or {})},
            **sections,
        },
    )
