"""The root `ltx2` app: global flags, command registration, and error-to-exit-code mapping."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup

from ltx2cli import __version__
from ltx2cli.cli.options import examples
from ltx2cli.cli.output import out
from ltx2cli.errors import ConfigError, Ltx2Error, ParameterError

if TYPE_CHECKING:
    import click


class _Lazy(NamedTuple):
    """A command whose module is imported, and whose options are built, only when it runs (or
    its own help is asked for): building every command's options costs more than the rest of
    `ltx2 --help`."""

    module: str  # under ltx2cli.cli
    function: str | None = None  # the command; None: the module's Typer `app` (a group)
    no_args_is_help: bool = False


# One line per command, in the order `ltx2 --help` lists them. Every command module is torch-free
# at import time; a function command's epilog is its module's EXAMPLES.
_COMMANDS = {
    "generate": _Lazy("generate", "generate", no_args_is_help=True),
    "retake": _Lazy("retake", "retake", no_args_is_help=True),
    "interpolate": _Lazy("interpolate", "interpolate", no_args_is_help=True),
    "a2v": _Lazy("a2v", "a2v", no_args_is_help=True),
    "upscale": _Lazy("upscale", "upscale", no_args_is_help=True),
    "preprocess": _Lazy("preprocess", "preprocess"),
    "caption": _Lazy("caption", "caption"),
    "train": _Lazy("train"),
    "lora": _Lazy("lora"),
    "quantize": _Lazy("quantize", "quantize"),
    "models": _Lazy("models"),
    "presets": _Lazy("presets"),
    "env": _Lazy("env", "env"),
}


class _LazyCommands(MutableMapping):
    """The root's `commands`: every name known up front, each command built on first access."""

    def __init__(self) -> None:
        self._built: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._built:
            if name not in _COMMANDS:
                raise KeyError(name)
            self._built[name] = _build(name, _COMMANDS[name])
        return self._built[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(_COMMANDS), **dict.fromkeys(self._built)})

    def __len__(self) -> int:
        return len(set(_COMMANDS) | set(self._built))


def _build(name: str, entry: _Lazy) -> click.Command:
    module = importlib.import_module(f"ltx2cli.cli.{entry.module}")
    holder = typer.Typer(add_completion=False, rich_markup_mode=None)
    holder.callback()(lambda: None)  # a group, so that the command keeps its name
    if entry.function is None:
        holder.add_typer(module.app, name=name)
    else:
        function = getattr(module, entry.function)
        holder.command(name, epilog=module.EXAMPLES, no_args_is_help=entry.no_args_is_help)(
            function
        )
    return typer.main.get_command(holder).commands[name]  # type: ignore[attr-defined]


def _help_text(name: str) -> str | None:
    """What a command's help starts with, read without building its options."""
    if name not in _COMMANDS:
        return None
    entry = _COMMANDS[name]
    module = importlib.import_module(f"ltx2cli.cli.{entry.module}")
    if entry.function is None:
        return module.app.info.help
    return inspect.getdoc(getattr(module, entry.function))


class _Root(TyperGroup):
    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _LazyCommands()
        self.commands.update(attrs.get("commands") or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # names only: nothing is built

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The root help's command list, from each command's help text alone."""
        built = self.commands._built  # type: ignore[attr-defined]
        rows = []
        for name in self.list_commands(ctx):
            command = built.get(name) or TyperCommand(name=name, help=_help_text(name))
            if not command.hidden:
                rows.append((name, command))
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section("Commands"):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])


app = typer.Typer(
    name="ltx2",
    cls=_Root,
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
