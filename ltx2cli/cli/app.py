"""The root `ltx2` app: global flags, command registration, and error-to-exit-code mapping."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ltx2cli import __version__
from ltx2cli.cli.output import out
from ltx2cli.errors import Ltx2Error

app = typer.Typer(
    name="ltx2",
    help="Generate video with synchronized audio using Lightricks' LTX-2 models, and manage "
    "everything around them: models, presets, datasets, training.",
    epilog="Examples:  ltx2 env  ·  ltx2 presets list  ·  ltx2 models available",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"ltx2 {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and debug logs (or LTX2_DEBUG=1).")
    ] = False,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    json: Annotated[
        bool, typer.Option("--json", help="Machine-readable stdout: one JSON object per result.")
    ] = False,
) -> None:
    out.reset(json=json, quiet=quiet, verbose=verbose, debug=debug)


# -- commands (each module is torch-free at import time) -------------------------------------
# One line per command module, in the order `ltx2 --help` lists them.
from ltx2cli.cli import env, models, presets  # noqa: E402

app.add_typer(models.app, name="models")
app.add_typer(presets.app, name="presets")
app.command("env")(env.env)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app and turn failures into one line and an exit code.

    Typer's standalone mode already prints usage errors (exit 2) and handles Ctrl-C; what
    reaches us is our own `Ltx2Error` (its exit code) or a bug (exit 1, traceback on --debug).
    """
    from typer.completion import completion_init

    completion_init()  # answer `_LTX2_COMPLETE=complete_<shell> ltx2` for bash, zsh and fish
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="ltx2", standalone_mode=True)
    except Ltx2Error as exc:
        if out.debug:
            _print_traceback()
        out.error(exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        out.error("interrupted")
        sys.exit(130)
    except Exception as exc:
        if out.debug:
            _print_traceback()
        out.error(
            f"{type(exc).__name__}: {exc}",
            None if out.debug else "run with --debug for the traceback",
        )
        sys.exit(1)


def _print_traceback() -> None:
    import traceback  # locals are never printed: they may hold tokens

    traceback.print_exc(file=sys.stderr)
