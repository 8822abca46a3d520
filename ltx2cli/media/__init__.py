"""Video, audio and image reading and writing (PyAV, Pillow) and metadata sidecars.

Tensors cross this API in two layouts (see `frames.py`): model frames, float `[F, 3, H, W]`
in [-1, 1], and pixel frames, uint8 `[F, H, W, 3]`. Audio is float `[channels, samples]`.
Every missing, empty or undecodable input raises `MediaError` naming the path.
"""

from ltx2cli.media.audio import Audio, read_audio
from ltx2cli.media.frames import resize_and_center_crop, to_model, to_pixels
from ltx2cli.media.image import (
    DEFAULT_IMAGE_CRF,
    crf_round_trip,
    load_image,
    prepare_conditioning_image,
)
from ltx2cli.media.sidecar import read_sidecar, sidecar_path, write_sidecar
from ltx2cli.media.video import Video, VideoInfo, probe_video, read_video, write_video

__all__ = [
    "DEFAULT_IMAGE_CRF",
    "Audio",
    "Video",
    "VideoInfo",
    "crf_round_trip",
    "load_image",
    "prepare_conditioning_image",
    "probe_video",
    "read_audio",
    "read_sidecar",
    "read_video",
    "resize_and_center_crop",
    "sidecar_path",
    "to_model",
    "to_pixels",
    "write_sidecar",
    "write_video",
]
