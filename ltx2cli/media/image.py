"""Images for conditioning: load, H.264 CRF round trip, resize-and-crop, scale to [-1, 1].

The round trip encodes the picture as a one-frame H.264 (libx264, yuv420p, preset veryfast)
video at the given CRF and decodes it back, so a still image carries the same compression
artefacts as the video frames the model was trained on. CRF 0 skips it. As in the reference
pipeline it runs on the loaded image before resizing, and an odd height or width is first
cropped to even (the last row or column is dropped; yuv420p needs even sides), so the result
may be one pixel smaller. Unlike the reference, EXIF orientation is
applied and every mode (grayscale, palette, RGBA) is converted to RGB, so phone photos come in
upright and grayscale images work.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

import torch

from ltx2cli.errors import MediaError, UsageError
from ltx2cli.media._files import check_input
from ltx2cli.media.frames import resize_and_center_crop, to_model, to_pixels

if TYPE_CHECKING:
    import numpy as np

#: The reference's default CRF for image conditioning.
DEFAULT_IMAGE_CRF = 33


def load_image(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read an image file as uint8 RGB `[H, W, 3]`, EXIF orientation applied."""
    import numpy as np
    from PIL import Image, ImageOps

    p = check_input(path)
    try:
        with Image.open(p) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
            rgb = upright.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        hint = "pass a PNG, JPEG or WebP file"
        raise MediaError(f"{p}: cannot be read as an image ({exc})", hint) from exc
    return torch.from_numpy(np.asarray(rgb).copy())


def crf_round_trip(frame: torch.Tensor, crf: int = DEFAULT_IMAGE_CRF) -> torch.Tensor:
    """Encode one frame with libx264 at `crf` and decode it back; CRF 0 returns `frame` as is.

    Takes float `[3, H, W]` in [-1, 1] or uint8 `[H, W, 3]` and returns the same layout and
    dtype, cropped to even sides first: a 91x131 frame comes back 90x130 (the reference's
    behaviour; the resize that follows covers the target from the cropped picture).
    """
    if not 0 <= crf <= 51:
        raise UsageError(f"CRF {crf} is out of range", "H.264 CRF goes from 0 (skip) to 51")
    if frame.ndim != 3:
        raise UsageError(f"frame has shape {tuple(frame.shape)}", "pass a single frame")
    if crf == 0:
        return frame
    pixels = to_pixels(frame)
    decoded = torch.from_numpy(_h264_round_trip(pixels.numpy(), crf))
    if frame.dtype == torch.uint8:
        return decoded
    return to_model(decoded).to(device=frame.device, dtype=frame.dtype)


def _h264_round_trip(rgb: np.ndarray, crf: int) -> np.ndarray:
    import av
    import numpy as np

    height, width = rgb.shape[:2]
    even = np.ascontiguousarray(rgb[: height // 2 * 2, : width // 2 * 2])
    if even.size == 0:
        raise MediaError(
            f"a {width}x{height} image is too small for the H.264 round trip",
            "use an image of at least 2x2 pixels, or CRF 0 to skip the round trip",
        )
    try:
        return _encode_decode(even, crf)
    except av.error.FFmpegError as exc:
        raise MediaError(f"H.264 round trip of a {width}x{height} frame failed ({exc})") from exc


def _encode_decode(rgb: np.ndarray, crf: int) -> np.ndarray:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream(
            "libx264", rate=1, options={"crf": str(crf), "preset": "veryfast"}
        )
        stream.height, stream.width = rgb.shape[:2]
        stream.pix_fmt = "yuv420p"
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer, "r") as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def prepare_conditioning_image(
    path: str | os.PathLike[str],
    height: int,
    width: int,
    *,
    crf: int = DEFAULT_IMAGE_CRF,
    antialias: bool = False,
) -> torch.Tensor:
    """Load `path` and return the conditioning frame `[3, height, width]` float32 in [-1, 1].

    Steps: load (RGB, upright) -> CRF round trip at the image's own size -> scale to cover
    height x width and crop the centre -> x / 127.5 - 1.
    """
    pixels = crf_round_trip(load_image(path), crf)
    return resize_and_center_crop(to_model(pixels), height, width, antialias=antialias)
