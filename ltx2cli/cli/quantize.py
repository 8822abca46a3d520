"""`ltx2 quantize`: write an fp8 checkpoint (streamed by `ltx2cli.models.rewrite`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ltx2cli.cli.options import Json, examples
from ltx2cli.cli.output import out

POLICIES = ("fp8-cast", "fp8-scaled-mm")
EXAMPLES = examples(
    "ltx2 quantize base.safetensors --policy fp8-cast -o base-fp8.safetensors",
    "ltx2 quantize ltx-2.3-22b-dev --policy fp8-scaled-mm -o dev-fp8.safetensors",
    "ltx2 quantize base.safetensors -p fp8-cast -o q.safetensors --dry-run --json",
)


def quantize(
    checkpoint: Annotated[str, typer.Argument(help="The checkpoint file or catalog name.")],
    policy: Annotated[
        str, typer.Option("--policy", "-p", help=f"{' | '.join(POLICIES)} (--quantization).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help='amax JSON ({"amax_values": {"<layer>.input_quantizer": x}}): static input '
            "scales for fp8-scaled-mm.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check everything and show the sizes; write nothing.")
    ] = False,
    json: Json = False,
) -> None:
    """Write an fp8 checkpoint: about half the transformer's bytes.

    The transformer blocks' attention and feed-forward Linears go to fp8: fp8-cast (plain
    cast, no scales) or fp8-scaled-mm (per-tensor scales, the -fp8 release layout). Other
    layers are kept; a file already in fp8 is reported, not cast again.
    """
    from ltx2cli.errors import UsageError
    from ltx2cli.hub.catalog import human_size
    from ltx2cli.hub.resolve import resolve_model

    out.configure(json=json)
    if policy not in POLICIES:
        raise UsageError(f"unknown policy {policy!r}", f"use one of: {', '.join(POLICIES)}")
    path = resolve_model(checkpoint, kind="checkpoint")
    from ltx2cli.models.rewrite import quantize_checkpoint

    with out.transfer_bars() as advance:
        report = quantize_checkpoint(
            path,
            output,
            policy,
            calibration=calibration,
            dry_run=dry_run,
            progress=lambda d, t: advance("quantizing", d, t),
        )
    before, after = report["transformer_bytes_before"], report["transformer_bytes_after"]
    verb = "wrote" if report["written"] else "would write"
    out.result(
        report,
        f"{verb} {report['output']} ({policy}, {report['quantized_layers']:,} layers): "
        f"transformer {human_size(before)} → {human_size(after)}, "
        f"file {human_size(report['size_before'])} → {human_size(report['size_after'])}",
    )
