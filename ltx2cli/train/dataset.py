"""The precomputed dataset (`.precomputed/`, trainer.md §7.7) and a resumable batch order.

- One `.pt` dict per sample and folder, the same relative path in every folder; files are read
  with `torch.load(weights_only=True)`, so a dataset never runs code.
- Legacy files are accepted like the reference does: patchified video latents `[N, C]`,
  `condition_X.pt` beside `latent_X.pt`, a single `prompt_embeds` for both modalities.
- `BatchOrder` is the sampler: epoch e shuffles with a generator seeded `seed + e`, drops the
  last partial batch, and gives rank r of w every w-th batch. Its position is the number
  of batches consumed, which is what an exact resume stores.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from ltx2cli.errors import UsageError

log = logging.getLogger(__name__)

PRIMARY_SOURCES = ("latents", "video_latents", "audio_latents")


def load_item(path: Path) -> dict[str, Any]:
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, Mapping):
        raise UsageError(f"{path} does not hold a dict of tensors", "preprocess it again")
    return dict(data)


def _normalise(folder: str, item: dict[str, Any]) -> dict[str, Any]:
    """Legacy layouts → the current one (video latents `[C, F, H, W]`, both prompt embeds)."""
    latents = item.get("latents")
    dims = ("num_frames", "height", "width")
    legacy = isinstance(latents, torch.Tensor) and latents.dim() == 2
    if "latent" in folder and legacy and all(k in item for k in dims):
        f, h, w = (int(item[k]) for k in dims)
        item["latents"] = latents.T.reshape(latents.shape[1], f, h, w)
    if "prompt_embeds" in item and "video_prompt_embeds" not in item:
        item["video_prompt_embeds"] = item["prompt_embeds"]
    if "video_prompt_embeds" in item and "audio_prompt_embeds" not in item:
        item["audio_prompt_embeds"] = item["video_prompt_embeds"]
    item.pop("prompt_embeds", None)
    return item


def _partner(rel: Path, folder: Path) -> Path | None:
    """The file in `folder` matching `rel` (same path, or legacy latent_X ↔ condition_X)."""
    if (folder / rel).is_file():
        return folder / rel
    name = rel.name
    for a, b in (("latent_", "condition_"), ("condition_", "latent_")):
        if name.startswith(a) and (folder / rel.with_name(b + name[len(a) :])).is_file():
            return folder / rel.with_name(b + name[len(a) :])
    return None


class PrecomputedDataset(torch.utils.data.Dataset):
    """Items keyed by the strategy's batch names (`video_latents`, `conditions`, ...)."""

    def __init__(self, root: Path, sources: Mapping[str, str]) -> None:
        self.root = root
        self.sources = dict(sources)
        primary = next((s for s in PRIMARY_SOURCES if s in self.sources), next(iter(sources)))
        if "latents" in self.sources:
            primary = "latents"
        self.primary = primary
        files = sorted(p.relative_to(root / primary) for p in (root / primary).rglob("*.pt"))
        self.samples: list[dict[str, Path]] = []
        for rel in files:
            paths, missing = {}, None
            for folder in self.sources:
                found = _partner(rel, root / folder)
                if found is None:
                    missing = folder
                    break
                paths[folder] = found
            if missing is not None:
                log.warning("skipping %s: no matching file in %s/", rel, missing)
                continue
            self.samples.append(paths)
        if not self.samples:
            raise UsageError(
                f"no training samples in {root} (looked for .pt files in {primary}/ with "
                f"partners in {', '.join(self.sources)})",
                "run `ltx2 preprocess` into this folder first",
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {"idx": index}
        for folder, path in self.samples[index].items():
            item[self.sources[folder]] = _normalise(folder, load_item(path))
        return item


class BatchOrder(torch.utils.data.Sampler):
    """Shuffled, drop-last batches for one rank, restartable at (epoch, batch)."""

    def __init__(
        self, size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1
    ) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world = rank, world
        self.epoch, self.batch = 0, 0
        if self.batches_per_epoch == 0:
            raise UsageError(
                f"{size} samples make no full batch of {batch_size} on {world} process(es)",
                "lower optimization.batch_size or add samples",
            )

    @property
    def batches_per_epoch(self) -> int:
        return self.size // self.batch_size // self.world

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(self.size, generator=g).tolist()
        full = [order[i : i + self.batch_size] for i in range(0, self.size, self.batch_size)]
        full = [b for b in full if len(b) == self.batch_size]
        full = full[: self.batches_per_epoch * self.world]
        return full[self.rank :: self.world]

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            batches = self._epoch_batches(self.epoch)
            while self.batch < len(batches):
                index = batches[self.batch]
                self.batch += 1
                yield index
            self.epoch, self.batch = self.epoch + 1, 0

    def __len__(self) -> int:
        return self.batches_per_epoch

    def start_at(self, consumed: int) -> None:
        """Continue after `consumed` batches of this rank (the trainer counts them: loader
        workers prefetch, so the sampler's own cursor runs ahead)."""
        self.epoch, self.batch = divmod(consumed, self.batches_per_epoch)
