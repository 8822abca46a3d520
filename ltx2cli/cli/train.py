"""`ltx2 train CONFIG.yaml` and `ltx2 train plot RUN_DIR`: LoRA / full fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from ltx2cli.cli.options import Json, examples
from ltx2cli.cli.output import out

RUN = "run"
RESUME_LATEST = "latest"


class _RunByDefault(TyperGroup):
    """`ltx2 train CONFIG ...` means `ltx2 train run CONFIG ...`; `plot` is a subcommand.

    `--resume` takes an optional value (Typer has no such option): a bare `--resume`, last or
    followed by another option, means the latest checkpoint of output_dir.
    """

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [RUN, *args]
        args = list(args)
        for i, arg in enumerate(args):
            if arg == "--resume" and (i + 1 == len(args) or args[i + 1].startswith("-")):
                args.insert(i + 1, RESUME_LATEST)
                break
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_RunByDefault,
    help="Train a LoRA or fine-tune the model on a preprocessed dataset (ltx-trainer configs).\n\n"
    "ltx2 train CONFIG.yaml [--set KEY=VALUE ...] [--resume [DIR]] [--overwrite] [--check]\n\n"
    "CONFIG is a YAML file or a shipped config name (`ltx2 presets list --train`).",
    epilog=examples(
        "ltx2 train my_lora.yaml",
        "ltx2 train t2v_lora --set data.preprocessed_data_root=ds/.precomputed",
        "ltx2 train my_lora.yaml --resume",
        "ltx2 train my_lora.yaml --set lora.rank=16 --check",
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@app.command(RUN, hidden=True)
def run(
    config: Annotated[
        str, typer.Argument(help="Training config YAML (ltx-trainer schema) or a shipped name.")
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config key: --set optimization.steps=100."),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue exactly from the latest checkpoint of output_dir, or of DIR/FILE.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing run in output_dir.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Validate the config and paths, print it, and exit.")
    ] = False,
    json: Json = False,
) -> None:
    """Train with CONFIG; Ctrl-C saves a checkpoint and exits 130 (continue with --resume)."""
    from ltx2cli.train.config import check_paths, load_config
    from ltx2cli.train.presets import find_train_config

    out.configure(json=json)
    path = find_train_config(config)
    cfg = load_config(path, set_ or ())
    if check:
        from ltx2cli.train.trainer import unsupported

        unsupported(cfg, str(path))
        check_paths(cfg, source=str(path))
        out.result(cfg.model_dump(mode="json"), f"{path}: valid")
        return
    _train(cfg, str(path), resume, overwrite)


def _train(cfg, source: str, resume: str | None, overwrite: bool) -> None:  # type: ignore[no-untyped-def]
    import signal

    from ltx2cli.train.trainer import train

    stop = {"requested": False}

    def request_stop(signum, frame):  # type: ignore[no-untyped-def]
        if stop["requested"]:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        stop["requested"] = True
        out.warn("stopping after this step: saving a checkpoint (Ctrl-C again to abort)")

    previous = signal.signal(signal.SIGINT, request_stop)
    resume_from = None if resume in (None, RESUME_LATEST) else Path(resume).expanduser()
    try:
        with out.progress() as bar:
            task = bar.add_task("training", total=cfg.optimization.steps)

            def on_step(step: int, total: int, loss: float, lr: float) -> None:
                bar.update(task, completed=step, description=f"training  loss {loss:.4f}")

            result = train(
                cfg,
                source=source,
                resume=resume is not None,
                resume_from=resume_from,
                overwrite=overwrite,
                should_stop=lambda: stop["requested"],
                on_step=on_step,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    if not result.main_process:  # under `accelerate launch`, rank 0 reports
        return
    out.result(
        {
            "run_dir": str(result.run_dir),
            "weights": str(result.weights),
            "steps": result.steps,
            "loss": result.final_loss,
            "processes": result.processes,
            "replica_checksums": list(result.replica_checksums),
        },
        str(result.weights),
    )


@app.command(
    "plot", epilog=examples("ltx2 train plot outputs/my_lora", "ltx2 train plot runs/style --json")
)
def plot(
    run_dir: Annotated[Path, typer.Argument(help="The output_dir of a training run.")],
) -> None:
    """Redraw RUN_DIR/loss.png from RUN_DIR/metrics.csv (loss and learning rate per step)."""
    from ltx2cli.train.plot import draw_plot

    out.result({"plot": str(draw_plot(run_dir))}, str(run_dir / "loss.png"))


def list_train_configs() -> None:
    """`ltx2 presets list --train`: the shipped training configs."""
    from rich.table import Table

    from ltx2cli.train.presets import list_train_presets

    presets = list_train_presets()
    if out.json:
        for p in presets:
            out.result({"name": p.name, "description": p.description, "path": str(p.path)})
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("name", style="cyan", no_wrap=True)
    table.add_column("description")
    for p in presets:
        table.add_row(p.name, p.description)
    out.table(table)
    out.info("Run one with `ltx2 train NAME --set data.preprocessed_data_root=DIR`.")
