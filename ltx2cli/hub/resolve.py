"""Turn what a user typed for `--model`, `--lora`, `--upsampler`, `--text-encoder` into a path.

Accepted: a name registered with `ltx2 models import`; a catalog name that has been pulled (from
the cache only); a path, when it looks like one (it contains a separator, starts with `.` or
`~`, or ends in `.safetensors`) or the caller says it is one. So a folder in the working
directory named like a model never shadows the model. Never touches the network. `demo` is
left to the caller (see `is_demo`), which builds the demo model locally.
"""

from __future__ import annotations

from pathlib import Path

from ltx2cli.errors import CheckpointError, ModelNotInstalledError, UsageError
from ltx2cli.hub.catalog import DEMO_MODEL, KINDS, Artifact, Catalog, Requirement, load_catalog
from ltx2cli.hub.store import cache_path, read_registry
from ltx2cli.text import did_you_mean


def is_demo(name_or_path: str | Path) -> bool:
    return str(name_or_path) == DEMO_MODEL


def resolve_model(
    name_or_path: str | Path,
    kind: str | None = None,
    catalog: Catalog | None = None,
    *,
    as_path: bool = False,
) -> Path:
    """A local path for a model argument, or a one-line error saying how to get it.

    `kind` (checkpoint, upsampler, lora, text-encoder) rejects a catalog or imported name of
    another kind. Whole-repo artifacts (the text encoder) resolve to a folder. `as_path` takes
    the argument as a path whatever it looks like. A `Path` argument is always a path.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    text = str(name_or_path)
    if not text.strip():
        raise UsageError(
            "the model name is empty", "give a catalog name, an imported name or a path"
        )
    if is_demo(text):
        raise UsageError(
            "'demo' is the built-in demo model and has no file to resolve",
            "it is made locally on first use; commands take `--model demo` directly",
        )
    if as_path or isinstance(name_or_path, Path) or looks_like_path(text):
        path = Path(text).expanduser()
        if not path.exists():
            raise UsageError(f"no such file or folder: {text}", "check the path")
        return path.resolve()
    catalog = catalog or load_catalog()
    imports = read_registry()
    if text in imports:
        record = imports[text]
        _check_kind(text, record.get("kind"), kind)
        imported = Path(record["path"])
        if not imported.exists():
            raise CheckpointError(
                f"'{text}' was imported from {imported}, which no longer exists",
                f"import it again: `ltx2 models import NEW_PATH --as {text}`",
            )
        return imported
    if text in catalog.artifacts:
        artifact = catalog.artifacts[text]
        _check_kind(text, artifact.kind, kind)
        found = installed_path(artifact, catalog)
        if found is None:
            raise not_installed(artifact, catalog)
        return found
    raise UsageError(
        f"'{text}' is not a known model{did_you_mean(text, [*catalog.artifacts, *imports])}",
        f"see `ltx2 models available`; a local file or folder is written as a path (./{text})",
    )


def installed_path(artifact: Artifact, catalog: Catalog) -> Path | None:
    """Where a catalog artifact is on this machine (imported, pulled, or an interchangeable
    copy such as the ungated Gemma), or None."""
    found = _installed_import(artifact.name) or cache_path(artifact)
    for alternative in catalog.alternatives(artifact.name):
        found = found or _installed_import(alternative.name) or cache_path(alternative)
    return found


def fill_role(requirement: Requirement) -> tuple[Artifact, str | None]:
    """The artifact that fills a role, and a note to show when the choice needs saying.

    An installed candidate fills it; otherwise the preferred one, except that an ungated
    candidate is taken over a gated one (it downloads without a licence click-through).
    """
    for artifact in requirement.candidates:
        if _installed_import(artifact.name) or cache_path(artifact):
            return artifact, None
    preferred = requirement.candidates[0]
    chosen = min(requirement.candidates, key=lambda a: _GATING_ORDER[a.gated])
    if chosen is preferred:
        return chosen, None
    return chosen, (
        f"{requirement.role}: using {chosen.name}, the ungated alternative to {preferred.name} "
        f"(pull {preferred.name} by name to use it instead)"
    )


_GATING_ORDER = {False: 0, None: 1, True: 2}


def role_path(pipeline: str, generation: str, role: str, catalog: Catalog | None = None) -> Path:
    """Where the installed artifact that fills one role of a pipeline is (the first installed
    candidate, pulled or imported), or a not-installed error naming the pull that fixes it."""
    catalog = catalog or load_catalog()
    requirements = {r.role: r for r in catalog.required(pipeline, generation)}
    if role not in requirements:
        raise ValueError(f"the {pipeline} pipeline has no role {role!r}")
    for artifact in requirements[role].candidates:
        found = _installed_import(artifact.name) or cache_path(artifact)
        if found:
            return found
    wanted, _ = fill_role(requirements[role])
    raise ModelNotInstalledError(
        f"no {role} for the {pipeline} pipeline is installed "
        f"({wanted.name}: {wanted.size_text()} download)",
        f"ltx2 models pull --for {pipeline} --generation {generation}",
    )


def not_installed(artifact: Artifact, catalog: Catalog) -> ModelNotInstalledError:
    alternatives = [a.name for a in catalog.alternatives(artifact.name)]
    gated = " (gated: accept its licence first)" if artifact.gated else ""
    hint = f"ltx2 models pull {artifact.name}"
    if alternatives:
        hint += f"  (or the ungated copy: ltx2 models pull {alternatives[0]})"
    return ModelNotInstalledError(
        f"model '{artifact.name}' is not installed ({artifact.size_text()} download{gated})",
        hint,
    )


def _installed_import(name: str) -> Path | None:
    record = read_registry().get(name)
    return Path(record["path"]) if record and Path(record["path"]).exists() else None


def _check_kind(name: str, actual: str | None, wanted: str | None) -> None:
    if wanted is not None and actual is not None and actual != wanted:
        raise UsageError(
            f"'{name}' is a {actual}, not a {wanted}",
            f"pass a {wanted} here (see `ltx2 models available`)",
        )


def looks_like_path(text: str) -> bool:
    """A separator, a leading `.` or `~`, or a `.safetensors` ending: the user meant a path."""
    return (
        "/" in text or "\\" in text or text.startswith(("~", ".")) or text.endswith(".safetensors")
    )
