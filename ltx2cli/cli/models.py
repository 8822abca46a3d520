"""`ltx2 models`: the catalog, pulls, and the local model cache.

The hub modules are imported inside the commands, so `ltx2 --help` does not pay for them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ltx2cli.cli.options import Generation, Json, Kind, Yes, examples
from ltx2cli.cli.output import out
from ltx2cli.errors import ModelNotInstalledError, UsageError
from ltx2cli.families import DEFAULT_GENERATION, get_family
from ltx2cli.pipelines import registry
from ltx2cli.text import did_you_mean

if TYPE_CHECKING:
    from ltx2cli.hub import catalog as cat

app = typer.Typer(
    help="Download, list, verify and remove model files (catalog names or your own files).",
    epilog=examples(
        "ltx2 models available",
        "ltx2 models pull --for distilled -y",
        "ltx2 models list --json",
        "ltx2 models path ltx-2.3-22b-distilled",
    ),
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: Rich help rendering costs more than the rest of --help
)

Names = Annotated[list[str], typer.Argument(help="Catalog names (see `ltx2 models available`).")]


def _check_kind(kind: str | None) -> None:
    from ltx2cli.hub import catalog as cat

    if kind is not None and kind not in cat.KINDS:
        raise UsageError(
            f"unknown kind '{kind}'{did_you_mean(kind, cat.KINDS)}",
            f"choose one of: {', '.join(cat.KINDS)}",
        )


@app.command(
    "available",
    epilog=examples(
        "ltx2 models available",
        "ltx2 models available --generation 2.3",
        "ltx2 models available --kind lora --json",
    ),
)
def available(generation: Generation = None, kind: Kind = None, json: Json = False) -> None:
    """Show the catalog: name, kind, generation, size, gating and whether it is installed."""
    from ltx2cli.hub import catalog as cat
    from ltx2cli.hub.resolve import installed_path

    out.configure(json=json)
    _check_kind(kind)
    catalog = cat.load_catalog()
    generation = None if generation is None else get_family(generation).name
    rows = [
        a for a in catalog.artifacts.values()
        if (generation is None or a.generation in (generation, cat.ANY_GENERATION))
        and (kind is None or a.kind == kind)
    ]  # fmt: skip
    if out.json:
        for a in rows:
            out.result(_describe(a, catalog))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("name", "kind", "gen", "size", "gated", "installed"):
        table.add_column(col, no_wrap=True, min_width=len(col))
    table.add_column("description", overflow="fold")
    for a in rows:
        gated = {True: "yes", False: "", None: "?"}[a.gated]
        mark = "✓" if installed_path(a, catalog) else ""
        note = a.description + (f" (superseded by {a.superseded_by})" if a.superseded_by else "")
        cells = (a.name, a.kind, a.generation, a.size_text(), gated, mark, note)
        table.add_row(*map(escape, cells))
    out.table(table)


@app.command(
    "pull",
    epilog=examples(
        "ltx2 models pull ltx-2.3-22b-distilled",
        "ltx2 models pull --for two-stage --generation 2.3 -y",
        "ltx2 models pull --for distilled --dry-run",
        "ltx2 models pull gemma-3-12b-lightricks ltx-2.3-spatial-upscaler-x2",
    ),
)
def pull(
    names: Annotated[list[str] | None, typer.Argument(help="Catalog names to download.")] = None,
    for_pipeline: Annotated[
        str | None,
        typer.Option(
            "--for",
            help=f"Everything one pipeline needs: {', '.join(registry.NAMES)}.",
            show_default=False,
        ),
    ] = None,
    generation: Generation = DEFAULT_GENERATION,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan (from the catalog) and stop.")
    ] = False,
    yes: Yes = False,
    json: Json = False,
) -> None:
    """Download catalog models into the cache: shows the plan (files, sizes, licence, gating)
    from the catalog first, then asks the hub, checks free space and fetches.

    An interrupted pull resumes where it stopped; concurrent pulls of one file share it.
    """
    from ltx2cli.hub import catalog as cat
    from ltx2cli.hub import store
    from ltx2cli.hub.paths import hub_cache_dir
    from ltx2cli.hub.resolve import fill_role

    out.configure(json=json)
    catalog = cat.load_catalog()
    if not names and not for_pipeline:
        raise UsageError("nothing to pull", "name models, or use --for PIPELINE")
    wanted = [catalog.get(n) for n in dict.fromkeys(names or [])]
    if for_pipeline:
        for requirement in catalog.required(for_pipeline, generation or DEFAULT_GENERATION):
            artifact, note = fill_role(requirement)
            if note:
                out.info(note)
            if artifact not in wanted:
                wanted.append(artifact)
    steps = [(a, store.missing_files(a)) for a in wanted]
    if dry_run:
        for a, missing in steps:
            out.result(_planned(a, missing), _planned_line(a, missing))
        return
    _show_catalog_plan(steps)
    if not any(missing for _, missing in steps):
        _report(wanted, {})
        return
    from ltx2cli.hub import download
    from ltx2cli.hub.paths import usable_data_dir

    usable_data_dir()
    plan = download.plan(wanted)
    for line in plan.warnings:
        out.warn(line)
    if plan.files:
        resumed = sum(f.partial for f in plan.files)
        extra = f" ({cat.human_size(resumed)} already here, resumed)" if resumed else ""
        out.info(
            f"Total {cat.human_size(plan.to_fetch)} to download{extra}, "
            f"{cat.human_size(plan.free_space())} free in {hub_cache_dir()}"
        )
        plan.check_space()
        if not yes and not out.confirm("Download?"):
            raise typer.Exit(1)
        with out.transfer_bars() as advance:
            download.pull(plan, on_progress=advance)
    fetched: dict[str, int] = {}
    for f in plan.files:
        fetched[f.artifact.name] = fetched.get(f.artifact.name, 0) + f.size - f.partial
    _report(wanted, fetched)


def _report(wanted: list[cat.Artifact], fetched: dict[str, int]) -> None:
    from ltx2cli.hub import store

    for a in wanted:
        path = store.cache_path(a)
        got = fetched.get(a.name, 0)
        out.result(
            {"name": a.name, "path": str(path), "downloaded": got},
            f"{a.name}\t{path}" + ("" if got else "\t(already installed)"),
        )


_GATING = {
    True: "gated: accept the licence on the hub first",
    False: "not gated",
    None: "gating unverified",
}


def _planned(a: cat.Artifact, missing: list[cat.FileSpec]) -> dict:
    return {
        "name": a.name,
        "repo": a.repo,
        "files": [f.name for f in missing],
        "size": sum(f.size or 0 for f in missing),
        "size_exact": all(f.exact and f.size is not None for f in missing),
        "licence": a.licence,
        "gated": a.gated,
        "installed": not missing,
    }


def _planned_line(a: cat.Artifact, missing: list[cat.FileSpec]) -> str:
    from ltx2cli.hub import catalog as cat

    if not missing:
        return f"{a.name}\talready installed"
    size = cat.human_size(sum(f.size or 0 for f in missing))
    return f"{a.name}\t{len(missing)} file(s), {size}\t{a.licence}\t{_GATING[a.gated]}"


def _show_catalog_plan(steps: list[tuple[cat.Artifact, list[cat.FileSpec]]]) -> None:
    for a, missing in steps:
        out.info("  " + _planned_line(a, missing).replace("\t", ": ", 1).replace("\t", ", "))
    licences = sorted({a.licence for a, missing in steps if missing})
    if licences:
        out.info("Licence: " + "; ".join(licences))


@app.command("list", epilog=examples("ltx2 models list", "ltx2 models list --json"))
def list_(json: Json = False) -> None:
    """Installed models (pulled and imported) with their size on disk and path."""
    from ltx2cli.hub import catalog as cat
    from ltx2cli.hub import store

    out.configure(json=json)
    found = store.installed(cat.load_catalog())
    if out.json:
        for item in found:
            out.result({**item.__dict__, "path": str(item.path)})
        return
    if not found:
        out.info("No models installed. Try `ltx2 models pull --for distilled`.")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("name", "kind", "size", "path"):
        table.add_column(col, no_wrap=col != "path", overflow="fold")
    for item in found:
        cells = (item.name, item.kind, cat.human_size(item.size), str(item.path))
        table.add_row(*map(escape, cells))
    out.table(table)


app.command("ls", hidden=True)(list_)


@app.command(
    "path",
    epilog=examples(
        "ltx2 models path ltx-2.3-22b-distilled", 'CKPT="$(ltx2 models path ltx-2-19b-dev)"'
    ),
)
def path(
    name: Annotated[str, typer.Argument(help="A catalog or imported name.")], json: Json = False
) -> None:
    """Print the local path of an installed model (exit 1 if it is not installed)."""
    from ltx2cli.hub.resolve import resolve_model

    out.configure(json=json)
    found = resolve_model(name)
    out.result({"name": name, "path": str(found)}, str(found))


@app.command(
    "rm",
    epilog=examples(
        "ltx2 models rm ltx-2-19b-dev",
        "ltx2 models rm ltx-2-19b-dev ltx-2-19b-distilled-lora-384 -y",
    ),
)
def rm(names: Names, yes: Yes = False, json: Json = False) -> None:
    """Delete pulled models from the cache (imported files are only forgotten, never deleted)."""
    from ltx2cli.hub import catalog as cat
    from ltx2cli.hub import store

    out.configure(json=json)
    catalog = cat.load_catalog()
    imports = store.read_registry()
    targets = [
        (name, None if name in imports else _installed_artifact(catalog, name))
        for name in dict.fromkeys(names)
    ]
    if not yes and not out.confirm(f"Remove {', '.join(n for n, _ in targets)}?", default=False):
        raise typer.Exit(1)
    for name, artifact in targets:
        if artifact is None:
            store.forget_import(name)
            out.result({"name": name, "freed": 0}, f"{name}\tforgotten (your file was kept)")
            continue
        freed = store.remove(artifact)
        out.result({"name": name, "freed": freed}, f"{name}\tfreed {cat.human_size(freed)}")


app.command("remove", hidden=True)(rm)


def _installed_artifact(catalog: cat.Catalog, name: str) -> cat.Artifact:
    """The catalog entry `name`, if at least one of its files is in the cache."""
    from ltx2cli.hub import store

    artifact = catalog.get(name)
    if not any(store.cached_file(artifact, s) for s in artifact.files):
        raise ModelNotInstalledError(f"model '{name}' is not installed", "see `ltx2 models list`")
    return artifact


@app.command(
    "verify",
    epilog=examples(
        "ltx2 models verify",
        "ltx2 models verify ltx-2.3-22b-distilled",
        "ltx2 models verify --json",
    ),
)
def verify(
    names: Annotated[list[str] | None, typer.Argument(help="Default: all installed.")] = None,
    json: Json = False,
) -> None:
    """Re-hash installed files against the hub's recorded hashes; exit 1 if any is corrupt."""
    from ltx2cli.hub import catalog as cat
    from ltx2cli.hub import store
    from ltx2cli.hub.errors import ChecksumError

    out.configure(json=json)
    catalog = cat.load_catalog()
    imports = store.read_registry()
    chosen = list(dict.fromkeys(names or [i.name for i in store.installed(catalog)]))
    if not chosen:
        out.info("No models installed: nothing to verify.")
        return
    pulled = {n: _installed_artifact(catalog, n) for n in chosen if n not in imports}
    checks: list[store.FileCheck] = []
    with out.transfer_bars(prefix="hashing ") as advance:
        for name in chosen:
            if name in imports:
                checks += store.verify_import(name, imports[name], catalog, advance)
            else:
                checks += store.verify(pulled[name], advance)
    for c in checks:
        out.result(c.__dict__, f"{c.status}\t{c.artifact}\t{c.file}\t{c.detail}")
    bad = [c for c in checks if c.status in ("corrupt", "missing")]
    if bad:
        names_bad = sorted({c.artifact for c in bad})
        raise ChecksumError(
            f"{len(bad)} file(s) failed verification: {', '.join(names_bad)}",
            f"remove and pull again: ltx2 models rm -y {' '.join(names_bad)} && "
            f"ltx2 models pull -y {' '.join(names_bad)}",
        )


@app.command(
    "import",
    epilog=examples(
        "ltx2 models import ~/ComfyUI/ltx-2.3.safetensors --as ltx-2.3-22b-distilled",
        "ltx2 models import ./my-lora.safetensors --as my-style --kind lora",
    ),
)
def import_(
    file: Annotated[Path, typer.Argument(help="A file or folder you already have.")],
    name: Annotated[str, typer.Option("--as", help="Catalog name or a name of your own.")],
    kind: Kind = None,
    json: Json = False,
) -> None:
    """Use a model file you already have (e.g. from ComfyUI) without copying it.

    --kind is needed for names of your own (not in the catalog).
    """
    from ltx2cli.hub import catalog as cat
    from ltx2cli.hub import store

    out.configure(json=json)
    record = store.import_model(cat.load_catalog(), file, name, kind)
    out.result(record, f"{name}\t{record['path']}")


_DESCRIBED = ("name", "kind", "generation", "repo", "size", "size_exact", "licence", "gated")


def _describe(a: cat.Artifact, catalog: cat.Catalog) -> dict:
    from ltx2cli.hub.resolve import installed_path

    path = installed_path(a, catalog)
    return {
        **{key: getattr(a, key) for key in _DESCRIBED},
        "files": [f.name for f in a.files],
        "superseded_by": a.superseded_by,
        "installed": path is not None,
        "path": str(path) if path else None,
    }
