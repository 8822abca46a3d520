"""The root `ltx2` app: global flags, command registration, and error-to-exit-code mapping."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ltx2cli import __version__
from ltx2cli.cli.options import examples
from ltx2cli.cli.output import out
from ltx2cli.errors import ConfigError, Ltx2Error, ParameterError

app = typer.Typer(
    name="ltx2",
    help="Generate video with synchronized audio using Lightricks' LTX-2 models, and manage "
    "everything around them: models, presets, datasets, training.",
    epilog=examples("ltx2 env", "ltx2 presets list", "ltx2 models available"),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: Rich help rendering costs more than the rest of --help
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
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            metavar="",
            show_default=False,
            help="More log output: -v, -vv for debug.",
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    json: Annotated[
        bool, typer.Option("--json", help="Machine-readable stdout: one JSON object per result.")
    ] = False,
) -> None:
    out.reset(json=json, quiet=quiet, verbose=verbose, debug=debug)


# -- commands (each module is torch-free at import time) -------------------------------------
# One line per command module, in the order `ltx2 --help` lists them.
from ltx2cli.cli import (  # noqa: E402
    a2v,
    env,
    generate,
    interpolate,
    lora,
    models,
    presets,
    quantize,
    retake,
    upscale,
)
from ltx2cli.cli import caption as caption_cli  # noqa: E402
from ltx2cli.cli import preprocess as preprocess_cli  # noqa: E402
from ltx2cli.cli import train as train_cli  # noqa: E402

app.command("generate", epilog=generate.EXAMPLES, no_args_is_help=True)(generate.generate)
app.command("retake", epilog=retake.EXAMPLES, no_args_is_help=True)(retake.retake)
app.command("interpolate", epilog=interpolate.EXAMPLES, no_args_is_help=True)(
    interpolate.interpolate
)
app.command("a2v", epilog=a2v.EXAMPLES, no_args_is_help=True)(a2v.a2v)
app.command("upscale", epilog=upscale.EXAMPLES, no_args_is_help=True)(upscale.upscale)
app.command("preprocess", epilog=preprocess_cli.EXAMPLES)(preprocess_cli.preprocess)
app.command("caption", epilog=caption_cli.EXAMPLES)(caption_cli.caption)
app.add_typer(train_cli.app, name="train")
app.add_typer(lora.app, name="lora")
app.command("quantize", epilog=quantize.EXAMPLES)(quantize.quantize)
app.add_typer(models.app, name="models")
app.add_typer(presets.app, name="presets")
app.command("env", epilog=env.EXAMPLES)(env.env)


_INTERRUPTED = 130
_USAGE = 2
_DEBUG_HINT = "run with --debug for the traceback"
_BUG_HINT = "this is a bug in ltx2: please report it with the traceback above"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app and turn every failure into one line and an exit code.

    Exit codes: 0 success, 1 runtime error, 2 bad input or flags, 130 interrupted. Our own
    `Ltx2Error` carries its code; Typer's usage errors (unknown flag, missing argument) are
    printed in the same `Error: ... / Hint: ...` form instead of Typer's boxed panel; anything
    else is a bug: exit 1, traceback only with --debug.
    """
    from typer.completion import completion_init

    completion_init()  # answer `_LTX2_COMPLETE=complete_<shell> ltx2` for bash, zsh and fish
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="ltx2", standalone_mode=False)
    except Ltx2Error as exc:
        _fail(exc.exit_code, _flag_message(exc), exc.hint or _default_hint(exc.exit_code))
    except typer.Abort:  # Ctrl-C or end of input at a confirmation prompt
        _fail(1, "aborted", "answer the question, or pass -y to skip it")
    except KeyboardInterrupt:
        _fail(_INTERRUPTED, "interrupted", "run the command again")
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        _fail(1, f"{exc.strerror or exc}{where}", "check the path, its permissions and free space")
    except Exception as exc:
        if _is_usage_error(exc):
            _usage_error(exc)
        _fail(1, f"{type(exc).__name__}: {exc}", _BUG_HINT if out.debug else _DEBUG_HINT)
    if code == _INTERRUPTED:  # Typer turns Ctrl-C during a command into this exit code
        _fail(_INTERRUPTED, "interrupted", "run the command again")
    sys.exit(code if isinstance(code, int) else 0)


def _flag_message(exc: Ltx2Error) -> str:
    """A library error about a parameter (`num_frames: 120 is not 8k+1`) names the flag
    instead (`--num-frames: ...`). Settings errors already say where the value came from."""
    parameter = isinstance(exc, ParameterError) and not isinstance(exc, ConfigError)
    if parameter and exc.message.startswith(exc.key):  # type: ignore[attr-defined]
        return "--" + exc.key.replace("_", "-") + exc.message[len(exc.key) :]
    return exc.message


def _default_hint(code: int) -> str:
    return "see `ltx2 --help` and the command's --help" if code == _USAGE else _DEBUG_HINT


def _fail(code: int, message: str, hint: str) -> None:
    if out.debug and sys.exc_info()[0] is not None:
        import traceback  # locals are never printed: they may hold tokens

        traceback.print_exc(file=sys.stderr)
    out.error(message, hint)
    sys.exit(code)


def _is_usage_error(exc: Exception) -> bool:
    """Typer's (click's) parsing errors, recognised without importing click's private module."""
    return isinstance(getattr(exc, "exit_code", None), int) and callable(
        getattr(exc, "format_message", None)
    )


def _usage_error(exc: Exception) -> None:
    if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as --help shows it
        sys.stdout.write(exc.format_message().rstrip("\n") + "\n")  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    hint = f"see `{ctx.command_path} --help`" if ctx is not None else _default_hint(_USAGE)
    _fail(exc.exit_code, exc.format_message(), hint)  # type: ignore[attr-defined]
