"""`ltx2 generate` on tiny checkpoints: the installed command as a subprocess (files read back
with PyAV, replay, Ctrl-C), and every validation error in-process (exit 2, nothing loaded)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ltx2cli.cli import app as app_module
from ltx2cli.models.tiny import tiny_config
from ltx2cli.pipelines.demo import write_demo_files
from ltx2cli.pipelines.ledger import ModelLedger

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130
HEIGHT, WIDTH, FRAMES, FPS = 64, 128, 9, 24.0
AAC_FRAME = 1024  # samples per AAC frame: the encoder pads the end to whole frames
TINY_AUDIO_RATE = tiny_config()["vocoder"]["bwe"]["output_sampling_rate"]
PROMPT = "a red fox runs through the snow"
LTX2 = shutil.which("ltx2") or "ltx2"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_demo_files(tmp_path_factory.mktemp("tiny"), packaged_gemma=False)


def model_flags(tiny, pipeline: str = "one-stage") -> list[str]:
    return [
        "--pipeline", pipeline, "--model", str(tiny.checkpoint),
        "--text-encoder", str(tiny.text_encoder), "--upsampler", str(tiny.upsampler),
        "--distilled-lora", str(tiny.distilled_lora),
        "--height", str(HEIGHT), "--width", str(WIDTH), "--num-frames", str(FRAMES),
        "--frame-rate", str(FPS), "--steps", "2", "--dtype", "float32",
        "--video-stg-blocks", "1", "--audio-stg-blocks", "1",
    ]  # fmt: skip


def ltx2(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([LTX2, *args], capture_output=True, text=True, timeout=timeout)


def frames_of(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def streams_of(path: Path) -> dict:
    """Stream properties and decoded lengths of `path`, read with PyAV."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        info = {"fps": float(video.average_rate), "comment": container.metadata.get("comment")}
        info["audio"] = None
        if container.streams.audio:
            stream = container.streams.audio[0]
            info["audio"] = (stream.codec_context.sample_rate, stream.codec_context.channels)
    info["frames"] = frames_of(path)
    if info["audio"]:
        with av.open(str(path)) as container:
            samples = sum(f.samples for f in container.decode(audio=0))
        info["audio_seconds"] = samples / info["audio"][0]
    return info


@pytest.mark.parametrize("pipeline", ["one-stage", "two-stage", "two-stage-hq", "distilled"])
def test_each_pipeline_writes_the_requested_video_and_audio(pipeline, tiny, tmp_path):
    out = tmp_path / "fox.mp4"
    done = ltx2("generate", PROMPT, *model_flags(tiny, pipeline), "-o", str(out), "--json")

    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)  # one object, nothing else on stdout
    assert record["path"] == str(out) and record["pipeline"] == pipeline
    info = streams_of(out)
    assert info["frames"].shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert info["fps"] == FPS
    assert info["audio"] == (TINY_AUDIO_RATE, 2)
    duration = FRAMES / FPS
    assert duration <= info["audio_seconds"] <= duration + 2 * AAC_FRAME / TINY_AUDIO_RATE
    # The settings travel in the sidecar and in the mp4 itself.
    for meta in (json.loads(out.with_suffix(".json").read_text()), json.loads(info["comment"])):
        assert meta["prompt"] == PROMPT
        assert meta["settings"]["pipeline"] == pipeline
        assert meta["settings"]["num_frames"] == FRAMES
        assert meta["sources"]["num_frames"] == "flag:--num-frames"
        assert len(meta["models"]["checkpoint"]["hash"]) == 12


def test_no_audio_writes_a_video_only_file(tiny, tmp_path):
    out = tmp_path / "silent.mp4"
    done = ltx2("generate", PROMPT, *model_flags(tiny), "--no-audio", "-o", str(out), "-q")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    info = streams_of(out)
    assert info["audio"] is None and info["frames"].shape[0] == FRAMES


def test_from_metadata_replays_from_the_mp4_or_the_sidecar(tiny, tmp_path):
    first = tmp_path / "first.mp4"
    flags = [*model_flags(tiny, "distilled"), "--no-audio", "--seed", "3"]
    assert ltx2("generate", PROMPT, *flags, "-o", str(first)).returncode == 0
    from_mp4, from_json = tmp_path / "again.mp4", tmp_path / "again-json.mp4"
    for source, target in ((first, from_mp4), (first.with_suffix(".json"), from_json)):
        done = ltx2("generate", "--from-metadata", str(source), "-o", str(target))
        assert done.returncode == 0, done.stderr
    reference = frames_of(first)
    assert np.array_equal(frames_of(from_mp4), reference)
    assert np.array_equal(frames_of(from_json), reference)
    # A flag still wins over the replayed value.
    other = tmp_path / "other-seed.mp4"
    assert (
        ltx2("generate", "--from-metadata", str(first), "--seed", "4", "-o", str(other)).returncode
        == 0
    )
    assert not np.array_equal(frames_of(other), reference)
    assert json.loads(other.with_suffix(".json").read_text())["seed"] == 4


def test_ctrl_c_mid_denoise_exits_130_and_leaves_no_file(tiny, tmp_path):
    out = tmp_path / "interrupted.mp4"
    flags = [*model_flags(tiny), "--steps", "400", "--no-audio"]
    proc = subprocess.Popen(
        [LTX2, "generate", PROMPT, *flags, "-o", str(out)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in proc.stderr:  # stage lines arrive as they happen (stderr is line-buffered)
        seen.append(line)
        if "loaded transformer" in line:
            break
    time.sleep(1.0)  # well inside the 400 steps
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, "".join(seen) + rest
    assert "interrupted" in rest
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_demo_model_runs_end_to_end_and_says_it_is_noise(tmp_path, demo_home):
    out = tmp_path / "demo.mp4"
    done = ltx2("generate", PROMPT, "--model", "demo", "-o", str(out), "--json", timeout=1200)
    assert done.returncode == 0, done.stderr
    assert "noise" in json.loads(done.stdout)["note"]
    assert "noise" in done.stderr
    info = streams_of(out)
    assert (
        info["frames"].shape[0]
        == json.loads(out.with_suffix(".json").read_text())["settings"]["num_frames"]
    )
    assert (demo_home / "demo" / "ltx2-demo.safetensors").is_file()  # written on first use


# -- validation: every bad input is one line, exit 2, before any weights load -----------------


def write_picture(path: Path) -> Path:
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(path)
    return path


def write_foreign_lora(path: Path) -> Path:
    """A LoRA on the 19B caption projection, a module LTX-2.3 does not have."""
    pair = {
        "diffusion_model.caption_projection.linear_1.lora_A.weight": torch.zeros(2, 32),
        "diffusion_model.caption_projection.linear_1.lora_B.weight": torch.zeros(32, 2),
    }
    save_file(pair, str(path))
    return path


def bad_inputs(tiny, tmp: Path) -> dict[str, tuple[list[str], str]]:
    picture = write_picture(tmp / "pic.png")
    text = tmp / "notes.txt"
    text.write_text("not a picture")
    existing = tmp / "taken.mp4"
    existing.write_bytes(b"x")
    a_file = tmp / "plain.txt"
    a_file.write_text("x")
    foreign = write_foreign_lora(tmp / "19b.safetensors")
    return {
        "frames": (["--num-frames", "10"], "num_frames: 10 is not 8k+1"),
        "size": (["--pipeline", "two-stage", "--height", "96"], "multiple of 64"),
        "duration": (["--num-frames", "489", "--frame-rate", "24"], "beyond the model's 20 s"),
        "fps": (["--frame-rate", "0"], "frame_rate: 0.0 must be greater than 0"),
        "steps": (["--steps", "0"], "steps: 0 must be at least 1"),
        "rescale": (["--video-rescale-scale", "2"], "outside 0..1"),
        "cfg": (["--audio-cfg-scale", "-1"], "audio_cfg_scale: -1.0 must be at least 0"),
        "strength": (["--image", f"{picture}@0:1.5"], "strength 1.5"),
        "frame index": (["--image", f"{picture}@9"], "outside the clip's 9 frames"),
        "missing image": (["--image", str(tmp / "nope.png")], "no such file"),
        "not an image": (["--image", str(text)], "not an image"),
        "missing lora": (["--lora", str(tmp / "nope.safetensors")], "no such file"),
        "not a lora": (["--lora", str(tiny.upsampler)], "is not a LoRA file"),
        "other generation": (["--lora", str(foreign)], "does not fit this LTX-2.3"),
        "not ltx": (["--model", str(tiny.upsampler)], "not an LTX-2 checkpoint"),
        "missing folder": (["-o", str(tmp / "no" / "x.mp4")], "does not exist"),
        "folder is a file": (["-o", str(a_file / "x.mp4")], "does not exist"),
        "exists": (["-o", str(existing)], "already exists"),
        "stg block": (["--video-stg-blocks", "5"], "outside the model's 2 blocks"),
    }  # fmt: skip


CASES = [
    "frames", "size", "duration", "fps", "steps", "rescale", "cfg", "strength", "frame index",
    "missing image", "not an image", "missing lora", "not a lora", "other generation", "not ltx",
    "missing folder", "folder is a file", "exists", "stg block",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_2_before_any_weight_loads(
    case, tiny, tmp_path, capsys, monkeypatch
):
    def no_loading(*_args, **_kwargs):
        raise AssertionError("weights loaded before validation finished")

    monkeypatch.setattr(ModelLedger, "_build", no_loading)
    args, message = bad_inputs(tiny, tmp_path)[case]
    out = ["-o", str(tmp_path / "out.mp4")] if "-o" not in args else []
    with pytest.raises(SystemExit) as info:
        app_module.main(["generate", PROMPT, *model_flags(tiny), *out, *args])
    err = capsys.readouterr().err
    assert info.value.code == EXIT_USAGE, err
    first, *rest = err.splitlines()
    assert first.startswith("Error: ") and message in first
    assert all(line.startswith("Hint: ") for line in rest)


# -- dry run, memory check ------------------------------------------------------------------

STEPS = 2  # model_flags' --steps
STAGE_2_STEPS = 3  # the distilled refinement
# Expected transformer calls per diffusion stage, from pipelines.md: a guided Euler step runs
# cond + uncond + STG + isolation (4 passes; HQ turns STG off: 3) and res_2s evaluates twice
# per step plus once at the end; stage 2 and the distilled model run one pass per step.
EXPECTED_CALLS = {
    "one-stage": [STEPS * 4],
    "two-stage": [STEPS * 4, STAGE_2_STEPS],
    "two-stage-hq": [(2 * STEPS + 1) * 3, 2 * STAGE_2_STEPS + 1],
    "distilled": [8, STAGE_2_STEPS],
}


def run_in_process(capsys, args: list[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        app_module.main(args)
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


@pytest.mark.parametrize("pipeline", list(EXPECTED_CALLS))
def test_dry_run_prints_the_plan_and_loads_nothing(pipeline, tiny, tmp_path, capsys, monkeypatch):
    from safetensors import safe_open

    def no_loading(*_args, **_kwargs):
        raise AssertionError("a dry run loaded weights")

    monkeypatch.setattr(ModelLedger, "_build", no_loading)
    target = tmp_path / "never.mp4"
    flags = [*model_flags(tiny, pipeline), "-o", str(target), "--dry-run", "--json"]
    code, stdout, _ = run_in_process(capsys, ["generate", PROMPT, *flags])

    assert code == 0
    plan = json.loads(stdout)
    assert not target.exists()
    assert [s["transformer_calls"] for s in plan["stages"] if s["transformer_calls"]] == (
        EXPECTED_CALLS[pipeline]
    )
    assert plan["files"]["checkpoint"]["bytes"] == tiny.checkpoint.stat().st_size
    assert plan["compat"] == "current"
    # At float32 the transformer blocks alone take 4 bytes per element on the device.
    with safe_open(str(tiny.checkpoint), "pt") as f:
        names = f.keys()
        blocks = sum(
            int(np.prod(f.get_slice(k).get_shape()))
            for k in names
            if k.startswith("model.diffusion_model.transformer_blocks.")
        )
    assert plan["peak_device_bytes"] >= 4 * blocks
    assert plan["peak_host_bytes"] > 0


def test_a_run_that_does_not_fit_stops_before_loading(tiny, tmp_path, capsys, monkeypatch):
    def no_loading(*_args, **_kwargs):
        raise AssertionError("weights loaded although the run cannot fit")

    monkeypatch.setattr(ModelLedger, "_build", no_loading)
    monkeypatch.setattr("ltx2cli.pipelines.plan.available_memory", lambda device: 2**20)
    flags = [*model_flags(tiny), "-o", str(tmp_path / "big.mp4")]
    code, _, err = run_in_process(capsys, ["generate", PROMPT, *flags])
    assert code == EXIT_USAGE
    assert "needs about" in err and "1 MiB is free" in err
    assert "--height" in err  # on the CPU no offload mode helps: it names a smaller size


# -- batches ----------------------------------------------------------------------------------


def batch_flags(tiny) -> list[str]:
    return [*model_flags(tiny), "--no-audio", "--steps", "1", "--json", "-q"]


def write_items(path: Path) -> Path:
    path.write_text(
        "- a cat sleeps\n"
        "- prompt: a dog runs\n"
        "  seed: 4\n"
        "  num-frames: 17\n"
        "- prompt: a broken item\n"
        "  num_frames: 10\n"
    )
    return path


def test_batch_continues_past_a_bad_item_and_exits_1(tiny, tmp_path):
    items = write_items(tmp_path / "items.yaml")
    template = str(tmp_path / "out" / "{index:03d}-{slug}.mp4")
    done = ltx2("generate", "--prompts-file", str(items), *batch_flags(tiny), "-o", template)

    assert done.returncode == 1
    *records, summary = [json.loads(line) for line in done.stdout.splitlines()]
    first, second = (
        tmp_path / "out" / "001-a-cat-sleeps.mp4",
        tmp_path / "out" / "002-a-dog-runs.mp4",
    )
    assert [r["path"] for r in records] == [str(first), str(second)]
    assert frames_of(first).shape[0] == FRAMES
    assert frames_of(second).shape[0] == 17  # the item's own option wins
    assert json.loads(second.with_suffix(".json").read_text())["seed"] == 4
    assert summary["summary"]["done"] == 2
    assert [f["index"] for f in summary["summary"]["failed"]] == [3]
    assert "item 3" in done.stderr and "num_frames: 10" in done.stderr

    again = ltx2(
        "generate", "--prompts-file", str(items), *batch_flags(tiny), "-o", template,
        "--skip-existing",
    )  # fmt: skip
    summary = json.loads(again.stdout.splitlines()[-1])["summary"]
    assert (summary["done"], summary["skipped"]) == (0, 2)


def test_batch_under_accelerate_splits_items_across_two_cpu_processes(tiny, tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text("\n".join(json.dumps({"prompt": f"item {i}", "seed": i}) for i in range(3)))
    template = str(tmp_path / "out" / "{index}.mp4")
    accelerate = shutil.which("accelerate") or "accelerate"
    done = subprocess.run(
        [
            accelerate, "launch", "--multi_gpu", "--num_processes", "2", "-m", "ltx2cli",
            "generate", "--prompts-file", str(items), *batch_flags(tiny), "-o", template,
        ],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    *records, summary = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["index"] for r in records] == [1, 2, 3]  # gathered and printed once, in order
    assert {r["process"] for r in records} == {0, 1}
    assert summary["summary"]["done"] == 3
    assert all(Path(r["path"]).is_file() for r in records)


def test_enhance_prompt_prints_the_rewritten_prompt_and_records_it(tiny, tmp_path):
    out = tmp_path / "enhanced.mp4"
    flags = [*model_flags(tiny, "distilled"), "--no-audio", "--enhance-prompt"]
    done = ltx2("generate", PROMPT, *flags, "-o", str(out))
    assert done.returncode == 0, done.stderr
    sidecar = json.loads(out.with_suffix(".json").read_text())
    enhanced = sidecar["enhanced_prompt"]
    assert sidecar["prompt"] == PROMPT and enhanced and enhanced != PROMPT
    assert f"enhanced prompt: {enhanced.splitlines()[0]}" in done.stderr
