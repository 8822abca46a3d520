"""How fast does `ltx2` start? Median wall time of `ltx2 --help` against `import torch`.

    python benchmarks/startup.py              # 15 runs each
    python benchmarks/startup.py -n 30 --importtime 12

Target: `ltx2 --help` at most 0.25 s (median, 2 idle cores). On a busy machine compare ratios:
the run also times `python -c pass` and `import torch`. `--importtime N` also lists the N most
expensive imports of `ltx2 --help` (cumulative, from `python -X importtime`), to see what to
make lazy.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.25


def ltx2_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m ltx2cli`."""
    script = Path(sys.executable).parent / "ltx2"
    if script.exists():
        return [str(script)]
    found = shutil.which("ltx2")
    return [found] if found else [sys.executable, "-m", "ltx2cli"]


def median_seconds(command: list[str], runs: int) -> float:
    subprocess.run(command, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def top_imports(count: int) -> list[tuple[int, int, str]]:
    """(cumulative µs, self µs, module) of the slowest imports of `ltx2 --help`."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ltx2cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, name = (part.strip() for part in line[12:].split("|"))
        rows.append((int(cumulative_us), int(self_us), name))
    return sorted(rows, reverse=True)[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ltx2 start-up time")
    parser.add_argument("-n", "--runs", type=int, default=15, help="runs per command")
    parser.add_argument("--importtime", type=int, default=0, metavar="N", help="top N imports")
    args = parser.parse_args(argv)

    ltx2 = [*ltx2_command(), "--help"]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "ltx2 --help": ltx2,
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    medians = {label: median_seconds(cmd, args.runs) for label, cmd in commands.items()}
    print(f"median of {args.runs} runs ({' '.join(ltx2)}):")
    for label, seconds in medians.items():
        print(f"  {label:<26} {seconds:7.3f} s")
    help_s, torch_s = medians["ltx2 --help"], medians["python -c 'import torch'"]
    print(f"  ratio ltx2 --help / python -c pass: {help_s / medians['python -c pass']:.2f}")
    print(f"  ratio ltx2 --help / import torch: {help_s / torch_s:.2f}")
    verdict = "meets" if help_s <= TARGET_S else "misses"
    print(f"  {verdict} the {TARGET_S} s target")
    if args.importtime:
        print("slowest imports of ltx2 --help (cumulative ms, self ms):")
        for cumulative, own, name in top_imports(args.importtime):
            print(f"  {cumulative / 1000:7.1f} {own / 1000:7.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
