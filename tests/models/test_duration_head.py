"""The LTX-2.5 duration head: manifest keys, forward formula, and seconds → 8k+1 frames."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from ltx2cli.errors import UsageError
from ltx2cli.models.duration_head import (
    DurationHead,
    DurationHeadConfig,
    build_duration_head,
    frames_for_duration,
    predict_num_frames,
)

MANIFEST = Path(__file__).resolve().parents[1] / "data" / "manifests" / "ltx-2.5-duration-head.json"


def test_meta_module_matches_manifest() -> None:
    data = json.loads(MANIFEST.read_text())
    component = data["components"]["duration_head"]
    expected = {k.removeprefix(component["prefix"]): v for k, v in component["keys"].items()}
    with torch.device("meta"):
        head = build_duration_head(data["config"])
    actual = {k: list(t.shape) for k, t in head.state_dict().items()}
    assert actual == expected
    assert sum(t.numel() for t in head.state_dict().values()) == component["num_params"]


def test_forward_is_exp_of_the_pooled_mlp() -> None:
    cfg = DurationHeadConfig(
        video_dim=12, audio_dim=8, pooler_hidden_dim=16, num_pooler_heads=4, mlp_hidden=10
    )
    head = DurationHead(cfg).eval()
    head.init_weights(torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    video, audio = torch.randn(2, 5, 12, generator=g), torch.randn(2, 3, 8, generator=g)

    sd = head.state_dict()
    tokens = torch.cat(
        [
            video @ sd["video_input_proj.weight"].T
            + sd["video_input_proj.bias"]
            + sd["video_modality_emb"],
            audio @ sd["audio_input_proj.weight"].T
            + sd["audio_input_proj.bias"]
            + sd["audio_modality_emb"],
        ],
        dim=1,
    )
    wq, wk, wv = sd["attention_pooler.cross_attn.in_proj_weight"].chunk(3)
    bq, bk, bv = sd["attention_pooler.cross_attn.in_proj_bias"].chunk(3)
    query = sd["attention_pooler.query_tokens"].expand(2, -1, -1)
    split = lambda x: x.reshape(2, -1, 4, 4).transpose(1, 2)  # noqa: E731
    q, k, v = split(query @ wq.T + bq), split(tokens @ wk.T + bk), split(tokens @ wv.T + bv)
    attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4), dim=-1) @ v
    pooled = attn.transpose(1, 2).reshape(2, 16)
    pooled = (
        pooled @ sd["attention_pooler.cross_attn.out_proj.weight"].T
        + sd["attention_pooler.cross_attn.out_proj.bias"]
    )
    hidden = F.gelu(pooled @ sd["mlp_hidden.weight"].T + sd["mlp_hidden.bias"], approximate="tanh")
    expected = torch.exp(hidden @ sd["mlp_out.weight"].T + sd["mlp_out.bias"]).squeeze(-1)

    with torch.no_grad():
        torch.testing.assert_close(head(video, audio), expected, rtol=1e-5, atol=1e-6)
        only_audio = head(audio_tokens=audio)
    assert only_audio.shape == (2,)
    assert not torch.allclose(only_audio, expected)
    with pytest.raises(ValueError, match="tokens"):
        head()


@pytest.mark.parametrize(
    ("seconds", "fps", "expected"),
    [
        (5.0, 24.0, 113),  # 120 frames → snapped down to 8·14+1
        (5.05, 24.0, 121),  # round(121.2) = 121 is already 8k+1
        (0.2, 24.0, 25),  # clamped to 1 s = 24 frames, snapped down to 17 < 24, so up to 25
        (60.0, 24.0, 473),  # clamped to 480 frames, snapped down
        (3.0, 25.0, 73),  # 75 → 73
    ],
)
def test_frames_snap_to_8k_plus_1_within_range(seconds, fps, expected) -> None:
    frames = frames_for_duration(seconds, fps)
    assert frames == expected
    assert (frames - 1) % 8 == 0


def test_snapping_up_is_capped_at_the_maximum() -> None:
    # Range [20, 22] frames: 21 → 17 < 20, next 8k+1 = 25 exceeds the maximum 22.
    assert frames_for_duration(0.875, 24.0, min_seconds=20 / 24, max_seconds=22 / 24) == 22


def test_a_prediction_outside_the_range_is_logged(caplog) -> None:
    with caplog.at_level("WARNING"):
        frames_for_duration(1.5, 24.0, 1.0, 2.0)
    assert caplog.text == ""
    with caplog.at_level("WARNING"):
        frames_for_duration(100.0, 24.0, 1.0, 2.0)
    assert "outside" in caplog.text


def test_predicted_frames_come_from_one_prompts_seconds() -> None:
    cfg = DurationHeadConfig(video_dim=12, audio_dim=8, pooler_hidden_dim=16, mlp_hidden=10)
    head = DurationHead(cfg).eval()
    head.init_weights(torch.Generator().manual_seed(0))
    with torch.no_grad():
        head.mlp_out.weight.zero_()
        head.mlp_out.bias.fill_(math.log(5.0))  # exp → exactly 5 s whatever the prompt
    audio = torch.randn(1, 4, 8)
    assert predict_num_frames(head, 24.0, audio_encoding=audio) == 113
    with pytest.raises(UsageError, match="one prompt"):
        predict_num_frames(head, 24.0, audio_encoding=audio.expand(2, -1, -1))


@pytest.mark.parametrize(("fps", "lo", "hi"), [(0.0, 1.0, 2.0), (24.0, 3.0, 2.0), (24.0, 0.0, 2.0)])
def test_bad_ranges_are_usage_errors(fps, lo, hi) -> None:
    with pytest.raises(UsageError):
        frames_for_duration(1.0, fps, lo, hi)
