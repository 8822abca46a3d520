"""The run's metrics log (`metrics.csv`: step, loss, learning_rate) and its plot (`loss.png`).

The plot is drawn with Pillow (already a core dependency): loss on top, learning rate below,
each scaled to its own range, so no plotting library is needed.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ltx2cli.errors import UsageError

METRICS = "metrics.csv"
PLOT = "loss.png"
COLUMNS = ("step", "loss", "learning_rate")
SIZE = (800, 500)
MARGIN = 50


def append_metrics(run_dir: Path, step: int, loss: float, lr: float) -> None:
    path = run_dir / METRICS
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(COLUMNS)
        writer.writerow([step, f"{loss:.8g}", f"{lr:.8g}"])


def read_metrics(run_dir: Path) -> list[tuple[int, float, float]]:
    path = run_dir / METRICS
    if not path.is_file():
        raise UsageError(f"{run_dir} has no {METRICS}", "pass the output_dir of an ltx2 train run")
    rows: dict[int, tuple[int, float, float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            rows[step] = (step, float(row["loss"]), float(row["learning_rate"]))
    return [rows[s] for s in sorted(rows)]  # a resumed run rewrites steps: the last one wins


def truncate_metrics(run_dir: Path, after_step: int) -> None:
    """Drop rows past `after_step` (a resumed run logs those steps again)."""
    path = run_dir / METRICS
    if not path.is_file():
        return
    kept = [r for r in read_metrics(run_dir) if r[0] <= after_step]
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for step, loss, lr in kept:
            writer.writerow([step, f"{loss:.8g}", f"{lr:.8g}"])
    os.replace(tmp, path)


def draw_plot(run_dir: Path) -> Path:
    """Redraw `loss.png` from `metrics.csv`; returns its path."""
    from PIL import Image, ImageDraw

    rows = read_metrics(run_dir)
    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    half = (SIZE[1] - 3 * MARGIN) // 2
    panels = (
        ("loss", [r[1] for r in rows], MARGIN, (200, 40, 40)),
        ("learning rate", [r[2] for r in rows], 2 * MARGIN + half, (40, 80, 200)),
    )
    steps = [r[0] for r in rows]
    for title, values, top, color in panels:
        box = (MARGIN, top, SIZE[0] - MARGIN, top + half)
        draw.rectangle(box, outline="black")
        if not values:
            continue
        lo, hi = min(values), max(values)
        draw.text((MARGIN, top - 15), f"{title}  (min {lo:.4g}, max {hi:.4g})", fill="black")
        s0, s1 = min(steps), max(steps)
        span_s, span_v = max(s1 - s0, 1), (hi - lo) or 1.0
        points = [
            (
                box[0] + (s - s0) / span_s * (box[2] - box[0]),
                box[3] - (v - lo) / span_v * (box[3] - box[1]),
            )
            for s, v in zip(steps, values, strict=True)
        ]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        else:
            draw.ellipse([points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2])
        draw.text((box[0], box[3] + 3), f"step {s0}", fill="black")
        draw.text((box[2] - 60, box[3] + 3), f"step {s1}", fill="black")
    path = run_dir / PLOT
    tmp = path.with_name(f".{path.stem}.tmp.{os.getpid()}.png")
    image.save(tmp)
    os.replace(tmp, path)
    return path
