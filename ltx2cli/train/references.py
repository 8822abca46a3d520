"""IC-LoRA control videos made in `ltx2 preprocess --make-references canny|depth`.

For every clip (or image) without a reference of its own, a control video is written to
`OUT/references/<clip's path>.mp4` (`.png` for images) at the clip's size and fps, then encoded
into `reference_latents/` like any given reference.

- `canny`: edges as ltx-trainer's `compute_reference.py` makes them with OpenCV's
  `Canny(gray, 100, 200)`, written here with torch ops: BT.601 luma on the 0–255 scale, 3×3
  Sobel gradients (replicated border), L1 magnitude |gx| + |gy|, non-maximum suppression along
  the gradient direction quantised to 0°, 45°, 90°, 135° (OpenCV's tan 22.5° / tan 67.5°
  rule), then hysteresis: pixels above HIGH are edges, pixels above LOW are edges when
  8-connected to an edge. White edges on black, in all three channels.
- `depth`: any depth-estimation model folder of transformers (`AutoModelForDepthEstimation`
  with its image processor, e.g. Depth Anything or DPT) given with `--reference-model`; its
  prediction is resized to the frame (bicubic) and scaled to 0–255 with the clip's own minimum
  and maximum, so brightness means the same across the clip's frames.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from ltx2cli.errors import Ltx2Error, UsageError

log = logging.getLogger(__name__)

REFERENCES = "references"
KINDS = ("canny", "depth")
CANNY_LOW, CANNY_HIGH = 100.0, 200.0  # the reference's thresholds (OpenCV Canny)
DEPTH_BATCH = 8
_TAN_22_5 = math.tan(math.radians(22.5))
_TAN_67_5 = math.tan(math.radians(67.5))


def canny(gray: Any, low: float = CANNY_LOW, high: float = CANNY_HIGH) -> Any:
    """Edges of luma frames `[N, H, W]` (0–255 float) → bool `[N, H, W]`."""
    import torch
    import torch.nn.functional as F

    x = F.pad(gray.float().unsqueeze(1), (1, 1, 1, 1), mode="replicate")
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    gx = F.conv2d(x, sobel.view(1, 1, 3, 3))[:, 0]
    gy = F.conv2d(x, sobel.t().contiguous().view(1, 1, 3, 3))[:, 0]
    mag = gx.abs() + gy.abs()

    def shifted(dy: int, dx: int) -> torch.Tensor:
        """mag at (y + dy, x + dx), zero outside the frame."""
        padded = F.pad(mag, (1, 1, 1, 1))
        h, w = mag.shape[-2:]
        return padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    ax, ay = gx.abs(), gy.abs()
    horizontal = ay <= ax * _TAN_22_5  # gradient along x: compare left and right
    vertical = ay >= ax * _TAN_67_5
    same_sign = (gx * gy) > 0
    # One neighbour strictly smaller, the other not larger: a plateau keeps one pixel.
    keep = torch.where(
        horizontal,
        (mag > shifted(0, -1)) & (mag >= shifted(0, 1)),
        torch.where(
            vertical,
            (mag > shifted(-1, 0)) & (mag >= shifted(1, 0)),
            torch.where(
                same_sign,
                (mag > shifted(-1, -1)) & (mag >= shifted(1, 1)),
                (mag > shifted(-1, 1)) & (mag >= shifted(1, -1)),
            ),
        ),
    )
    candidate = keep & (mag > low)
    edges = candidate & (mag > high)
    while True:  # grow the strong edges into 8-connected candidates until nothing changes
        grown = F.max_pool2d(edges.float().unsqueeze(1), 3, stride=1, padding=1)[:, 0] > 0
        grown &= candidate
        if torch.equal(grown, edges):
            return edges
        edges = grown


def luma(frames: Any) -> Any:
    """uint8 `[N, H, W, 3]` → BT.601 luma `[N, H, W]` on the 0–255 scale (OpenCV's weights)."""
    x = frames.float()
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


class DepthModel:
    """A transformers depth-estimation model folder, on `device`."""

    def __init__(self, folder: Path, device: str) -> None:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            self.model = AutoModelForDepthEstimation.from_pretrained(folder).to(device).eval()
            self.processor = AutoImageProcessor.from_pretrained(folder)
        except (ValueError, OSError, KeyError) as exc:
            raise UsageError(
                f"--reference-model {folder}: not a depth-estimation model ({exc})".split("\n")[0],
                "pass a depth-estimation model folder (Depth Anything, DPT, ...)",
            ) from None
        self.device = device

    def __call__(self, frames: Any) -> Any:
        """uint8 `[N, H, W, 3]` → depth maps uint8 `[N, H, W, 3]` scaled over the clip."""
        import torch
        import torch.nn.functional as F

        maps = []
        with torch.inference_mode():
            for start in range(0, frames.shape[0], DEPTH_BATCH):
                chunk = [f.numpy() for f in frames[start : start + DEPTH_BATCH]]
                inputs = self.processor(images=chunk, return_tensors="pt").to(self.device)
                depth = self.model(**inputs).predicted_depth.float()  # (n, h, w)
                maps.append(
                    F.interpolate(
                        depth.unsqueeze(1), size=frames.shape[1:3], mode="bicubic",
                        align_corners=False,
                    )[:, 0].cpu()
                )  # fmt: skip
        depth = torch.cat(maps)
        low, high = depth.min(), depth.max()
        scaled = (depth - low) / (high - low) if high > low else torch.zeros_like(depth)
        gray = (scaled * 255).round().clamp(0, 255).to(torch.uint8)
        return gray.unsqueeze(-1).expand(*gray.shape, 3).contiguous()


def control_frames(frames: Any, kind: str, depth: DepthModel | None) -> Any:
    """uint8 `[N, H, W, 3]` frames → the control frames of `kind`, uint8 `[N, H, W, 3]`."""
    import torch

    if kind == "canny":
        edges = canny(luma(frames)).to(torch.uint8) * 255
        return edges.unsqueeze(-1).expand(*edges.shape, 3).contiguous()
    assert depth is not None
    return depth(frames)


def check_options(kind: str, model: Path | None) -> None:
    """One-line errors for `--make-references` / `--reference-model`, before anything loads."""
    if model is not None and kind != "depth":
        raise UsageError(
            "--reference-model is used by --make-references depth only",
            "add --make-references depth, or drop --reference-model",
        )
    if kind not in KINDS:
        raise UsageError(
            f"--make-references {kind!r} is not one of {', '.join(KINDS)}",
            "use canny (built in) or depth with --reference-model DIR",
        )
    if kind == "depth" and model is None:
        raise UsageError(
            "--make-references depth needs --reference-model DIR",
            "pass a local depth-estimation model folder (Depth Anything, DPT, ...)",
        )
    if model is not None and not (model / "config.json").is_file():
        raise UsageError(
            f"--reference-model {model} is not a transformers model folder",
            "pass a local folder with config.json (e.g. a Depth Anything or DPT model)",
        )


def make_references(items: list, out: Path, kind: str, model: Path | None, device: str,
                    summary, image_suffixes: tuple[str, ...]) -> None:  # fmt: skip
    """Give every item with a video and no reference a generated one (see the docstring)."""
    from PIL import Image

    from ltx2cli.media import load_image, probe_video, read_video, to_pixels, write_video

    check_options(kind, model)
    depth = None
    for item in items:
        if item.video is None or item.reference is not None:
            continue
        image = item.video.suffix.lower() in image_suffixes
        target = out / REFERENCES / item.rel.with_suffix(".png" if image else ".mp4")
        if not target.is_file():
            try:
                if image:
                    frames = load_image(item.video).unsqueeze(0)
                else:
                    frames = to_pixels(read_video(item.video).frames)
            except Ltx2Error as exc:
                summary.skip(item.video, exc.message)
                continue
            if kind == "depth" and depth is None:
                depth = DepthModel(model, device)
            control = control_frames(frames, kind, depth)
            target.parent.mkdir(parents=True, exist_ok=True)
            if image:
                tmp = target.with_name(f".{target.name}.tmp.png")
                Image.fromarray(control[0].numpy()).save(tmp)
                tmp.replace(target)
            else:
                write_video(target, control, probe_video(item.video).fps)
            log.info("reference %s", target)
        item.reference = target
