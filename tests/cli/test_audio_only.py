"""`ltx2 generate --audio-only` on the demo model's files through the installed command: a wav
(16-bit PCM) or m4a (AAC) at the vocoder's rate, stereo, lasting --duration, with a sidecar;
and every bad request as one line, exit 2, before any weights load."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import av
import pytest
from safetensors import safe_open

from ltx2cli.pipelines.demo import write_demo_files

LTX2 = shutil.which("ltx2") or "ltx2"
EXIT_USAGE = 2
PROMPT = "rain on a tin roof"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_demo_files(tmp_path_factory.mktemp("tiny"), packaged_gemma=False)


def vocoder_rate(checkpoint: Path) -> int:
    """The output rate the checkpoint's own config states (the BWE stage's when it has one)."""
    with safe_open(str(checkpoint), "pt") as f:
        vocoder = json.loads(f.metadata()["config"])["vocoder"]
    return int(vocoder.get("bwe", vocoder)["output_sampling_rate"])


def ltx2(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LTX2, *args], capture_output=True, text=True, timeout=900, cwd=cwd, check=False
    )


def model_flags(tiny) -> list[str]:
    return [
        "--model", str(tiny.checkpoint), "--text-encoder", str(tiny.text_encoder),
        "--steps", "2", "--dtype", "float32", "--video-stg-blocks", "1", "--audio-stg-blocks", "1",
        "--seed", "3",
    ]  # fmt: skip


def read_back(path: Path) -> tuple[str, int, int, float]:
    """Codec, rate, channels and duration from the decoded samples."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        codec, rate, channels = stream.codec_context.name, stream.sample_rate, stream.channels
        samples = sum(frame.samples for frame in container.decode(stream))
    return codec, rate, channels, samples / rate


def test_audio_only_writes_a_pcm_wav_of_the_duration_and_a_m4a(tiny, tmp_path):
    rate = vocoder_rate(tiny.checkpoint)
    wav = tmp_path / "rain.wav"
    done = ltx2("generate", PROMPT, "--audio-only", "--duration", "2.375", "-o", str(wav),
                *model_flags(tiny))  # fmt: skip
    assert done.returncode == 0, done.stderr
    codec, got_rate, channels, seconds = read_back(wav)
    assert (codec, got_rate, channels) == ("pcm_s16le", rate, 2)
    assert seconds == pytest.approx(
        2.375, abs=1 / rate
    )  # a duration whose latent count rounds down
    sidecar = json.loads(wav.with_suffix(".json").read_text())
    assert sidecar["prompt"] == PROMPT and sidecar["duration"] == 2.375
    assert sidecar["settings"]["pipeline"] == "t2a"
    assert not list(tmp_path.glob(".*part*"))  # the atomic write left no temporary file

    m4a = tmp_path / "rain.m4a"
    done = ltx2("generate", PROMPT, "--audio-only", "--duration", "0.8", "-o", str(m4a),
                *model_flags(tiny))  # fmt: skip
    assert done.returncode == 0, done.stderr
    codec, got_rate, channels, seconds = read_back(m4a)
    assert (codec, got_rate, channels) == ("aac", rate, 2)
    assert seconds == pytest.approx(0.8, abs=2048 / rate)  # AAC pads to whole 1024-sample frames


def test_audio_only_default_output_is_a_wav_named_after_the_prompt(tiny, tmp_path):
    done = ltx2("generate", PROMPT, "--audio-only", "--duration", "0.5", *model_flags(tiny),
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.glob("*.wav")] == ["rain-on-a-tin-roof.wav"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--duration", "0"], "--duration 0 is not a positive number of seconds"),
        (["--duration", "-2"], "--duration -2 is not a positive number of seconds"),
        ([], "--audio-only needs --duration SECONDS"),
        (["--duration", "40"], "--duration 40 s is beyond the model's 20 s"),
        (["--duration", "2", "-o", "x.mp4"], "the output must be a .wav or .m4a file"),
        (["--duration", "2", "--no-audio"], "leave nothing to generate"),
        (["--duration", "2", "--dry-run"], "--dry-run plans text/image-to-video runs only"),
    ],
)
def test_audio_only_bad_requests_are_one_line_errors(tiny, tmp_path, extra, message):
    done = ltx2("generate", PROMPT, "--audio-only", *extra, *model_flags(tiny), cwd=tmp_path)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())


def test_duration_without_audio_only_is_an_error(tiny, tmp_path):
    done = ltx2("generate", PROMPT, "--duration", "2", *model_flags(tiny), cwd=tmp_path)
    assert done.returncode == EXIT_USAGE
    assert "--duration sets the length of --audio-only output" in done.stderr


def test_audio_only_batch_writes_one_wav_per_prompt(tiny, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("rain on a roof\nwind in pines\n")
    done = ltx2("generate", "--prompts-file", str(prompts), "--audio-only", "--duration", "0.4",
                *model_flags(tiny), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    wavs = sorted(tmp_path.glob("*.wav"))
    assert [p.name for p in wavs] == ["001-rain-on-a-roof.wav", "002-wind-in-pines.wav"]
    assert all(read_back(p)[3] == pytest.approx(0.4, abs=1e-3) for p in wavs)
