"""`ltx2 preprocess`: buckets, the `.precomputed/` layout and formats, resume, broken inputs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from train_helpers import CLIP_FPS, TONES_HZ, run_ltx2, run_preprocess

from ltx2cli.errors import UsageError
from ltx2cli.train.preprocess import (
    Bucket,
    choose_bucket,
    clean_caption,
    latent_mask,
    parse_buckets,
)

BUCKET_FRAMES, BUCKET_H, BUCKET_W = 9, 64, 96
MEL_RATE, MEL_HOP = 16000, 160
GEMMA_MAX_LENGTH = 1024


def test_bucket_choice_follows_aspect_then_frames_then_area():
    buckets = parse_buckets("768x512x49,512x512x121;512x768x49,1024x1024x121")
    assert buckets[0] == Bucket(49, 512, 768)
    # Landscape 3:2 clip with 200 frames: the 768x512 bucket (exact aspect).
    assert choose_bucket(1920, 1280, 200, buckets) == Bucket(49, 512, 768)
    # Square clip: both square buckets tie on aspect and frames; the larger area wins.
    assert choose_bucket(1000, 1000, 200, buckets) == Bucket(121, 1024, 1024)
    # Square but only 60 frames: the 121-frame buckets do not fit; closest aspect of the rest.
    assert choose_bucket(1000, 1000, 60, buckets).frames == 49
    assert choose_bucket(1000, 1000, 10, buckets) is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("768x500x49", "multiples of 32"), ("768x512x48", r"8k\+1"), ("768-512-49", "WIDTHxHEIGHT")],
)
def test_bad_buckets_are_one_line_errors(text, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_buckets(text)


def test_caption_cleaning_and_trigger():
    assert clean_caption("The video shows a cat.", "MYCAT", True) == "MYCAT a cat."
    assert clean_caption("In this video, a dog runs.", None, True) == "a dog runs."
    assert clean_caption("The video shows a cat.", None, False) == "The video shows a cat."


def test_latent_mask_pools_space_and_takes_the_max_over_time():
    frames, height, width = 2, 2, 3  # latent grid → 9 frames of 64x96 pixels
    pixels = torch.zeros(9, 64, 96)
    pixels[3:5, :, :48] = 1.0  # left half, only in pixel frames 3-4 (latent frame 0)
    mask = latent_mask(pixels, frames, height, width, (8, 32, 32))
    expected = torch.zeros(frames, height, width)
    expected[0, :, 0] = 1.0  # column 1 is half covered: mean 0.5 is not > 0.5
    assert torch.equal(mask, expected)
    # An image mask holds for every frame.
    image = torch.zeros(1, 64, 96)
    image[:, 32:] = 1.0
    assert torch.equal(
        latent_mask(image, frames, height, width, (8, 32, 32))[:, 1], torch.ones(2, 3)
    )


def _load(path):
    return torch.load(path, weights_only=True)


def test_layout_formats_and_summary(dataset, clips, tiny_model):
    clip_names = [f"clip{i}" for i in range(len(TONES_HZ))]
    latents = sorted(p.stem for p in (dataset / "latents").glob("*.pt"))
    assert latents == sorted([*clip_names, "silent"])
    # Only clips with a soundtrack get audio latents; the broken file gets nothing encoded.
    assert sorted(p.stem for p in (dataset / "audio_latents").glob("*.pt")) == clip_names
    assert not (dataset / "latents" / "broken.pt").exists()

    video = _load(dataset / "latents" / "clip0.pt")
    f, h, w = (BUCKET_FRAMES - 1) // 8 + 1, BUCKET_H // 32, BUCKET_W // 32
    assert video["latents"].shape[1:] == (f, h, w)
    assert video["latents"].dtype == torch.bfloat16
    assert (video["num_frames"], video["height"], video["width"]) == (f, h, w)
    assert video["fps"] == CLIP_FPS

    audio = _load(dataset / "audio_latents" / "clip0.pt")
    seconds = BUCKET_FRAMES / CLIP_FPS
    mel_frames = 1 + round(seconds * MEL_RATE) // MEL_HOP
    steps = ((mel_frames - 1) // 2) // 2 + 1  # two causal stride-2 downsamplings
    assert audio["latents"].shape == (8, steps, 16)
    assert audio["latents"].dtype == torch.float32
    assert audio["num_time_steps"] == steps and audio["frequency_bins"] == 16
    assert math.isclose(audio["duration"], seconds)

    # clip0_mask.png (left half) on clip0's latent grid; no mask for the other clips.
    mask = _load(dataset / "video_masks" / "clip0.pt")["mask"]
    assert mask.shape == (f, h, w) and torch.equal(mask[:, :, 0], torch.ones(f, h))
    assert mask[:, :, 1:].sum() == 0  # the middle column is only half covered
    assert sorted(p.stem for p in (dataset / "video_masks").glob("*.pt")) == ["clip0"]

    cond = _load(dataset / "conditions" / "clip0.pt")
    assert cond["video_prompt_embeds"].shape[0] == GEMMA_MAX_LENGTH
    assert cond["audio_prompt_embeds"].shape[0] == GEMMA_MAX_LENGTH
    mask = cond["prompt_attention_mask"]
    assert mask.shape == (GEMMA_MAX_LENGTH,)
    assert mask[-1] and not mask[0]  # left padding: real tokens last
    # Different captions give different embeddings.
    other = _load(dataset / "conditions" / "clip1.pt")["video_prompt_embeds"]
    assert not torch.equal(cond["video_prompt_embeds"], other)


def test_video_latents_are_the_vae_encoding_of_the_first_frames(dataset, clips, tiny_model):
    from ltx2cli.media import read_video
    from ltx2cli.models.loading import load_component

    # The clip already has the bucket's size, so no resize happens: the stored latent must be
    # the encoder's output for the first 9 decoded frames.
    frames = read_video(clips / "clip1.mp4", max_frames=BUCKET_FRAMES).frames
    encoder = load_component(tiny_model[0], "video_encoder", dtype=torch.float32)
    with torch.inference_mode():
        expected = encoder(frames.permute(1, 0, 2, 3).unsqueeze(0))[0]
    stored = _load(dataset / "latents" / "clip1.pt")["latents"]
    torch.testing.assert_close(stored.float(), expected.to(torch.bfloat16).float())


def test_audio_latents_resample_the_soundtrack_with_the_windowed_sinc(dataset, clips, tiny_model):
    from ltx2cli.media import read_audio
    from ltx2cli.models.loading import load_component
    from ltx2cli.models.mel import log_mel_spectrogram
    from ltx2cli.models.resample import resample

    # The soundtrack is read at the file's own rate and brought to the audio VAE's rate with
    # the reference's Hann-windowed sinc (FFmpeg's resampler gives other mel values).
    seconds = BUCKET_FRAMES / CLIP_FPS
    audio = read_audio(clips / "clip2.mp4", None, channels=2, max_duration=seconds)
    assert audio.sample_rate != MEL_RATE
    wave = torch.nn.functional.pad(
        audio.waveform, (0, max(0, round(seconds * audio.sample_rate) - audio.waveform.shape[-1]))
    )
    encoder = load_component(tiny_model[0], "audio_encoder", dtype=torch.float32)
    mel = encoder.config.mel
    with torch.inference_mode():
        spec = log_mel_spectrogram(resample(wave.unsqueeze(0), audio.sample_rate, MEL_RATE), mel)
        expected = encoder(spec)[0]
    stored = _load(dataset / "audio_latents" / "clip2.pt")["latents"]
    torch.testing.assert_close(stored, expected)


def test_rerun_resumes_and_reports_broken_input(dataset, clips, tiny_model):
    before = (dataset / "latents" / "clip2.pt").stat().st_mtime_ns
    (dataset / "audio_latents" / "clip1.pt").unlink()
    result = run_preprocess(clips, dataset, tiny_model)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["written"] == {"audio_latents": 1}
    assert (dataset / "audio_latents" / "clip1.pt").is_file()
    assert (dataset / "latents" / "clip2.pt").stat().st_mtime_ns == before
    broken = [s for s in report["skipped"] if s["input"].endswith("broken.mp4")]
    assert broken and "cannot be decoded" in broken[0]["reason"]


def test_table_input_with_out_of_tree_paths(tmp_path, clips, tiny_model):
    table = tmp_path / "data.jsonl"
    rows = [
        {"caption": "first", "media_path": str(clips / "clip0.mp4")},
        {"caption": "second", "video": "missing.mp4"},
    ]
    table.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "out"
    result = run_preprocess(table, out, tiny_model, "--skip-audio")
    assert result.returncode == 0, result.stderr
    mirrored = (clips / "clip0.mp4").relative_to("/").with_suffix(".pt")
    assert (out / "latents" / mirrored).is_file()
    assert (out / "conditions" / mirrored).is_file()
    assert not (out / "audio_latents").exists()
    skipped = json.loads(result.stdout)["skipped"]
    assert any(
        s["input"].endswith("missing.mp4") and "no such file" in s["reason"] for s in skipped
    )


def test_videos_need_buckets(tmp_path, clips, tiny_model):
    result = run_ltx2("preprocess", str(clips), "-o", str(tmp_path), "-m", str(tiny_model[0]))
    assert result.returncode == 2
    assert "--buckets is required" in result.stderr
