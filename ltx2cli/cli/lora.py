"""`ltx2 lora inspect|convert|fuse`: what a LoRA file holds, its key style, and fusing it
into a checkpoint (all streamed by `ltx2cli.models`; this module only parses and prints)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ltx2cli.cli.options import Json, examples
from ltx2cli.cli.output import out

app = typer.Typer(
    help="Inspect, convert and fuse LoRA files (official, ComfyUI/kohya and diffusers keys).",
    epilog=examples(
        "ltx2 lora inspect my-lora.safetensors --model ltx-2.3-22b-dev",
        "ltx2 lora convert my-lora.safetensors --to comfy -o comfy.safetensors",
        "ltx2 lora fuse base.safetensors --lora style.safetensors:0.8 -o f.safetensors",
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)

LoraArg = Annotated[str, typer.Argument(help="A LoRA file or an imported/catalog LoRA name.")]
Output = Annotated[Path, typer.Option("--output", "-o", help="The file to write.")]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Check everything and show the plan; write nothing.")
]
Compat = Annotated[
    str,
    typer.Option(
        "--compat", help="current (alpha/rank scales kohya LoRAs) or 1.0.0 (alpha ignored)."
    ),
]


@app.command(
    "inspect",
    epilog=examples(
        "ltx2 lora inspect my-lora.safetensors",
        "ltx2 lora inspect my-lora.safetensors --model ltx-2.3-22b-dev",
        "ltx2 lora inspect my-lora.safetensors --json | jq .generation",
    ),
)
def inspect(
    lora: LoraArg,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Match against this checkpoint.")
    ] = None,
    compat: Compat = "current",
    json: Json = False,
) -> None:
    """What a LoRA holds and which model it fits.

    Key style, ranks, alpha, targeted modules, dtype, metadata and the generation it fits;
    with --model, which of its keys the model has and a one-line verdict.
    """
    from ltx2cli.compat import get_compat
    from ltx2cli.hub.resolve import resolve_model

    out.configure(json=json)
    settings = get_compat(compat)
    path = resolve_model(lora, kind="lora")
    model_path = None if model is None else resolve_model(model, kind="checkpoint")
    from ltx2cli.models.lora_files import inspect_lora

    report = inspect_lora(path, model_path, model_label=model, use_alpha=settings)
    out.result(report, _inspect_text(report))


def _inspect_text(r: dict[str, Any]) -> str:
    groups = ", ".join(f"{g} {n:,}" for g, n in r["groups"].items())
    generation = (
        f"LTX-{r['generation']} (from {r['generation_evidence']})"
        if r["generation"]
        else "either (it targets only layers both generations share)"
    )
    lines = [
        f"file        {r['path']}",
        f"style       {r['style']}",
        f"modules     {r['modules']:,} ({groups})",
        f"rank        {', '.join(map(str, r['ranks']))}",
        f"alpha       {', '.join(f'{a:g}' for a in r['alphas']) or '-'}: {r['alpha']}",
        f"dtype       {', '.join(r['dtypes'])}",
        f"generation  {generation}",
    ]
    lines += [f"{k:<11} {v}" for k, v in r["metadata"].items()]
    if r["incomplete"]:
        lines.append(f"incomplete  {len(r['incomplete'])} modules with one half of the pair")
    if r["ignored"]:
        lines.append(f"ignored     {len(r['ignored'])} keys that are not LoRA pairs")
    if "model" in r:
        m = r["model"]
        lines.append(f"verdict     {m['verdict']}")
        lines += [f"unmatched   {name}" for name in m["unmatched"][:5]]
        lines += [f"mismatched  {name}: {why}" for name, why in list(m["mismatched"].items())[:5]]
    return "\n".join(lines)


@app.command(
    "convert",
    epilog=examples(
        "ltx2 lora convert my-lora.safetensors --to comfy -o comfy.safetensors",
        "ltx2 lora convert comfy.safetensors --to official -o official.safetensors",
        "ltx2 lora convert my-lora.safetensors --to diffusers -o d.safetensors",
    ),
)
def convert(
    lora: LoraArg,
    to: Annotated[str, typer.Option("--to", help="official | comfy | diffusers.")],
    output: Output,
    dry_run: DryRun = False,
    json: Json = False,
) -> None:
    """Rewrite a LoRA in another key style; it fuses to the same weights."""
    from ltx2cli.hub.catalog import human_size
    from ltx2cli.hub.resolve import resolve_model
    from ltx2cli.models.lora_keys import check_style

    out.configure(json=json)
    check_style(to)
    path = resolve_model(lora, kind="lora")
    from ltx2cli.models.lora_files import convert_lora

    with out.transfer_bars() as advance:
        report = convert_lora(
            path, to, output, dry_run=dry_run, progress=lambda d, t: advance("converting", d, t)
        )
    verb = "wrote" if report["written"] else "would write"
    folded = f", alpha folded into {report['alpha_folded']}" if report["alpha_folded"] else ""
    out.result(
        report,
        f"{verb} {report['output']} ({report['from']} → {report['to']}, "
        f"{report['modules']:,} modules{folded}, {human_size(report['size'])})",
    )
    if report["dropped"]:
        out.warn(f"dropped {len(report['dropped'])} keys that are not LoRA pairs")


@app.command(
    "fuse",
    epilog=examples(
        "ltx2 lora fuse base.safetensors --lora style.safetensors -o fused.safetensors",
        "ltx2 lora fuse ltx-2.3-22b-dev -l a.safetensors:0.6 -l b:0.4 -o f.safetensors",
        "ltx2 lora fuse base.safetensors -l a.safetensors -o f.safetensors --dry-run",
    ),
)
def fuse(
    base: Annotated[str, typer.Argument(help="The checkpoint file or catalog name.")],
    loras: Annotated[
        list[str],
        typer.Option("--lora", "-l", help="LORA[:STRENGTH], repeatable (strength 1 if omitted)."),
    ],
    output: Output,
    compat: Compat = "current",
    dry_run: DryRun = False,
    json: Json = False,
) -> None:
    """Write a checkpoint with LoRAs fused into its transformer.

    Streamed tensor by tensor (bf16 and fp8 bases); everything else and the embedded config are
    copied unchanged; the input is never overwritten.
    """
    from ltx2cli.compat import get_compat
    from ltx2cli.hub.catalog import human_size
    from ltx2cli.hub.resolve import resolve_model

    out.configure(json=json)
    settings = get_compat(compat)
    base_path = resolve_model(base, kind="checkpoint")
    specs = [_lora_spec(text) for text in loras]
    from ltx2cli.models.rewrite import fuse_checkpoint

    with out.transfer_bars() as advance:
        report = fuse_checkpoint(
            base_path,
            specs,
            output,
            use_alpha=settings,
            dry_run=dry_run,
            progress=lambda d, t: advance("fusing", d, t),
        )
    for item in report["loras"]:
        if item["unmatched"]:
            out.warn(f"{Path(item['file']).name}: {len(item['unmatched'])} modules match nothing")
    verb = "wrote" if report["written"] else "would write"
    out.result(
        report,
        f"{verb} {report['output']} ({len(specs)} LoRA(s) fused into "
        f"{report['fused_weights']:,} weights, {human_size(report['size_after'])})",
    )


def _lora_spec(text: str) -> tuple[Path, float]:
    """`LORA[:STRENGTH]` with LORA a file or a name: its resolved path and the strength."""
    from ltx2cli.hub.resolve import resolve_model
    from ltx2cli.models.lora_keys import split_strength

    name, strength = split_strength(text)
    return resolve_model(name, kind="lora"), strength
