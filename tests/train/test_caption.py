"""`ltx2 caption` with a tiny random Qwen2.5-VL: sampling, formats, resume, preprocess reads it."""

from __future__ import annotations

import json
import shutil

import pytest
from train_helpers import CLIP_FPS, CLIP_FRAMES, run_ltx2, run_preprocess, write_tiny_qwen_vl

from ltx2cli.train.caption import frame_indices, write_captions
from ltx2cli.train.preprocess import read_captions_file


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    return write_tiny_qwen_vl(tmp_path_factory.mktemp("qwen") / "tiny-qwen2.5-vl")


def test_frames_are_sampled_evenly_at_the_requested_rate():
    # 17 frames at 8 fps sampled at 2 fps: every 4th frame.
    assert frame_indices(CLIP_FRAMES, CLIP_FPS, 2.0, 16) == [0, 4, 8, 12, 16]
    # A cap keeps the first and last and spreads the rest.
    assert frame_indices(CLIP_FRAMES, CLIP_FPS, 2.0, 3) == [0, 8, 16]
    # Asking for more than the source rate gives every frame once.
    assert frame_indices(5, 8.0, 30.0, 16) == [0, 1, 2, 3, 4]


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_caption_writes_resumes_and_feeds_preprocess(tmp_path, clips, qwen, tiny_model):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("clip0.mp4", "clip1.mp4", "broken.mp4"):  # no caption sidecars here
        shutil.copy(clips / name, folder / name)
    output = folder / "captions.jsonl"
    args = [
        "--json",
        "caption",
        str(folder),
        "-o",
        str(output),
        "-m",
        str(qwen),
        "--max-new-tokens",
        "6",
        "--fps",
        "4",
    ]
    result = run_ltx2(*args)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["captions"] == 2
    assert [s["input"].endswith("broken.mp4") for s in report["skipped"]] == [True]
    rows = _rows(output)
    assert [r["media_path"] for r in rows] == ["clip0.mp4", "clip1.mp4"]
    assert all(isinstance(r["caption"], str) and r["caption"].strip() for r in rows)

    # Resumable: an existing caption is kept, a missing one is added.
    output.write_text(json.dumps({"caption": "kept by hand", "media_path": "clip0.mp4"}) + "\n")
    assert run_ltx2(*args).returncode == 0
    rows = {r["media_path"]: r["caption"] for r in _rows(output)}
    assert rows["clip0.mp4"] == "kept by hand" and rows["clip1.mp4"].strip()
    assert run_ltx2(*args, "--overwrite").returncode == 0
    assert {r["media_path"]: r["caption"] for r in _rows(output)}["clip0.mp4"] != "kept by hand"

    # preprocess takes the captions file for a folder without sidecars.
    out = tmp_path / "ds"
    result = run_preprocess(folder, out, tiny_model, "--captions", str(output))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "conditions").iterdir()) == ["clip0.pt", "clip1.pt"]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".txt"])
def test_every_output_format_reads_back_in_preprocess(tmp_path, suffix):
    captions = {"a.mp4": "first, with a comma", "sub/b.mp4": 'second "quoted"'}
    path = tmp_path / f"captions{suffix}"
    write_captions(path, captions)
    read = read_captions_file(path)
    assert {k: read[k] for k in captions} == captions


def test_unsupported_model_family_is_a_one_line_error(tmp_path, clips, tiny_model):
    result = run_ltx2(
        "caption",
        str(clips / "clip0.mp4"),
        "-o",
        str(tmp_path / "c.jsonl"),
        "-m",
        str(tiny_model[1]),
    )
    assert result.returncode == 1
    assert "holds a 'gemma3' model" in result.stderr and "Traceback" not in result.stderr
