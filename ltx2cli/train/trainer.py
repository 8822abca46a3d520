"""`ltx2 train`: LoRA or full fine-tuning of the LTX-2 transformer with Accelerate (§1, §6, §8).

Flow of a run:
1. Check the config against the disk (data folders, model files) and claim the output folder
   (an existing run is only continued with `--resume` or replaced with `--overwrite`).
2. Load the transformer (bf16 base for LoRA under mixed precision, float32 for full
   fine-tuning or `mixed_precision_mode: no`) and the frozen text connectors; wrap the
   transformer with PEFT LoRA or unfreeze it all; gradient checkpointing per block.
3. `Accelerator` (mixed precision, DDP with unused parameters allowed, FSDP from `accelerate
   launch`) prepares model and optimizer; the same code runs in one process or many.
4. Loop: micro-batches (connectors → strategy → transformer → per-sample loss), manual
   gradient accumulation, clipping, optimizer and scheduler step, metrics to CSV, checkpoints
   every `checkpoints.interval` steps with retention, then the final weights.
A stop request (Ctrl-C) is honoured between optimizer steps: the state is saved and
`TrainingInterrupted` raised, so `--resume` continues exactly where the run stopped.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ltx2cli.errors import ConfigError, Ltx2Error, UsageError
from ltx2cli.train import checkpoints as ckpt
from ltx2cli.train.config import TrainConfig, check_paths, data_root
from ltx2cli.train.dataset import BatchOrder, PrecomputedDataset
from ltx2cli.train.plot import append_metrics, draw_plot, truncate_metrics
from ltx2cli.train.publish import WandbLog, check_wandb, last_samples, push_to_hub
from ltx2cli.train.samplers import make_sampler
from ltx2cli.train.strategy import Strategy, strategy_spec
from ltx2cli.train.validation import Validator, check_validation

log = logging.getLogger(__name__)

CONFIG_DUMP = "training_config.yaml"
StepFn = Callable[[int, int, float, float], None]  # (step, total, loss, lr)


class TrainingInterrupted(Ltx2Error):
    """The run was stopped on request after saving a resumable checkpoint."""

    exit_code = 130


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    weights: Path
    steps: int
    final_loss: float
    processes: int = 1
    replica_checksums: tuple[float, ...] = ()  # sum of the trainable weights, per process
    main_process: bool = True


def resolve_model_path(text: str) -> Path:
    """A checkpoint path from a path, an imported name or a pulled catalog name."""
    from ltx2cli.hub.resolve import is_demo, resolve_model

    if is_demo(text):
        raise UsageError(
            "the built-in demo model is made by `ltx2 generate`, which this build lacks",
            "point model.model_path (or --model) at a checkpoint file instead",
        )
    return resolve_model(text, kind="checkpoint")


def unsupported(config: TrainConfig, source: str) -> None:
    """Reject settings this build does not implement, before anything loads."""
    where = f"{source}: " if source else ""
    absent = {
        "acceleration.quantization": config.acceleration.quantization is not None,
        "acceleration.load_text_encoder_in_8bit": config.acceleration.load_text_encoder_in_8bit,
    }
    for key, used in absent.items():
        if used:
            raise ConfigError(
                f"{where}{key} is not supported by ltx2 train yet",
                f"remove it or use --set {key}=null/false; ltx-trainer runs such configs",
            )
    check_wandb(config)


# -- model setup -------------------------------------------------------------------------------


def _scale_factors(checkpoint: Path):
    from ltx2cli.diffusion.patchify import ScaleFactors
    from ltx2cli.models.checkpoint import read_checkpoint
    from ltx2cli.models.video_vae import VideoVAEConfig

    config = read_checkpoint(checkpoint).config
    if not config or "vae" not in config:
        return ScaleFactors()
    t, h, w = VideoVAEConfig.from_checkpoint_config(config).encoder_scale
    return ScaleFactors(t, h, w)


def _optimizer(config: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    opt = config.optimization
    if opt.optimizer_type == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise UsageError(
                "optimization.optimizer_type adamw8bit needs bitsandbytes",
                "pip install 'ltx2cli[train]' on Linux with CUDA, or use adamw",
            ) from None
        return bnb.optim.AdamW8bit(params, lr=opt.learning_rate)
    return torch.optim.AdamW(params, lr=opt.learning_rate)


def _scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    """The reference's schedulers with its defaults; scheduler_params override them."""
    from torch.optim import lr_scheduler as lrs

    opt = config.optimization
    steps, params = opt.steps, dict(opt.scheduler_params)
    defaults: dict[str, tuple[Any, dict[str, Any]]] = {
        "linear": (lrs.LinearLR, {"start_factor": 1.0, "end_factor": 0.1, "total_iters": steps}),
        "cosine": (lrs.CosineAnnealingLR, {"T_max": steps, "eta_min": 0.0}),
        "cosine_with_restarts": (
            lrs.CosineAnnealingWarmRestarts,
            {"T_0": max(steps // 4, 1), "T_mult": 1, "eta_min": 5e-5},
        ),
        "polynomial": (lrs.PolynomialLR, {"total_iters": steps, "power": 1.0}),
        "step": (lrs.StepLR, {"step_size": max(steps // 2, 1), "gamma": 0.1}),
    }
    if opt.scheduler_type == "constant":
        return None
    cls, kwargs = defaults[opt.scheduler_type]
    try:
        return cls(optimizer, **{**kwargs, **params})
    except TypeError as exc:
        raise ConfigError(
            f"optimization.scheduler_params {params} do not fit {opt.scheduler_type}: {exc}"
        ) from None


def _wrap_lora(transformer: torch.nn.Module, config: TrainConfig) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    lora = config.lora
    assert lora is not None
    names = {n.rsplit(".", 1)[-1] for n, _ in transformer.named_modules()}
    wrapped = get_peft_model(
        transformer,
        LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules),
            init_lora_weights=True,
        ),
    )
    if not any(p.requires_grad for p in wrapped.parameters()):  # pragma: no cover - peft raises
        raise ConfigError(f"lora.target_modules {lora.target_modules} match nothing ({names})")
    return wrapped


def load_models(config: TrainConfig, checkpoint: Path, dtype: torch.dtype):
    """The trainable transformer (PEFT-wrapped for LoRA) and the frozen connectors."""
    from ltx2cli.models.loading import load_component

    transformer = load_component(checkpoint, "transformer", dtype=dtype)
    connectors = [
        load_component(checkpoint, name, dtype=dtype).requires_grad_(False)
        for name in ("video_connector", "audio_connector")
    ]
    transformer.requires_grad_(False)
    if config.optimization.enable_gradient_checkpointing:
        transformer.set_gradient_checkpointing(True)
    if config.model.training_mode == "lora":
        model = _wrap_lora(transformer, config)
    else:
        model = transformer.requires_grad_(True)
    model.train()
    return model, connectors


def _lora_file_state(model: torch.nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return ckpt.lora_state(get_peft_model_state_dict(model), dtype)


def load_weights_file(model: torch.nn.Module, path: Path, mode: str) -> None:
    """Weights from a LoRA (official key style) or a full transformer file into `model`."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    if mode == "lora":
        from peft import set_peft_model_state_dict

        peft_state = {
            ckpt.PEFT_PREFIX + k.removeprefix(ckpt.LORA_PREFIX): v for k, v in state.items()
        }
        result = set_peft_model_state_dict(model, peft_state)
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise UsageError(
                f"{path.name} has LoRA weights for modules this run does not train "
                f"(e.g. {unexpected[0]})",
                "use the same lora.target_modules and rank as the run that wrote it",
            )
    else:
        model.load_state_dict(state, strict=True)


# -- the run ---------------------------------------------------------------------------------


def prepare_run_dir(config: TrainConfig, *, resume: bool, overwrite: bool) -> Path:
    run_dir = Path(config.output_dir).expanduser().resolve()
    taken = (run_dir / ckpt.CHECKPOINTS).is_dir() or (run_dir / CONFIG_DUMP).is_file()
    if taken and not resume:
        if not overwrite:
            raise UsageError(
                f"output_dir {run_dir} holds another run",
                "continue it with --resume, replace it with --overwrite, "
                "or --set output_dir=NEW_DIR",
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _resume_point(config: TrainConfig, run_dir: Path, resume_from: Path | None) -> Path | None:
    """The weights file to start from: `--resume [DIR]`, else `model.load_checkpoint`."""
    if resume_from is not None:
        found = resume_from if resume_from.is_file() else ckpt.latest_weights(resume_from)
        if found is None:
            raise UsageError(f"no checkpoint to resume from in {resume_from}")
        return found
    if config.model.load_checkpoint:
        given = Path(config.model.load_checkpoint).expanduser()
        found = given if given.is_file() else ckpt.latest_weights(given)
        if found is None:
            raise UsageError(f"model.load_checkpoint: no weights file at {given}")
        return found
    return None


def _fingerprint(config: TrainConfig) -> dict[str, Any]:
    return {
        "optimizer_type": config.optimization.optimizer_type,
        "scheduler_type": config.optimization.scheduler_type,
        "training_mode": config.model.training_mode,
        "lora_rank": config.lora.rank if config.lora else None,
    }


def _to(batch: Any, device: torch.device, dtype: torch.dtype) -> Any:
    if isinstance(batch, torch.Tensor):
        if batch.is_floating_point():
            return batch.to(device=device, dtype=dtype)
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device, dtype) for k, v in batch.items()}
    return batch


def train(
    config: TrainConfig,
    *,
    source: str = "",
    resume_from: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    on_step: StepFn | None = None,
) -> TrainResult:
    """Run the training described by `config`; see the module docstring."""
    import yaml
    from accelerate import Accelerator, DistributedDataParallelKwargs, DistributedType

    # 1. checks, output folder
    unsupported(config, source)
    check_paths(config, source=source)
    checkpoint = resolve_model_path(config.model.model_path)
    sampling = bool(check_validation(config, checkpoint, source))
    accelerator = Accelerator(
        mixed_precision=config.acceleration.mixed_precision_mode or "no",
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    if sampling and accelerator.distributed_type == DistributedType.FSDP:
        raise ConfigError(
            f"{source + ': ' if source else ''}validation sampling does not run under FSDP "
            "(the transformer is sharded across processes)",
            "turn it off with --set validation.interval=null, or train with DDP",
        )
    main = accelerator.is_main_process
    run_dir = (
        prepare_run_dir(config, resume=resume or resume_from is not None, overwrite=overwrite)
        if main
        else Path(config.output_dir).expanduser().resolve()
    )
    accelerator.wait_for_everyone()
    if resume and resume_from is None:
        resume_from = run_dir / ckpt.CHECKPOINTS
    torch.manual_seed(config.seed)

    # 2. models
    full = config.model.training_mode == "full"
    mixed = (config.acceleration.mixed_precision_mode or "no") != "no"
    dtype = torch.bfloat16 if mixed and not full else torch.float32
    model, connectors = load_models(config, checkpoint, dtype)
    start = _resume_point(config, run_dir, resume_from)
    if start is not None:
        load_weights_file(model, start, config.model.training_mode)
        log.info("loaded weights from %s", start)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not full:
        for p in trainable:  # LoRA factors train in float32 over a bf16 base
            p.data = p.data.float()

    # 3. optimizer, scheduler, data, accelerate
    optimizer = _optimizer(config, trainable)
    scheduler = _scheduler(config, optimizer)
    root = data_root(config)
    dataset = PrecomputedDataset(root, config.sources)
    order = BatchOrder(
        len(dataset),
        config.optimization.batch_size,
        config.seed,
        accelerator.process_index,
        accelerator.num_processes,
    )
    step, consumed, wandb_id = 0, 0, None
    if start is not None and not config.checkpoints.no_resume:
        state_base = start.parent / ckpt.state_name(ckpt.step_of(start) or 0)
        if state_base.with_suffix(".json").is_file():
            step, consumed, wandb_id = _restore(
                state_base, config, model, optimizer, scheduler, accelerator.num_processes
            )
    if step >= config.optimization.steps:
        raise UsageError(
            f"the checkpoint is at step {step}, optimization.steps is {config.optimization.steps}",
            "raise optimization.steps (e.g. --set optimization.steps=N) to train further",
        )
    order.start_at(consumed)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=order,
        num_workers=config.data.num_dataloader_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=config.data.num_dataloader_workers > 0,
        # Its own generator: starting an iterator must not draw from the global RNG, which a
        # resumed run has just restored.
        generator=torch.Generator().manual_seed(config.seed),
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    device = accelerator.device
    for c in connectors:
        c.to(device)
    strategy = Strategy(
        strategy_spec(config.training_strategy),
        make_sampler(
            config.flow_matching.timestep_sampling_mode,
            config.flow_matching.timestep_sampling_params,
        ),
        _scale_factors(checkpoint),
    )
    run = _Run(config, accelerator, model, optimizer, scheduler, strategy, run_dir, step, consumed)
    if main:
        (run_dir / CONFIG_DUMP).write_text(
            yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
        )
        truncate_metrics(run_dir, step)
    if main and config.wandb.enabled:
        run.wandb = WandbLog(config, run_dir, wandb_id)
    validator = None
    if sampling:
        precision = "bfloat16" if dtype == torch.bfloat16 else "float32"
        validator = Validator(config, checkpoint, run_dir, precision, str(device))
        if run.step == 0 and not config.validation.skip_initial_validation:
            run.validate(validator)

    # 4. loop
    accum = config.optimization.gradient_accumulation_steps
    batches = iter(loader)
    loss_value = math.nan
    while run.step < config.optimization.steps:
        started = time.perf_counter()
        total = torch.zeros((), device=device)
        for micro in range(accum):
            batch = _to(next(batches), device, dtype)
            run.consumed += 1
            sync = micro == accum - 1
            context = accelerator.no_sync(model) if not sync else nullcontext()
            with context, accelerator.autocast():
                loss = _loss(batch, model, connectors, strategy) / accum
                accelerator.backward(loss)
            total += loss.detach()
        if config.optimization.max_grad_norm > 0:
            accelerator.clip_grad_norm_(trainable_of(model), config.optimization.max_grad_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        run.step += 1
        loss_value = float(accelerator.reduce(total, reduction="mean"))
        lr = optimizer.param_groups[0]["lr"]
        if main:
            append_metrics(run_dir, run.step, loss_value, lr)
            seconds = time.perf_counter() - started
            if run.wandb is not None:
                run.wandb.step(run.step, loss_value, lr, seconds)
            log.debug("step %d loss %.5f lr %.3g %.2fs", run.step, loss_value, lr, seconds)
            if on_step is not None:
                on_step(run.step, config.optimization.steps, loss_value, lr)
        every = config.validation.interval
        if validator is not None and every and run.step % every == 0:
            run.validate(validator)
        interval = config.checkpoints.interval
        stop = _agreed(accelerator, should_stop())
        last = run.step >= config.optimization.steps
        if not last and ((interval and run.step % interval == 0) or stop):
            run.save(with_optimizer=stop)
        if stop and not last:
            raise TrainingInterrupted(
                f"stopped at step {run.step}; the checkpoint is in {run_dir / ckpt.CHECKPOINTS}",
                f"continue with: ltx2 train {source or 'CONFIG'} --resume",
            )
    weights = run.save()
    if main and config.hub.push_to_hub:
        push_to_hub(config, weights, last_samples(run_dir), run.step)
    if run.wandb is not None:
        run.wandb.finish()
    checksums = _replica_checksums(accelerator, model)
    accelerator.end_training()
    return TrainResult(
        run_dir, weights, run.step, loss_value, accelerator.num_processes, checksums, main
    )


def _replica_checksums(accelerator, model) -> tuple[float, ...]:
    """Every process's sum of its trainable weights: equal when the replicas stayed in step."""
    total = sum(p.detach().double().sum() for p in trainable_of(model))
    value = torch.as_tensor(total, dtype=torch.float64, device=accelerator.device).reshape(1)
    return tuple(float(v) for v in accelerator.gather(value).cpu())


def _agreed(accelerator, flag: bool) -> bool:
    """A stop request seen by any process stops every process at the same step."""
    if accelerator.num_processes == 1:
        return flag
    value = torch.tensor(float(flag), device=accelerator.device)
    return bool(accelerator.reduce(value, reduction="sum") > 0)


def trainable_of(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _loss(batch, model, connectors, strategy: Strategy) -> torch.Tensor:
    conditions = batch["conditions"]
    mask = conditions["prompt_attention_mask"]
    with torch.no_grad():
        video_context, context_mask = connectors[0](conditions["video_prompt_embeds"], mask)
        audio_context, _ = connectors[1](conditions["audio_prompt_embeds"], mask)
    prepared = strategy.prepare(batch, video_context, audio_context, context_mask)
    video, audio = model(prepared.video, prepared.audio)
    predictions = {k: v for k, v in (("video", video), ("audio", audio)) if v is not None}
    return strategy.loss(prepared, predictions).mean()


@dataclass
class _Run:
    """What the loop and the checkpoint writer share; `step` and `consumed` advance."""

    config: TrainConfig
    accelerator: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    strategy: Strategy
    run_dir: Path
    step: int = 0
    consumed: int = 0  # batches this process has taken from the loader
    wandb: WandbLog | None = None

    def validate(self, validator: Validator) -> None:
        """Validation samples of the current step, written by the main process."""
        if self.accelerator.is_main_process:
            paths = validator.run(self.step, self.accelerator.unwrap_model(self.model))
            if self.wandb is not None:
                self.wandb.samples(self.step, paths)
        self.accelerator.wait_for_everyone()

    def save(self, *, with_optimizer: bool = False) -> Path:
        """Weights (+ training state) for the current step, then retention; rank 0 writes.
        The optimizer is stored in "full" mode and always when the run stops on request, so
        that an interrupted run resumes exactly."""
        config, accelerator = self.config, self.accelerator
        unwrapped = accelerator.unwrap_model(self.model)
        mode = config.model.training_mode
        precision = ckpt.PRECISIONS[config.checkpoints.precision]
        if mode == "lora":
            tensors = _lora_file_state(unwrapped, precision)
        else:
            state = accelerator.get_state_dict(self.model)
            tensors = {k: v.to(precision) for k, v in state.items()}
        path = self.run_dir / ckpt.CHECKPOINTS / ckpt.weights_name(mode, self.step)
        if accelerator.is_main_process:
            metadata = _metadata(config, self.strategy)
            path = ckpt.save_weights(self.run_dir, mode, self.step, tensors, metadata)
            if config.checkpoints.save_training_state != "off" or with_optimizer:
                full_state = with_optimizer or config.checkpoints.save_training_state == "full"
                ckpt.save_state(
                    self.run_dir,
                    self.step,
                    trainable={n: p for n, p in unwrapped.named_parameters() if p.requires_grad},
                    optimizer=self.optimizer if full_state else None,
                    scheduler_state=None if self.scheduler is None else self.scheduler.state_dict(),
                    info={
                        "consumed_batches": self.consumed,
                        "num_processes": accelerator.num_processes,
                        "config_fingerprint": _fingerprint(config),
                        "wandb_run_id": None if self.wandb is None else self.wandb.id,
                    },
                )
            ckpt.prune(self.run_dir, config.checkpoints.keep_last_n)
            draw_plot(self.run_dir)
        accelerator.wait_for_everyone()
        return path


def _metadata(config: TrainConfig, strategy: Strategy) -> dict[str, str]:
    meta = dict(strategy.metadata)
    meta.update(
        {
            "ltx2_training_mode": config.model.training_mode,
            "ltx2_base_model": Path(config.model.model_path).name,
            "ltx2_strategy": config.training_strategy.name,
            "ltx2_steps": str(config.optimization.steps),
        }
    )
    if config.lora is not None:
        meta.update(
            {
                "ltx2_lora_rank": str(config.lora.rank),
                "ltx2_lora_alpha": str(config.lora.alpha),
                "ltx2_lora_targets": ",".join(config.lora.target_modules),
            }
        )
    prompts = [s.prompt for s in config.validation.samples]
    if prompts:
        meta["ltx2_validation_prompts"] = "\n".join(prompts)
    try:
        from ltx2cli.models.checkpoint import read_checkpoint

        info = read_checkpoint(resolve_model_path(config.model.model_path))
        meta["ltx2_base_generation"] = info.generation
    except Ltx2Error:
        pass
    return meta


def _restore(base, config, model, optimizer, scheduler, processes) -> tuple[int, int, str | None]:
    """Continue from a saved state: (step, consumed batches, W&B run id); a mismatch restarts
    at 0."""
    tensors, meta = ckpt.load_state(base)
    if meta.get("config_fingerprint") != _fingerprint(config):
        log.warning(
            "the saved training state was written with other settings (%s); starting at step 0 "
            "with the loaded weights",
            meta.get("config_fingerprint"),
        )
        return 0, 0, None
    named = dict(model.named_parameters())
    with torch.no_grad():
        for key, value in tensors.items():
            if key.startswith("param."):
                named[key.removeprefix("param.")].copy_(value)
    if "optimizer" in meta:
        ckpt.restore_optimizer(optimizer, tensors, meta)
    if scheduler is not None and meta.get("scheduler") is not None:
        scheduler.load_state_dict(meta["scheduler"])
    if processes == 1 and meta.get("num_processes", 1) == 1:
        ckpt.restore_rng(tensors)
    step = int(meta["global_step"])
    consumed = int(meta.get("consumed_batches", 0))
    log.info("resuming at step %d", step)
    return step, consumed, meta.get("wandb_run_id")
