"""Conditioning images: loading, the H.264 CRF round trip, resize-and-crop geometry."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from ltx2cli.errors import UsageError
from ltx2cli.media import (
    DEFAULT_IMAGE_CRF,
    crf_round_trip,
    load_image,
    prepare_conditioning_image,
    to_model,
    to_pixels,
)

#: EXIF orientation 6: the stored picture must be turned 90 degrees clockwise for display.
EXIF_ORIENTATION, ROTATE_CW = 0x0112, 6
#: PSNR (dB, peak 255) a smooth textured picture keeps after the round trip at the default CRF.
MIN_PSNR_DB = 30.0


def textured(height: int = 64, width: int = 96) -> np.ndarray:
    """Gradients plus a sine texture: compressible, but with detail the codec must approximate."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 128 + 90 * np.sin(x / 5.0) * np.cos(y / 7.0)
    g = 255 * x / width
    b = 255 * y / height
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).round().astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_load_applies_exif_orientation(tmp_path: Path):
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:4, :4] = (255, 0, 0)  # red marker at the stored top-left
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = ROTATE_CW
    path = tmp_path / "phone.png"
    image.save(path, exif=exif)

    pixels = load_image(path)
    assert pixels.shape == (40, 20, 3)  # upright: portrait
    assert pixels.dtype == torch.uint8
    assert pixels[:4, -4:].float().mean(dim=(0, 1)).tolist() == [255.0, 0.0, 0.0]  # top-right


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "RGB"])
def test_load_converts_every_mode_to_rgb(tmp_path: Path, mode: str):
    source = textured()
    stored = Image.fromarray(source).convert(mode)  # RGBA gets an opaque alpha channel
    path = tmp_path / f"{mode}.png"
    stored.save(path)
    pixels = load_image(path)
    assert pixels.shape == source.shape and pixels.dtype == torch.uint8
    if mode in ("RGB", "RGBA"):
        expected = source
    elif mode == "L":
        expected = np.repeat(np.asarray(stored)[..., None], 3, axis=-1)  # gray in every channel
    else:  # palette: each index stands for its palette entry
        palette = np.asarray(stored.getpalette(), dtype=np.uint8).reshape(-1, 3)
        expected = palette[np.asarray(stored)]
    np.testing.assert_array_equal(pixels.numpy(), expected)


@pytest.mark.parametrize("as_model", [True, False])
def test_crf_zero_is_identity(as_model: bool):
    pixels = torch.from_numpy(textured())
    frame = to_model(pixels) if as_model else pixels
    assert torch.equal(crf_round_trip(frame, 0), frame)


@pytest.mark.parametrize("size", [(64, 96), (33, 47)])
def test_crf_round_trip_changes_texture_but_stays_close(size: tuple[int, int]):
    pixels = textured(*size)
    even = pixels[: size[0] // 2 * 2, : size[1] // 2 * 2]  # odd sides are cropped to even
    out = crf_round_trip(torch.from_numpy(pixels), DEFAULT_IMAGE_CRF)
    assert out.shape == even.shape and out.dtype == torch.uint8
    assert not np.array_equal(out.numpy(), even)
    assert psnr(out.numpy(), even) > MIN_PSNR_DB


def h264_one_frame(rgb: np.ndarray, crf: int) -> np.ndarray:
    """The reference's round trip of an even-sided frame: one rgb24 frame converted to yuv420p,
    encoded by libx264 (crf, preset veryfast, rate 1) into an in-memory mp4, first frame
    decoded back to rgb24."""
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
    with av.open(buffer) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


ODD_SIZE = (91, 131)
EVEN_SIZE = (90, 130)  # the reference drops the last row and column before encoding
# 91x131 covering 64x96: the cropped 90x130 picture scales by max(64/90, 96/130) = 96/130 to
# ceil(90·96/130) = 67 x 96 rows, and the centre crop starts at row (67 − 64)//2 = 1.
COVER_SIZE, TOP = (67, 96), 1


def test_odd_image_is_cropped_to_even_before_the_round_trip(tmp_path: Path):
    pixels = textured(*ODD_SIZE)
    pixels[-1, :] = (255, 0, 0)  # a red last row and column the reference never encodes
    pixels[:, -1] = (255, 0, 0)
    out = crf_round_trip(torch.from_numpy(pixels), DEFAULT_IMAGE_CRF)
    even = np.ascontiguousarray(pixels[: EVEN_SIZE[0], : EVEN_SIZE[1]])
    expected = h264_one_frame(even, DEFAULT_IMAGE_CRF)
    assert out.shape == (*EVEN_SIZE, 3)
    np.testing.assert_array_equal(out.numpy(), expected)

    path = tmp_path / "odd.png"
    Image.fromarray(pixels).save(path)
    frame = prepare_conditioning_image(path, 64, 96)
    decoded = torch.from_numpy(expected).permute(2, 0, 1)[None].float()
    scaled = torch.nn.functional.interpolate(
        decoded, size=COVER_SIZE, mode="bilinear", align_corners=False
    )[0, :, TOP : TOP + 64]
    torch.testing.assert_close(frame, scaled / 127.5 - 1, rtol=0, atol=1e-5)


def test_higher_crf_loses_more():
    pixels = textured()
    errors = [
        psnr(crf_round_trip(torch.from_numpy(pixels), crf).numpy(), pixels) for crf in (10, 33, 51)
    ]
    assert errors[0] > errors[1] > errors[2]


def test_crf_round_trip_keeps_model_layout():
    frame = to_model(torch.from_numpy(textured()))
    out = crf_round_trip(frame, DEFAULT_IMAGE_CRF)
    assert out.shape == frame.shape and out.dtype == frame.dtype
    assert (out - frame).abs().mean() < 0.05  # ~3 levels of 255


def test_crf_out_of_range_is_a_usage_error():
    with pytest.raises(UsageError, match="CRF 52"):
        crf_round_trip(torch.from_numpy(textured()), 52)


# Marker geometry, as in test_media_read_video: 64x128 -> (32, 32) scales by 0.5 to 32x64 (an exact
# 2x bilinear downscale averages aligned 2x2 blocks) and crops left (64 - 32) // 2 = 16.
@pytest.mark.parametrize(
    ("size", "rows", "cols", "want_rows", "want_cols"),
    [
        ((64, 128), (8, 16), (48, 64), (4, 8), (8, 16)),
        ((128, 64), (48, 64), (8, 16), (8, 16), (4, 8)),
        ((32, 32), (0, 8), (24, 32), (0, 8), (24, 32)),  # already the target size: untouched
    ],
)
def test_prepare_geometry_is_exact_without_crf(
    tmp_path: Path, size, rows, cols, want_rows, want_cols
):
    stored = np.zeros((*size, 3), dtype=np.uint8)
    stored[rows[0] : rows[1], cols[0] : cols[1]] = 255
    path = tmp_path / "marker.png"
    Image.fromarray(stored).save(path)

    frame = prepare_conditioning_image(path, 32, 32, crf=0)
    expected = torch.full((3, 32, 32), -1.0)
    expected[:, want_rows[0] : want_rows[1], want_cols[0] : want_cols[1]] = 1.0
    torch.testing.assert_close(frame, expected)


@pytest.mark.parametrize(("height", "width"), [(64, 96), (96, 64), (50, 30)])
def test_prepare_returns_target_shape_in_model_range(tmp_path: Path, height: int, width: int):
    path = tmp_path / "photo.png"
    Image.fromarray(textured(75, 101)).save(path)
    frame = prepare_conditioning_image(path, height, width)
    assert frame.shape == (3, height, width)
    assert frame.dtype == torch.float32
    assert frame.min() >= -1 and frame.max() <= 1


def test_pixel_levels_survive_model_range_exactly():
    levels = torch.arange(256, dtype=torch.uint8).view(16, 16, 1).expand(16, 16, 3)
    model = to_model(levels)
    assert model.shape == (3, 16, 16)
    assert model.min() == -1 and model.max() == 1  # 0 -> -1, 255 -> 1
    assert torch.equal(to_pixels(model), levels)
