"""Gemma 3 text encoder: prompts → every hidden state, plus Gemma-driven prompt enhancement.

Design choices:
- Gemma comes from transformers, loaded from a Hugging Face model directory: the official Gemma 3
  12B layout (`Gemma3ForConditionalGeneration`, vision tower included) or a text-only Gemma 3
  (`Gemma3ForCausalLM`, e.g. the 270M model the demo uses).
- Encoding runs the inner model (no LM head) and returns all `num_layers + 1` hidden states
  stacked as `(B, T, D, L)`, with every prompt stripped, given a leading `<bos>`, truncated and
  LEFT-padded to exactly `max_length` (1024) tokens, so batching prompts is a plain stack.
- Enhancement applies a chat template with our own system prompts, samples in a forked RNG
  started from the pipeline's generator, and cleans the text the way the reference does
  (straight quotes, plain dashes and spaces, no leading non-letters).
- The tiny random Gemma for tests lives in `tiny_gemma.py`, the conversion of the packaged 270M
  GGUF in `gemma_gguf.py`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import torch

from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.models.noise import make_generator

log = logging.getLogger(__name__)

GEMMA_MAX_LENGTH = 1024
SUPPORTED_MODEL_TYPES = ("gemma3", "gemma3_text")
ENHANCE_TEMPERATURE = 0.7
ENHANCE_MAX_NEW_TOKENS = 512
ENHANCE_DEFAULT_SEED = 42
ENHANCE_PAD_MULTIPLE = 8
I2V_IMAGE_LONG_SIDE = 896
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")

# Gemma 3's turn format, for tokenizers saved without a chat template (the GGUF conversion, the
# tiny test tokenizer). A system message is folded into the first user turn, as Gemma 3 does.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set head = messages[0]['content'] -%}"
    "{%- set sys = (head if head is string else head[0]['text']) + '\\n\\n' -%}"
    "{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set sys = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- for m in turns -%}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else m['role']) + '\\n' }}"
    "{%- if loop.first -%}{{ sys }}{%- endif -%}"
    "{%- if m['content'] is string -%}{{ m['content'] }}"
    "{%- else -%}{%- for part in m['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- else -%}{{ '<start_of_image>' }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)


@dataclass(frozen=True)
class TextEncoding:
    """Gemma's view of a batch of prompts."""

    hidden_states: torch.Tensor  # (B, T, D, L): every layer, the embedding output first
    mask: torch.Tensor  # (B, T) int64, 1 for real tokens (left padding: zeros come first)


def find_gemma_dir(root: Path) -> Path:
    """The folder under `root` that holds a Gemma `config.json` and its weights."""
    root = Path(root)
    if not root.exists():
        raise UsageError(
            f"text encoder folder not found: {root}",
            "pass the Gemma 3 model directory (e.g. the installed gemma-3-12b) as `root`",
        )
    candidates = [root] if root.is_dir() else []
    candidates += sorted(p.parent for p in root.rglob("config.json")) if root.is_dir() else []
    for folder in candidates:
        if (folder / "config.json").is_file() and any(folder.glob("model*.safetensors")):
            return folder
    raise CheckpointError(
        f"no Gemma 3 model (config.json + model*.safetensors) found under {root}",
        "pass the Gemma 3 directory as `root`, e.g. gemma-3-12b-it-qat-q4_0-unquantized",
    )


def system_prompt(kind: str) -> str:
    """Our system prompt for `t2v` (text-to-video) or `i2v` (image-to-video) enhancement."""
    return files("ltx2cli.models").joinpath(f"prompts/{kind}_system_prompt.txt").read_text()


def clean_enhanced_prompt(text: str) -> str:
    """Straight quotes, plain dashes and spaces, and no leading non-letter characters."""
    for curly, plain in (("“", '"'), ("”", '"'), ("„", '"'), ("‘", "'"), ("’", "'")):
        text = text.replace(curly, plain)
    text = re.sub("[‐‑‒–—―]", "-", text)
    text = re.sub("[\u00a0\u2007\u202f]", " ", text)
    return re.sub(r"^[^A-Za-z]+", "", text.strip()).strip()


class GemmaTextEncoder:
    """A loaded Gemma 3 (frozen, eval mode) with its tokenizer and, when present, its processor."""

    def __init__(self, model, tokenizer, processor=None, *, max_length: int = GEMMA_MAX_LENGTH):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.processor = processor
        self.max_length = max_length
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if not getattr(tokenizer, "chat_template", None):
            tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE

    @classmethod
    def from_pretrained(
        cls,
        root: Path | str,
        *,
        dtype: torch.dtype = torch.bfloat16,
        device: torch.device | str = "cpu",
        max_length: int = GEMMA_MAX_LENGTH,
    ) -> GemmaTextEncoder:
        from transformers import AutoConfig, AutoTokenizer

        folder = find_gemma_dir(Path(root))
        config = AutoConfig.from_pretrained(folder)
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise CheckpointError(
                f"{folder} holds a {config.model_type!r} model, not Gemma 3",
                "LTX-2 needs a Gemma 3 text encoder (model_type gemma3 or gemma3_text)",
            )
        if config.model_type == "gemma3":
            from transformers import Gemma3ForConditionalGeneration as model_class
        else:
            from transformers import Gemma3ForCausalLM as model_class
        model, info = model_class.from_pretrained(folder, dtype=dtype, output_loading_info=True)
        if info["missing_keys"] or info["mismatched_keys"]:
            bad = sorted(info["missing_keys"]) + [str(k) for k in info["mismatched_keys"]]
            raise CheckpointError(
                f"the Gemma 3 weights in {folder} do not fit its config.json "
                f"({len(bad)} missing or mis-shaped tensors, e.g. {bad[0]})",
                "re-download the text encoder: `ltx2 models pull gemma-3-12b`",
            )
        model = model.to(device)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        processor = None
        has_processor = any((folder / n).is_file() for n in PROCESSOR_FILES)
        if config.model_type == "gemma3" and has_processor:
            from transformers import AutoProcessor

            processor = AutoProcessor.from_pretrained(folder)
        return cls(model, tokenizer, processor, max_length=max_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def hidden_size(self) -> int:
        return self._text_config.hidden_size

    @property
    def num_hidden_states(self) -> int:
        return self._text_config.num_hidden_layers + 1

    @property
    def _text_config(self):
        config = self.model.config
        return config.get_text_config() if hasattr(config, "get_text_config") else config

    # -- encoding ------------------------------------------------------------------------------
    def tokenize(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and mask `(B, max_length)`: `<bos>` first, truncated, left-padded."""
        tok = self.tokenizer
        rows = tok([p.strip() for p in prompts], add_special_tokens=True)["input_ids"]
        ids = torch.full((len(rows), self.max_length), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), self.max_length), dtype=torch.long)
        for i, row in enumerate(rows):
            if tok.bos_token_id is not None and (not row or row[0] != tok.bos_token_id):
                row = [tok.bos_token_id, *row]
            row = row[: self.max_length]
            ids[i, self.max_length - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, self.max_length - len(row) :] = 1
        return ids, mask

    @torch.inference_mode()
    def encode(self, prompts: Sequence[str]) -> TextEncoding:
        """All hidden states of the inner model (no LM head) for each prompt."""
        ids, mask = self.tokenize(prompts)
        ids, mask = ids.to(self.device), mask.to(self.device)
        outputs = self.model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        hidden = torch.stack(outputs.hidden_states, dim=-1)  # (B, T, D, L)
        return TextEncoding(hidden_states=hidden, mask=mask)

    # -- prompt enhancement -------------------------------------------------------------------
    @torch.inference_mode()
    def enhance(
        self,
        prompt: str,
        *,
        image: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        max_new_tokens: int = ENHANCE_MAX_NEW_TOKENS,
        temperature: float = ENHANCE_TEMPERATURE,
    ) -> str:
        """Rewrite `prompt` into a detailed video prompt; with `image` (uint8 `(H, W, 3)` or
        float `(3, H, W)` in [-1, 1]) Gemma's vision tower sees the first frame.

        Sampling draws from the pipeline's CPU `generator` (which advances by what was drawn);
        None samples as the reference does by default, from seed 42.
        """
        if image is None:
            chat = [
                {"role": "system", "content": system_prompt("t2v")},
                {"role": "user", "content": f"user prompt: {prompt.strip()}"},
            ]
            inputs = self._chat_inputs(chat)
        else:
            inputs = self._image_chat_inputs(prompt, image)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        prompt_length = inputs["input_ids"].shape[1]
        generator = generator or make_generator(ENHANCE_DEFAULT_SEED)
        # transformers samples from the global RNG: run it in a fork (restored on exit) that
        # starts from the generator's state, and hand the advanced state back to the generator.
        # An accelerator's RNG is seeded like the reference's `manual_seed`.
        device = torch.device(self.device)
        accelerators = [device.index or 0] if device.type != "cpu" else []
        with torch.random.fork_rng(devices=accelerators, device_type=device.type):
            torch.set_rng_state(generator.get_state())
            if accelerators:
                torch.get_device_module(device.type).manual_seed(generator.initial_seed())
            generated = self.model.generate(
                **inputs,
                do_sample=True,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
            )
            generator.set_state(torch.get_rng_state())
        text = self.tokenizer.decode(generated[0, prompt_length:], skip_special_tokens=True)
        return clean_enhanced_prompt(text)

    def _chat_inputs(self, chat: list[dict]) -> dict[str, torch.Tensor]:
        text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        pad = -len(ids) % ENHANCE_PAD_MULTIPLE  # left-pad to a multiple of 8 tokens
        input_ids = torch.tensor([[self.tokenizer.pad_token_id] * pad + ids], dtype=torch.long)
        attention = torch.tensor([[0] * pad + [1] * len(ids)], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention}

    def _image_chat_inputs(self, prompt: str, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.processor is None:
            raise UsageError(
                "prompt enhancement with an image needs a Gemma 3 with a vision tower",
                "use the Gemma 3 12B text encoder, or enhance with `image=None`",
            )
        from PIL import Image

        if image.dtype != torch.uint8:  # (3, H, W) in [-1, 1] → (H, W, 3) uint8
            image = ((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            image = image.permute(1, 2, 0)
        picture = Image.fromarray(image.cpu().numpy())
        scale = I2V_IMAGE_LONG_SIDE / max(picture.size)
        picture = picture.resize(
            (round(picture.width * scale), round(picture.height * scale)), Image.Resampling.BICUBIC
        )
        chat = [
            {"role": "system", "content": [{"type": "text", "text": system_prompt("i2v")}]},
            {
                "role": "user",
                "content": [
                    {"type": "image"},
                    {"type": "text", "text": f"User Raw Input Prompt: {prompt.strip()}."},
                ],
            },
        ]
        text = self.processor.apply_chat_template(chat, add_generation_prompt=True)
        self.processor.tokenizer.padding_side = "left"
        return dict(
            self.processor(
                text=[text],
                images=[picture],
                return_tensors="pt",
                padding=True,
                pad_to_multiple_of=ENHANCE_PAD_MULTIPLE,
            )
        )
