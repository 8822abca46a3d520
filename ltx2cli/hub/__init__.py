"""Model cache manager: catalog, data dir, pull/list/rm/verify. Torch-free.

Other commands need one call: `resolve_model(name_or_path, kind=...) -> Path` for what the
user named, `role_path(pipeline, generation, role) -> Path` for what a pipeline needs.
"""

from ltx2cli.hub.catalog import DEMO_MODEL, Artifact, Catalog, load_catalog
from ltx2cli.hub.resolve import is_demo, resolve_model, role_path

__all__ = [
    "DEMO_MODEL",
    "Artifact",
    "Catalog",
    "is_demo",
    "load_catalog",
    "resolve_model",
    "role_path",
]
