"""Checkpoint files of a run: weights in the official LoRA key style, training state without
pickles, retention (trainer.md §8).

- `checkpoints/lora_weights_step_NNNNN.safetensors`: PEFT's adapter state with
  `base_model.model.` replaced by `diffusion_model.` (the ComfyUI / official style that
  `ltx2 generate --lora` and ltx-pipelines read), cast to the configured precision. Metadata:
  the strategy's keys (`reference_downscale_factor`, ...) as the reference writes them, plus
  rank, alpha, targets, base model and prompts under `ltx2_*` names.
- `checkpoints/model_weights_step_NNNNN.safetensors`: the full transformer state (full mode).
- `checkpoints/training_state_step_NNNNN.safetensors` + `.json`: float32 trainable weights
  (an exact resume must not go through the bf16 export), optimizer tensors and the CPU RNG
  state in safetensors; step, data position, scheduler state, optimizer hyper-parameters and
  the config fingerprint in JSON. The reference's `.pt` state is never unpickled.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ltx2cli.errors import CheckpointError

CHECKPOINTS = "checkpoints"
LORA_PREFIX = "diffusion_model."
PEFT_PREFIX = "base_model.model."
_STEP = re.compile(r"_step_(\d+)\.safetensors$")
PRECISIONS = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def weights_name(mode: str, step: int) -> str:
    kind = "lora_weights" if mode == "lora" else "model_weights"
    return f"{kind}_step_{step:05d}.safetensors"


def state_name(step: int) -> str:
    return f"training_state_step_{step:05d}"


def _save_file(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata)
    os.replace(tmp, path)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=_plain))
    os.replace(tmp, path)


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def lora_state(peft_state: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict:
    """PEFT adapter keys → `diffusion_model.<module>.lora_A|B.weight` in `dtype`."""
    out = {}
    for key, value in peft_state.items():
        name = key.removeprefix(PEFT_PREFIX)
        out[LORA_PREFIX + name] = value.detach().to(dtype).contiguous()
    return out


def save_weights(
    run_dir: Path, mode: str, step: int, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> Path:
    path = run_dir / CHECKPOINTS / weights_name(mode, step)
    _save_file(path, tensors, {k: str(v) for k, v in metadata.items()})
    return path


def save_state(
    run_dir: Path,
    step: int,
    *,
    trainable: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None,
    scheduler_state: Mapping[str, Any] | None,
    info: Mapping[str, Any],
) -> Path:
    """Write the training state pair; `optimizer` None stores no optimizer (mode "minimal")."""
    tensors = {f"param.{k}": v.detach().float() for k, v in trainable.items()}
    tensors["rng.cpu"] = torch.get_rng_state()
    meta: dict[str, Any] = {"global_step": step, **info, "scheduler": scheduler_state}
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, values in state["state"].items():
            for name, value in values.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim.{index}.{name}"] = value
                else:
                    scalars.setdefault(str(index), {})[name] = value
        meta["optimizer"] = {"param_groups": state["param_groups"], "scalars": scalars}
    base = run_dir / CHECKPOINTS / state_name(step)
    _save_file(base.with_suffix(".safetensors"), tensors, {})
    _write_json(base.with_suffix(".json"), meta)
    return base


def load_state(base: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(base.with_suffix(".safetensors")))
        meta = json.loads(base.with_suffix(".json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the training state {base}: {exc}") from None
    return tensors, meta


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], meta: Mapping
) -> None:
    saved = meta["optimizer"]
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in saved["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})


def restore_rng(tensors: Mapping[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])


def step_of(path: Path) -> int | None:
    m = _STEP.search(path.name)
    return int(m.group(1)) if m else None


def latest_weights(folder: Path) -> Path | None:
    """The weights file with the highest step under `folder` (recursively), as the reference."""
    found = [
        (step_of(p), p)
        for p in folder.rglob("*_step_*.safetensors")
        if step_of(p) is not None and not p.name.startswith("training_state")
    ]
    return max(found)[1] if found else None


def prune(run_dir: Path, keep_last_n: int) -> None:
    """Keep the newest `keep_last_n` weights and states (−1 keeps all)."""
    if keep_last_n < 0:
        return
    folder = run_dir / CHECKPOINTS
    groups: dict[str, list[tuple[int, Path]]] = {}
    for p in folder.glob("*_step_*.*"):
        m = re.search(r"^(.*)_step_(\d+)\.(safetensors|json)$", p.name)
        if m:
            groups.setdefault(m.group(1), []).append((int(m.group(2)), p))
    for items in groups.values():
        steps = sorted({s for s, _ in items}, reverse=True)
        for step, path in items:
            if step not in steps[:keep_last_n]:
                path.unlink(missing_ok=True)
