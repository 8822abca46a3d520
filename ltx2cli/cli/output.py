"""Where the CLI writes: results on stdout, everything else on stderr through Rich.

One `Output` instance (`out`) is configured by the root callback from `--json`, `-q`, `-v` and
`--debug`; commands report through it and library code reports through `logging` and progress
callbacks, which this module wires to the terminal.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ltx2cli.errors import Ltx2Error, UsageError
from ltx2cli.text import env_flag

if TYPE_CHECKING:  # Rich is imported when something is printed, not for `ltx2 --help`
    from rich.console import Console
    from rich.progress import Progress

#: Wide enough that Rich never wraps or truncates a table written to a pipe.
_UNBOUNDED_WIDTH = 10_000


@dataclass
class Output:
    json: bool = False
    quiet: bool = False
    verbose: int = 0
    debug: bool = field(default_factory=lambda: env_flag("LTX2_DEBUG"))
    _stderr: Console | None = None

    @property
    def stderr(self) -> Console:
        if self._stderr is None:
            from rich.console import Console

            self._stderr = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._stderr

    @property
    def interactive(self) -> bool:
        """Live displays (bars, spinners) only on a real terminal and when not silenced."""
        return self.stderr.is_terminal and not (self.quiet or self.json)

    def reset(
        self, *, json: bool = False, quiet: bool = False, verbose: int = 0, debug: bool = False
    ) -> None:
        """Start of an invocation: the root flags replace whatever an earlier run set."""
        self.json, self.quiet, self.verbose = json, quiet, verbose
        self.debug = debug or env_flag("LTX2_DEBUG")
        self._apply_log_level()

    def configure(
        self, *, json: bool = False, quiet: bool = False, verbose: int = 0, debug: bool = False
    ) -> None:
        """A command's own flags add to the root ones (`ltx2 models list --json`)."""
        self.json = self.json or json
        self.quiet = self.quiet or quiet
        self.verbose = max(self.verbose, verbose)
        self.debug = self.debug or debug
        self._apply_log_level()

    def _apply_log_level(self) -> None:
        level = logging.WARNING
        if self.verbose == 1:
            level = logging.INFO
        elif self.verbose >= 2 or self.debug:
            level = logging.DEBUG
        if self.quiet:
            level = logging.ERROR
        from rich.logging import RichHandler

        root = logging.getLogger("ltx2cli")
        root.handlers[:] = [
            RichHandler(
                console=self.stderr,
                show_path=False,
                show_time=self.debug,
                rich_tracebacks=False,
                markup=False,
            )
        ]
        root.setLevel(level)
        root.propagate = True  # the root logger has no handler in the CLI; tests capture there

    # -- stdout: results ------------------------------------------------------------------
    def result(self, data: Any, text: str | None = None) -> None:
        """One result: a JSON object under `--json`, else `text` (or a plain rendering)."""
        if self.json:
            sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write((text if text is not None else _plain(data)) + "\n")
        sys.stdout.flush()

    def table(self, table: Any) -> None:
        """A Rich table on stdout (for humans; `--json` callers use `result`).

        On a terminal it fits the window. Piped or redirected, it is laid out at its natural
        width instead, so no row wraps or loses a column (`| grep`, `| less -S` work), without
        colour codes or trailing blanks.
        """
        from rich.console import Console

        console = Console(highlight=False, soft_wrap=True)
        if console.is_terminal:
            console.print(table)
            return
        plain = Console(
            file=io.StringIO(), width=_UNBOUNDED_WIDTH, color_system=None, highlight=False
        )
        plain.print(table)
        lines = plain.file.getvalue().splitlines()  # type: ignore[attr-defined]
        sys.stdout.write("".join(line.rstrip() + "\n" for line in lines))
        sys.stdout.flush()

    # -- stderr: everything else ----------------------------------------------------------
    # Messages are plain text: brackets in them (`[28, 29]`, paths) are never Rich markup.
    def info(self, message: str) -> None:
        if not (self.quiet or self.json):
            self.stderr.print(message, markup=False)

    def warn(self, message: str) -> None:
        from rich.markup import escape

        if not self.quiet:
            self.stderr.print(f"[yellow]Warning:[/] {escape(message)}")

    def error(self, message: str, hint: str | None = None) -> None:
        from rich.markup import escape

        self.stderr.print(f"[bold red]Error:[/] {escape(message)}")
        if hint:
            self.stderr.print(f"[dim]Hint:[/] {escape(hint)}")

    def confirm(self, question: str, *, default: bool = True) -> bool:
        """Ask on stderr, read the answer from stdin (nothing is echoed to stdout). Under
        `--json` there is no one to ask: that is a usage error unless `-y` skipped the question."""
        if self.json:
            raise UsageError(
                f"--json needs -y: {question.rstrip('?')} was not confirmed",
                "add -y (--yes) to go ahead without asking",
            )
        choices = "[Y/n]" if default else "[y/N]"
        while True:
            self.stderr.print(f"{question} {choices} ", end="", markup=False)
            line = sys.stdin.readline()
            if not line:  # end of input: nobody said yes
                raise Ltx2Error("aborted: no answer on stdin", "pass -y to skip the question")
            answer = line.strip().lower()
            if not answer:
                return default
            if answer in ("y", "yes", "n", "no"):
                return answer.startswith("y")
            self.stderr.print("Please answer y or n.", markup=False)

    @contextmanager
    def progress(self, *, transfer: bool = False) -> Iterator[Progress]:
        """A Rich progress display on stderr; disabled off a terminal or when silenced."""
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
        if transfer:
            columns += [DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
        else:
            columns += [MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(
            *columns, console=self.stderr, disable=not self.interactive, transient=False
        ) as bar:
            yield bar

    @contextmanager
    def transfer_bars(self, prefix: str = "") -> Iterator[Callable[[str, int, int | None], None]]:
        """A `(label, bytes_done, bytes_total)` callback drawing one byte bar per label, for
        library code that reports progress through callbacks (downloads, hashing)."""
        with self.progress(transfer=True) as bar:
            tasks: dict[str, Any] = {}

            def advance(label: str, done: int, total: int | None) -> None:
                if label not in tasks:
                    tasks[label] = bar.add_task(prefix + label, total=total)
                bar.update(tasks[label], completed=done, total=total)

            yield advance


def _plain(data: Any) -> str:
    if isinstance(data, dict):
        return "\n".join(f"{k}: {v}" for k, v in data.items())
    return str(data)


out = Output()
