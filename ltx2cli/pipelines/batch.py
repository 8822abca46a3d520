"""`--prompts-file`: many generations from one file. Torch-free.

A file is plain text (one prompt per line; blank lines and `#` comments skipped), JSON Lines
(one object per line) or YAML (a list of prompts or objects). An object holds `prompt` and any
option as its setting name or flag name (`num_frames` or `num-frames`), plus `image`/`images`
and `lora`/`loras` (a spec or a list of specs), `distilled_lora`, `upsampler`,
`text_encoder` and `output`; its values override the command line for that item. Outputs are
named from a template with `{index}` (1-based), `{slug}` (from the prompt) and `{seed}`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ltx2cli.config.generation import GenerationSettings
from ltx2cli.errors import UsageError
from ltx2cli.text import did_you_mean

DEFAULT_TEMPLATE = "{index:03d}-{slug}.mp4"
JOB_KEYS = ("prompt", "images", "loras", "distilled_lora", "upsampler", "text_encoder", "output")
_ALIASES = {"image": "images", "lora": "loras"}
SLUG_WORDS, SLUG_CHARS = 6, 48


def slugify(prompt: str) -> str:
    """`A fox, running!` → `a-fox-running` (the first words, safe in any file system)."""
    words = "".join(c if c.isalnum() else " " for c in prompt.lower()).split()
    return "-".join(words[:SLUG_WORDS])[:SLUG_CHARS].strip("-") or "ltx2"


def _fields() -> set[str]:
    return {f.name for f in dataclasses.fields(GenerationSettings)}


def _normalise(raw: Any, where: str) -> dict[str, Any]:
    if isinstance(raw, str):
        raw = {"prompt": raw}
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: expected a prompt or a mapping, got {type(raw).__name__}")
    known = _fields() | set(JOB_KEYS)
    item: dict[str, Any] = {}
    for key, value in raw.items():
        name = _ALIASES.get(str(key).replace("-", "_"), str(key).replace("-", "_"))
        if name not in known:
            raise UsageError(
                f"{where}: unknown option '{key}'{did_you_mean(name, known)}",
                "use setting names such as num_frames, seed, image, lora, output",
            )
        if name in ("images", "loras") and isinstance(value, str):
            value = [value]
        item[name] = value
    if not str(item.get("prompt", "")).strip():
        raise UsageError(f"{where}: the item has no prompt", "give every item a prompt")
    return item


def read_items(path: Path) -> list[dict[str, Any]]:
    """Every item of a prompts file, checked (unknown keys are errors naming the item)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"--prompts-file {path}: cannot be read ({exc})", "check the path"
        ) from None
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        raws = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    raws.append((f"{path.name}:{number}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise UsageError(f"{path.name}:{number}: not JSON ({exc.msg})") from None
    elif suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or []
        if not isinstance(data, list):
            raise UsageError(f"--prompts-file {path}: expected a YAML list of items")
        raws = [(f"{path.name} item {i}", raw) for i, raw in enumerate(data, 1)]
    else:
        raws = [
            (f"{path.name}:{number}", line.strip())
            for number, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    if not raws:
        raise UsageError(f"--prompts-file {path} holds no prompts")
    return [_normalise(raw, where) for where, raw in raws]


def output_for(template: str, index: int, prompt: str, seed: int) -> Path:
    try:
        return Path(template.format(index=index, slug=slugify(prompt), seed=seed))
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageError(
            f"-o {template!r} is not a valid name template ({exc})",
            "use {index}, {slug} and {seed}, e.g. out/{index:03d}-{slug}.mp4",
        ) from None
