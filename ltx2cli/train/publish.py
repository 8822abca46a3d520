"""Where a run reports to besides its folder: Weights & Biases and the Hugging Face Hub.

- W&B (`wandb.enabled`): needs the optional `wandb` package (a one-line error names the
  install otherwise). The run is named after output_dir's folder and carries the whole config;
  every optimizer step logs train/loss, train/learning_rate, train/step_time and
  train/global_step, and validation samples are logged as videos (audio-only samples as audio)
  when `log_validation_videos`. A resumed run continues the W&B run whose id the training
  state recorded.
- Hub (`hub.push_to_hub`): after the final checkpoint the main process creates the model repo
  `hub.hub_model_id` (kept if it exists) and uploads, in one commit through huggingface_hub's
  `upload_folder`: the final weights file, a README model card (base model, strategy, LoRA
  rank/alpha/targets, steps, validation prompts), and the last step's validation samples under
  `samples/` (mp4 / wav, as written). Training state and config stay local, as the reference
  does. The token comes from huggingface_hub's usual places (HF_TOKEN, `hf auth login`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from ltx2cli.errors import HubError, UsageError
from ltx2cli.train.config import TrainConfig

log = logging.getLogger(__name__)


def check_wandb(config: TrainConfig) -> None:
    """A one-line error when W&B is asked for and not installed (before anything loads)."""
    if not config.wandb.enabled:
        return
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise UsageError(
            "wandb.enabled needs the wandb package, which is not installed",
            "pip install wandb (or set --set wandb.enabled=false)",
        ) from None


class WandbLog:
    """The W&B run of a training run (main process only)."""

    def __init__(self, config: TrainConfig, run_dir: Path, run_id: str | None) -> None:
        import wandb

        w = config.wandb
        self.log_videos = w.log_validation_videos
        self.run = wandb.init(
            project=w.project,
            entity=w.entity,
            tags=list(w.tags),
            name=run_dir.name,
            config=config.model_dump(mode="json"),
            dir=str(run_dir),
            id=run_id,
            resume="allow" if run_id else None,
        )

    @property
    def id(self) -> str:
        return str(self.run.id)

    def step(self, step: int, loss: float, lr: float, seconds: float) -> None:
        self.run.log(
            {
                "train/loss": loss,
                "train/learning_rate": lr,
                "train/step_time": seconds,
                "train/global_step": step,
            },
            step=step,
        )

    def samples(self, step: int, paths: list[Path]) -> None:
        if not self.log_videos or not paths:
            return
        import wandb

        media = [wandb.Audio(str(p)) if p.suffix == ".wav" else wandb.Video(str(p)) for p in paths]
        self.run.log({"validation/samples": media}, step=step)

    def finish(self) -> None:
        self.run.finish()


def model_card(config: TrainConfig, weights: Path, steps: int) -> str:
    """The README of a pushed run."""
    lines = [
        "---",
        "tags:",
        "- ltx-2",
        "- lora" if config.model.training_mode == "lora" else "- full-fine-tune",
        "- text-to-video",
        "---",
        "",
        f"# {config.hub.hub_model_id}",
        "",
        f"Trained with `ltx2 train` from `{Path(config.model.model_path).name}` "
        f"({config.model.training_mode}, {config.training_strategy.name} strategy, {steps} steps).",
        "",
        f"- weights: `{weights.name}`",
    ]
    if config.lora is not None:
        targets = ", ".join(config.lora.target_modules)
        lines.append(
            f"- LoRA rank {config.lora.rank}, alpha {config.lora.alpha}, targets {targets}"
        )
    prompts = [s.prompt for s in config.validation.samples]
    if prompts:
        lines += ["", "## Validation prompts", "", *(f"- {p}" for p in prompts)]
    lines += ["", "## Use", "", f"    ltx2 generate PROMPT --lora {weights.name}", ""]
    return "\n".join(lines)


def push_to_hub(config: TrainConfig, weights: Path, samples: list[Path], steps: int) -> str:
    """Create the repo (if needed) and upload the weights, the card and the samples in one
    commit; returns the repo's URL."""
    import shutil

    from huggingface_hub import create_repo, upload_folder
    from huggingface_hub.utils import HfHubHTTPError

    repo_id = config.hub.hub_model_id
    assert repo_id is not None  # the config requires it with push_to_hub
    with tempfile.TemporaryDirectory(prefix="ltx2-hub-") as tmp:
        folder = Path(tmp)
        shutil.copy2(weights, folder / weights.name)
        (folder / "README.md").write_text(model_card(config, weights, steps), encoding="utf-8")
        if samples:
            (folder / "samples").mkdir()
            for path in samples:
                shutil.copy2(path, folder / "samples" / path.name)
        try:
            url = create_repo(repo_id, repo_type="model", exist_ok=True)
            upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                repo_type="model",
                commit_message=f"ltx2 train: {weights.name}",
            )
        except (HfHubHTTPError, OSError) as exc:
            raise HubError(
                f"pushing to the hub repo {repo_id} failed: {str(exc).splitlines()[0]}",
                f"check the token (`hf auth login`); the weights stay in {weights.parent}, "
                f"upload them with `hf upload {repo_id} {weights}`",
            ) from None
    log.info("pushed %s to %s", weights.name, url)
    return str(url)


def last_samples(run_dir: Path) -> list[Path]:
    """The validation samples of the latest step that has any."""
    from ltx2cli.train.validation import SAMPLES

    found = sorted((run_dir / SAMPLES).glob("step_*_*.*")) if (run_dir / SAMPLES).is_dir() else []
    found = [p for p in found if p.suffix in (".mp4", ".wav")]
    if not found:
        return []
    latest = max(p.name.split("_")[1] for p in found)
    return [p for p in found if p.name.split("_")[1] == latest]
