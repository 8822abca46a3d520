"""A tiny random Gemma 3 in the official directory layout, for tests, benchmarks and `demo`.

The tokenizer is a small word-level one with Gemma's special tokens, built locally (no
download); the weights are renamed to the released 12B files' key layout, so the loader's
Gemma path is exercised as with the real model. The tiny checkpoint's text projection
(`tiny.py`) is sized for `TinyGemmaConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ltx2cli.models.text_encoder import GEMMA3_CHAT_TEMPLATE

# A word-level vocabulary big enough to tokenize test prompts and the system prompts' gist.
TINY_WORDS = """
a an the of and in on with to is are at by from as it its this that red blue green white black
fox dog cat bird snow forest city street river ocean sky sun night day rain light runs walks
flies jumps sings talks looks camera slowly quickly cinematic video sound music wind water
waves voice man woman child car tree mountain close wide shot user prompt raw input style
realistic detailed warm cold bright dark , . ! ? : ' "
""".split()  # noqa: SIM905
TINY_SPECIAL = ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>")
TINY_IMAGE_SPECIAL = ("<start_of_image>", "<end_of_image>", "<image_soft_token>")


def build_tiny_tokenizer():
    """A small word-level tokenizer with Gemma's special tokens, built without any download."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(TINY_SPECIAL + TINY_IMAGE_SPECIAL)}
    for word in dict.fromkeys(TINY_WORDS):
        vocab.setdefault(word, len(vocab))
    for char in "abcdefghijklmnopqrstuvwxyz0123456789\n":
        vocab.setdefault(char, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    from tokenizers.processors import TemplateProcessing

    core.post_processor = TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens=list(TINY_SPECIAL[4:]),
        boi_token=TINY_IMAGE_SPECIAL[0],
        eoi_token=TINY_IMAGE_SPECIAL[1],
        image_token=TINY_IMAGE_SPECIAL[2],
    )
    tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
    return tokenizer


@dataclass(frozen=True)
class TinyGemmaConfig:
    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    head_dim: int = 16
    intermediate_size: int = 64
    vision: bool = True


# The tiny vision tower: 28 px images in 14 px patches → 4 soft tokens per image.
TINY_IMAGE_SIZE = 28
TINY_PATCH = 14


def write_tiny_gemma(path: Path | str, *, seed: int = 0, config: TinyGemmaConfig | None = None):
    """Write a random tiny Gemma 3 model directory in the official layout (config, safetensors,
    tokenizer; with `vision` a SigLIP tower and an image processor too). Returns the path."""
    from transformers import Gemma3TextConfig

    cfg = config or TinyGemmaConfig()
    path = Path(path)
    tokenizer = build_tiny_tokenizer()
    text = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        head_dim=cfg.head_dim,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=2048,
        sliding_window=64,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    # transformers initialises from the global RNG: seed it inside a fork that restores it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _random_gemma(cfg.vision, text, tokenizer)
    model.save_pretrained(path)
    _use_official_key_names(path / "model.safetensors")
    tokenizer.save_pretrained(path)
    if cfg.vision:
        from transformers import Gemma3ImageProcessor, Gemma3Processor

        size = {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
        processor = Gemma3Processor(
            image_processor=Gemma3ImageProcessor(size=size),
            tokenizer=tokenizer,
            chat_template=GEMMA3_CHAT_TEMPLATE,
            image_seq_length=(TINY_IMAGE_SIZE // TINY_PATCH) ** 2,
        )
        processor.save_pretrained(path)
    return path


def _random_gemma(vision: bool, text: Any, tokenizer: Any) -> Any:
    from transformers import Gemma3Config, Gemma3ForCausalLM, Gemma3ForConditionalGeneration

    if not vision:
        return Gemma3ForCausalLM(text)
    full = Gemma3Config(
        text_config=text.to_dict(),
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": TINY_IMAGE_SIZE,
            "patch_size": TINY_PATCH,
            "vision_use_head": False,
        },
        mm_tokens_per_image=(TINY_IMAGE_SIZE // TINY_PATCH) ** 2,
        boi_token_index=tokenizer.convert_tokens_to_ids("<start_of_image>"),
        eoi_token_index=tokenizer.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tokenizer.convert_tokens_to_ids("<image_soft_token>"),
    )
    return Gemma3ForConditionalGeneration(full)


def _use_official_key_names(weights: Path) -> None:
    """Rename to the key layout of the released Gemma 3 12B files (`language_model.model.*`,
    `vision_tower.vision_model.*`, `multi_modal_projector.*`), whatever transformers wrote."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(weights, "pt") as f:
        metadata = f.metadata()
    renamed = {}
    for key, tensor in load_file(weights).items():
        if key.startswith("vision_tower.") and not key.startswith("vision_tower.vision_model."):
            key = "vision_tower.vision_model." + key.removeprefix("vision_tower.")
        elif key.startswith("model.language_model."):
            key = "language_model.model." + key.removeprefix("model.language_model.")
        renamed[key] = tensor
    save_file(renamed, weights, metadata=metadata)
