"""`ltx2 env`: versions, devices, data dir and free space, for bug reports."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ltx2cli.cli.options import Json, examples
from ltx2cli.cli.output import out

# Distribution names as pip knows them.
PACKAGES = (
    "ltx2cli",
    "torch",
    "transformers",
    "accelerate",
    "safetensors",
    "huggingface_hub",
    "typer",
    "rich",
    "av",
    "pillow",
    "numpy",
    "pyyaml",
    "platformdirs",
    "gguf",
)
# Variables worth showing in a bug report; tokens are reported as set or not, never shown.
SHOWN_ENV = ("HF_HOME", "HF_ENDPOINT", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES")
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
GIB = 2**30
EXAMPLES = examples("ltx2 env", "ltx2 env --json | jq .torch")


def env(json: Json = False) -> None:
    """Show versions, Python, torch build, CUDA/MPS devices with memory, data dir, free space.

    Paste the output into bug reports. With --json: one JSON object.

    Tokens (HF_TOKEN, the Hugging Face login) show as set or not, never their value.
    """
    out.configure(json=json)
    info = collect()
    if out.json:
        out.result(info)
        return
    out.table(_render(info))


def collect() -> dict[str, Any]:
    """Everything `ltx2 env` reports, as plain JSON-able data."""
    import platform

    from ltx2cli.models.device import device_report  # imports torch: not at module level

    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": platform.platform(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "memory_gib": _ram_gib(),
        },
        "packages": {name: _version(name) for name in PACKAGES},
        "torch": device_report(),
        "data_dir": _data_dir_info(),
        "environment": _environment(),
    }


def _version(dist: str) -> str | None:
    from importlib import metadata  # ~40 ms to import: not on the `ltx2 --help` path

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1)
    except (AttributeError, ValueError, OSError):
        return None


def _data_dir_info() -> dict[str, Any]:
    import shutil

    from ltx2cli.hub.paths import data_dir, data_dir_problem, home_from_env

    path = data_dir()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return {
        "path": str(path),
        "exists": path.is_dir(),
        "problem": data_dir_problem(path),
        "from_env": home_from_env() is not None,
        "free_gib": round(usage.free / GIB, 1),
        "total_gib": round(usage.total / GIB, 1),
    }


def _environment() -> dict[str, Any]:
    shown = {k: v for k, v in sorted(os.environ.items()) if k.startswith("LTX2_")}
    shown.update({k: os.environ[k] for k in SHOWN_ENV if k in os.environ})
    tokens = {k: "set" for k in SECRET_ENV if os.environ.get(k)}
    token_file = _hf_token_file()
    if token_file is not None and token_file.is_file():
        tokens["huggingface login"] = "set"
    return {"variables": shown, "tokens": tokens}


def _hf_token_file() -> Path | None:
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home) / "token"


def _render(info: dict[str, Any]) -> Any:
    from rich.markup import escape as esc
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()

    def section(title: str) -> None:
        table.add_row(f"[bold]{title}[/]", "")

    py, plat = info["python"], info["platform"]
    section("system")
    table.add_row("  python", f"{py['version']} ({py['implementation']}) {esc(py['executable'])}")
    table.add_row("  platform", f"{plat['system']} ({plat['machine']})")
    memory = f", {plat['memory_gib']} GiB RAM" if plat["memory_gib"] is not None else ""
    table.add_row("  cpu", f"{plat['cpu_count']} cores{memory}")

    section("packages")
    for name, version in info["packages"].items():
        table.add_row(f"  {name}", version or "[dim]not installed[/]")

    section("torch")
    t = info["torch"]
    if not t["available"]:
        table.add_row("  torch", f"[red]cannot import:[/] {t['error']}")
    else:
        table.add_row("  build", f"{t['version']} · {t['build']} · {t['threads']} threads")
        table.add_row("  auto", f"{t['auto_device']}, {t['default_dtype']}")
        if t["cuda_devices"]:
            for d in t["cuda_devices"]:
                free = f", {d['free_gib']} GiB free" if "free_gib" in d else ""
                table.add_row(
                    f"  cuda:{d['index']}",
                    f"{esc(d['name'])} (sm {d['capability']}) {d['memory_gib']} GiB{free}",
                )
        else:
            table.add_row("  cuda", "not available")
        mps = t["mps"]
        if mps["available"]:
            memory = f" {mps['memory_gib']} GiB" if "memory_gib" in mps else ""
            table.add_row("  mps", f"{mps['name']}{memory}")
        else:
            table.add_row("  mps", "not available")

    section("data")
    d = info["data_dir"]
    note = " (LTX2_HOME)" if d["from_env"] else ""
    missing = "" if d["exists"] else " [dim](not created yet)[/]"
    if d["problem"]:
        missing = f" [red](unusable: {esc(d['problem'])})[/]"
    table.add_row("  data dir", f"{esc(d['path'])}{note}{missing}")
    table.add_row("  free space", f"{d['free_gib']} GiB of {d['total_gib']} GiB")

    e = info["environment"]
    if e["variables"] or e["tokens"]:
        section("environment")
        for name, value in e["variables"].items():
            table.add_row(f"  {name}", esc(value))
        for name, state in e["tokens"].items():
            table.add_row(f"  {name}", state)
    return table
