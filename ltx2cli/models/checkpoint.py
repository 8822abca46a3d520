"""Reading safetensors checkpoints without loading them: header, metadata, generation.

- The header is parsed here (no torch): 8-byte little-endian length, a JSON table of tensors
  and `__metadata__`. Every metadata value is a string; each is JSON-decoded where possible
  (the official loader does the same), so `config` becomes a dict and `"2.3.0"` stays a string.
- The header is validated against the file size, so a corrupt, truncated, empty or
  non-safetensors file fails here with one line naming the file, before any weights are read.
- The generation (LTX-2 "2.0" vs LTX-2.3 "2.3") is decided by the tensor keys when they say
  anything, else by the config, else by `model_version`; keys and config that disagree are an
  error. LTX-2.5 and the old video-only layout are refused by name (`check_supported`, which
  loading runs on every file it reads).
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from ltx2cli.errors import CheckpointError
from ltx2cli.families import FAMILIES, GEN_2_0, GEN_2_3, family_of_version, generation_choices

logger = logging.getLogger(__name__)

# Raw prefixes of the official monolithic checkpoint.
TRANSFORMER_PREFIX = "model.diffusion_model."
MONOLITHIC_PREFIXES = (
    TRANSFORMER_PREFIX,
    "text_embedding_projection.",
    "vae.",
    "audio_vae.",
    "vocoder.",
)

# Bytes per element of every safetensors dtype name.
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit

# Key patterns (prefix-agnostic, so split files are recognised too) that only one generation has.
_KEYS_2_3 = re.compile(
    r"prompt_scale_shift_table|prompt_adaln_single\.|\.to_gate_logits\.|video_aggregate_embed\."
    r"|audio_aggregate_embed\.|bwe_generator\."
)
_KEYS_2_0 = re.compile(r"(^|\.)caption_projection\.linear_1\.|(^|\.)aggregate_embed\.weight$")
_LORA_KEYS = re.compile(r"\.lora_(A|B|down|up)(\.[^.]+)?\.weight$")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the header describes it (nothing is read)."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class CheckpointInfo:
    """The parsed header of a safetensors file: tensors, metadata and what they say."""

    path: Path
    size: int
    tensors: dict[str, TensorInfo]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any] | None:
        """The embedded `config` metadata as a dict, or None when absent or not JSON."""
        config = self.metadata.get("config")
        return config if isinstance(config, dict) else None

    def require_config(self) -> dict[str, Any]:
        config = self.config
        if config is None:
            what = "is not a JSON object" if "config" in self.metadata else "is missing"
            raise CheckpointError(
                f"{self.path.name}: the embedded 'config' metadata {what}",
                "the file is not in the official LTX-2 layout; re-export it with its config",
            )
        return config

    @property
    def kind(self) -> str:
        """`monolithic`, `upsampler`, `lora` or `component` (a split file of one part)."""
        keys = self.tensors.keys()
        if any(_LORA_KEYS.search(k) for k in keys):
            return "lora"
        if any(k.startswith(MONOLITHIC_PREFIXES) for k in keys):
            return "monolithic"
        config = self.config or {}
        if "mid_channels" in config or "initial_conv.weight" in self.tensors:
            return "upsampler"
        return "component"

    @property
    def model_version(self) -> str | None:
        version = self.metadata.get("model_version")
        return None if version is None else str(version)

    @cached_property
    def generation(self) -> str:
        return detect_generation(self.tensors, self.config, self.metadata)

    def nbytes(self, keys: Iterable[str] | None = None) -> int:
        """Stored bytes of `keys` (all tensors when None)."""
        names = self.tensors if keys is None else keys
        return sum(self.tensors[k].nbytes for k in names)


def read_checkpoint(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Parse and validate the header of a safetensors file (cached per path, size and mtime)."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {p}", "check the path") from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {p}: {e.strerror}") from None
    if not p.is_file():
        raise CheckpointError(f"checkpoint is not a file: {p}", "pass a .safetensors file")
    return _read_cached(str(p.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=32)
def _read_cached(path: str, size: int, mtime_ns: int) -> CheckpointInfo:
    p = Path(path)
    bad = f"{p.name} is not a valid safetensors file"
    if size < 8:
        raise CheckpointError(f"{bad}: it is {'empty' if size == 0 else 'too short'}", _REDOWNLOAD)
    try:
        with p.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > min(_MAX_HEADER_BYTES, size - 8):
                raise CheckpointError(
                    f"{bad}: header length {header_len} does not fit", _REDOWNLOAD
                )
            raw = f.read(header_len)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {p}: {e.strerror}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{bad}: the header is not JSON", _REDOWNLOAD) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{bad}: the header is not a JSON object", _REDOWNLOAD)

    metadata = _decode_metadata(header.pop("__metadata__", None) or {})
    data_len = size - 8 - header_len
    tensors: dict[str, TensorInfo] = {}
    end_max = 0
    for name, entry in header.items():
        try:
            dtype, shape, (begin, end) = (
                entry["dtype"],
                tuple(entry["shape"]),
                entry["data_offsets"],
            )
            itemsize = DTYPE_SIZES[dtype]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{bad}: bad header entry for {name!r}", _REDOWNLOAD) from None
        info = TensorInfo(dtype, shape, end - begin)
        if begin < 0 or end < begin or info.numel * itemsize != end - begin:
            raise CheckpointError(f"{bad}: tensor {name!r} has inconsistent offsets", _REDOWNLOAD)
        tensors[name] = info
        end_max = max(end_max, end)
    if end_max > data_len:
        raise CheckpointError(
            f"{p.name} is truncated: {end_max - data_len} bytes of tensor data are missing",
            _REDOWNLOAD,
        )
    return CheckpointInfo(path=p, size=size, tensors=tensors, metadata=metadata)


_REDOWNLOAD = "the file is damaged or not a checkpoint; download it again (ltx2 models verify)"


def _decode_metadata(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                out[key] = value
        else:
            out[key] = value
    return out


def detect_generation(
    keys: Iterable[str],
    config: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """`"2.0"` (LTX-2 19B) or `"2.3"` (LTX-2.3 22B) from keys, else config, else `model_version`.

    Raises CheckpointError naming the key when the evidence contradicts itself or when the file
    is of a generation this tool does not support.
    """
    keys = list(keys)
    check_supported(keys, config, metadata)
    key_23 = next((k for k in keys if _KEYS_2_3.search(k)), None)
    key_20 = next((k for k in keys if _KEYS_2_0.search(k)), None)
    if key_23 and key_20:
        raise CheckpointError(
            f"checkpoint mixes LTX-2.3 key {key_23!r} with LTX-2 key {key_20!r}",
            "the file was merged from two generations; use an official checkpoint",
        )
    by_config = _generation_from_config(config)
    by_keys = GEN_2_3 if key_23 else GEN_2_0 if key_20 else None
    if by_keys and by_config and by_keys != by_config:
        key = key_23 or key_20
        raise CheckpointError(
            f"checkpoint config says LTX-{by_config} but key {key!r} is LTX-{by_keys}",
            "the embedded config does not belong to these weights",
        )
    if by_keys or by_config:
        return by_keys or by_config  # type: ignore[return-value]
    # The official pipelines treat a missing or unparseable version as LTX-2.0.
    return family_of_version(str((metadata or {}).get("model_version") or "")).name


def _generation_from_config(config: Mapping[str, Any] | None) -> str | None:
    if not config:
        return None
    transformer = config.get("transformer")
    vocoder = config.get("vocoder")
    if isinstance(transformer, Mapping) and transformer:
        two_three = transformer.get("cross_attention_adaln") or transformer.get(
            "caption_proj_before_connector"
        )
        return GEN_2_3 if two_three else GEN_2_0
    if isinstance(vocoder, Mapping) and vocoder:
        return GEN_2_3 if "bwe" in vocoder else GEN_2_0
    return None


def check_supported(
    keys: Iterable[str],
    config: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Refuse, naming the key, layouts this tool cannot run (LTX-2.5, old video-only files)."""
    metadata = metadata or {}
    version = str(metadata.get("model_version") or "")
    runs = f"use a checkpoint of a generation ltx2 runs: {generation_choices()}"
    family = family_of_version(version)
    if not family.runnable:
        raise CheckpointError(
            f"unsupported model_version {version!r} (metadata key 'model_version', {family.label})",
            runs,
        )
    for family in FAMILIES.values():
        marker = next((m for m in family.metadata_markers if m in metadata), None)
        if marker and not family.runnable:
            raise CheckpointError(
                f"unsupported metadata key {marker!r} (an {family.label} checkpoint)", runs
            )
    vae = (config or {}).get("vae")
    if isinstance(vae, Mapping) and vae.get("_class_name", "CausalVideoAutoencoder") not in (
        "CausalVideoAutoencoder",
    ):
        raise CheckpointError(
            f"unsupported config value vae._class_name={vae['_class_name']!r}",
            "only the convolutional video VAE of LTX-2 / LTX-2.3 is supported",
        )
    for key in keys:
        if key.startswith(TRANSFORMER_PREFIX + "embeddings_connector."):
            raise CheckpointError(
                f"unsupported key {key!r}: a video-only LTX-Video checkpoint",
                "ltx2 needs an LTX-2 audio-video checkpoint",
            )
        if "keyframes_abs_pos_embedding" in key:
            raise CheckpointError(
                f"unsupported key {key!r}: an LTX-2.5 checkpoint",
                runs,
            )
