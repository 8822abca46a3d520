"""Option aliases shared by several commands, so each flag reads the same everywhere, and the
one way a command's help shows its examples."""

from __future__ import annotations

from typing import Annotated

import typer

from ltx2cli.families import generation_choices

Json = Annotated[
    bool, typer.Option("--json", help="Print one JSON object per result on stdout, nothing else.")
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
Generation = Annotated[
    str | None,
    typer.Option("--generation", "-g", help=f"{generation_choices()}."),
]
Kind = Annotated[
    str | None, typer.Option("--kind", help="checkpoint | upsampler | lora | text-encoder.")
]

#: The heading `examples()` writes; tests find the examples under it.
EXAMPLES_HEADING = "Examples:"


def examples(*commands: str) -> str:
    """A help epilog listing `commands` one per line (keep each under 78 characters, so it
    stays on one line in an 80-column terminal). `\\b` keeps click from rewrapping them."""
    return "\n".join(("\b", EXAMPLES_HEADING, *(f"  {c}" for c in commands)))
