"""IC-LoRA references made by `ltx2 preprocess --make-references`: Canny edges and depth maps."""

from __future__ import annotations

import torch
from train_helpers import CLIP_FPS, CLIP_FRAMES, CLIP_SIZE, moving_square, run_preprocess

from ltx2cli.train.references import canny

H, W, STEP_COL = 24, 32, 16


def _step(left_right: list[tuple[float, float]]) -> torch.Tensor:
    """One frame: rows split into bands, each band `a` left of STEP_COL and `b` right of it."""
    frame = torch.zeros(H, W)
    rows = H // len(left_right)
    for i, (a, b) in enumerate(left_right):
        frame[i * rows : (i + 1) * rows, :STEP_COL] = a
        frame[i * rows : (i + 1) * rows, STEP_COL:] = b
    return frame[None]


def test_canny_marks_a_strong_step_with_a_one_pixel_line():
    # Sobel of a step of 255 is 4·255 = 1020 > 200 on the two columns beside the step.
    edges = canny(_step([(0.0, 255.0)]))[0]
    columns = edges.any(dim=0).nonzero().flatten().tolist()
    assert len(columns) == 1 and columns[0] in (STEP_COL - 1, STEP_COL)
    assert edges[:, columns[0]].all()
    assert not canny(torch.full((1, H, W), 128.0)).any()


def test_canny_hysteresis_keeps_weak_edges_only_when_connected():
    # A step of 30 gives 120 (between 100 and 200): weak; a step of 60 gives 240: strong.
    assert not canny(_step([(0.0, 30.0)])).any()
    strong = canny(_step([(0.0, 60.0)]))[0]
    (column,) = strong.any(dim=0).nonzero().flatten().tolist()
    joined = canny(_step([(0.0, 30.0), (0.0, 60.0)]))[0]
    # The weak half is kept through the strong half (rows beside the band corner aside).
    assert joined[: H // 2 - 2, column].all()
    # Too weak to pass even the low threshold: a step of 20 gives 80.
    assert not canny(_step([(0.0, 20.0), (0.0, 60.0)]))[0, : H // 2 - 2, column].any()


def _one_clip(folder):
    from ltx2cli.media import write_video

    folder.mkdir()
    # The green square: its luma step over the grey (~74) makes strong Canny edges.
    write_video(folder / "clip.mp4", moving_square(1), CLIP_FPS)
    (folder / "clip.txt").write_text("a red fox runs in the snow")


def _check_reference(out):
    from ltx2cli.media import probe_video

    info = probe_video(out / "references" / "clip.mp4")
    assert (info.height, info.width) == CLIP_SIZE and info.num_frames == CLIP_FRAMES
    target = torch.load(out / "latents" / "clip.pt", weights_only=True)
    reference = torch.load(out / "reference_latents" / "clip.pt", weights_only=True)
    assert reference["latents"].shape == target["latents"].shape


def test_canny_references_are_written_and_encoded(tmp_path, tiny_model):
    from ltx2cli.media import read_video, to_pixels

    _one_clip(tmp_path / "data")
    out = tmp_path / "out"
    result = run_preprocess(tmp_path / "data", out, tiny_model, "--make-references", "canny")
    assert result.returncode == 0, result.stderr
    _check_reference(out)
    pixels = to_pixels(read_video(out / "references" / "clip.mp4").frames).float()
    # Edges only: mostly black, with bright lines around the square.
    assert (pixels < 40).float().mean() > 0.8 and pixels.max() > 200


def _tiny_depth_model(path):
    from transformers import DPTConfig, DPTForDepthEstimation
    from transformers.models.dpt import DPTImageProcessorPil

    config = DPTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        image_size=32, patch_size=8, backbone_out_indices=[0, 1], neck_hidden_sizes=[16, 32],
        fusion_hidden_size=16, reassemble_factors=[4, 2], is_hybrid=False, head_in_index=-1,
    )  # fmt: skip
    torch.manual_seed(0)
    DPTForDepthEstimation(config).save_pretrained(path)
    DPTImageProcessorPil(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(
        path
    )
    return path


def test_depth_references_from_a_local_transformers_model(tmp_path, tiny_model):
    from ltx2cli.media import read_video, to_pixels

    model = _tiny_depth_model(tmp_path / "dpt")
    _one_clip(tmp_path / "data")
    out = tmp_path / "out"
    result = run_preprocess(
        tmp_path / "data", out, tiny_model, "--make-references", "depth",
        "--reference-model", str(model),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    _check_reference(out)
    pixels = to_pixels(read_video(out / "references" / "clip.mp4").frames).float()
    # Gray maps scaled over the clip: they span (close to) the full range.
    assert pixels.min() < 20 and pixels.max() > 235
    assert torch.allclose(pixels[..., 0], pixels[..., 2], atol=12)


def test_depth_needs_a_model_folder(tmp_path, tiny_model):
    _one_clip(tmp_path / "data")
    data, out = tmp_path / "data", tmp_path / "out"
    result = run_preprocess(data, out, tiny_model, "--make-references", "depth")
    assert result.returncode == 2
    assert "--reference-model" in result.stderr
    args = ("--make-references", "depth", "--reference-model", str(tmp_path))
    result = run_preprocess(data, out, tiny_model, *args)
    assert result.returncode == 2
    assert "not a transformers model folder" in result.stderr
