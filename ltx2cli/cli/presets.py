"""`ltx2 presets list|show`: the named bundles of generation settings `--preset` takes."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from ltx2cli.cli.options import Json, examples
from ltx2cli.cli.output import out

app = typer.Typer(
    help="List and inspect presets: named YAML bundles of generation settings.",
    epilog=examples(
        "ltx2 presets list", "ltx2 presets show fast", "ltx2 presets show fast > ~/my.yaml"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: Rich help rendering costs more than the rest of --help
)


def _complete_preset(incomplete: str) -> list[str]:
    from ltx2cli.config.presets import preset_names

    return [name for name in preset_names() if name.startswith(incomplete)]


@app.command("list", epilog=examples("ltx2 presets list", "ltx2 presets list --json"))
def list_presets(json: Json = False) -> None:
    """List built-in and user presets (user presets in the data dir shadow built-ins).

    With --json: one JSON object per preset.
    """
    from ltx2cli.config.presets import list_presets as find_all
    from ltx2cli.config.presets import user_dir

    out.configure(json=json)
    presets = find_all()
    if out.json:
        for p in presets:
            out.result(
                {
                    "name": p.name,
                    "source": p.source,
                    "description": p.description,
                    "path": str(p.path),
                    "shadows_builtin": p.shadows_builtin,
                    "error": p.error,
                }
            )
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("name", style="cyan", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("description")
    for p in presets:
        source = "user (shadows built-in)" if p.shadows_builtin else p.source
        text = f"[red]invalid:[/] {escape(p.error)}" if p.error else escape(p.description)
        table.add_row(p.name, source, text)
    out.table(table)
    out.info(f"User presets go in {user_dir()} (NAME.yaml); `ltx2 presets show NAME` for details.")


app.command("ls", hidden=True)(list_presets)


@app.command(
    "show",
    epilog=examples(
        "ltx2 presets show fast",
        "LTX2_STEPS=12 ltx2 presets show draft --json",
        "ltx2 presets show ./my-preset.yaml",
    ),
)
def show(
    name: Annotated[
        str,
        typer.Argument(
            help="Preset name, or a path to a preset YAML file.",
            autocompletion=_complete_preset,
        ),
    ],
    json: Json = False,
) -> None:
    """Print a preset resolved over the built-in defaults and any LTX2_* variables, as YAML.

    Lines that do not come from the defaults say where they came from.

    The output is itself a valid preset file: save it as <data dir>/presets/NAME.yaml and edit.
    """
    from ltx2cli.config.generation import GenerationSettings
    from ltx2cli.config.loader import to_plain
    from ltx2cli.config.resolve import resolve

    out.configure(json=json)
    resolved = resolve(GenerationSettings, preset=name, environ=os.environ)
    preset = resolved.preset
    assert preset is not None
    settings = to_plain(resolved.settings)
    if out.json:
        out.result(
            {
                "name": preset.name,
                "source": preset.source,
                "path": str(preset.path),
                "description": preset.description,
                "settings": settings,
                "sources": resolved.sources,
            }
        )
        return
    lines = [f"# preset {preset.name} ({preset.source}: {preset.path})"]
    lines.append(_yaml_line("description", preset.description))
    for key, value in settings.items():
        source = resolved.sources.get(key, "default")
        comment = "" if source == "default" else f"  # {source}"
        lines.append(_yaml_line(key, value) + comment)
    out.result(settings, "\n".join(lines))


def _yaml_line(key: str, value: Any) -> str:
    import yaml

    # Lists of numbers read best inline (`video_stg_blocks: [28]`); everything else block style.
    text = yaml.safe_dump(
        {key: value},
        default_flow_style=None if isinstance(value, list) else False,
        width=2**31 - 1,
        allow_unicode=True,
    )
    return text.rstrip("\n")
