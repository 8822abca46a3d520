"""LTX-2.5 transformer deltas (ltx-2.5.md §3.1): bias-free video FFN, keyframe marker embedding."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from test_transformer import SEED, VIDEO_INNER, inputs, tiny_config

from ltx2cli.models.transformer import build_transformer, first_frame_keyframes_mask


def tiny_25(**overrides) -> dict:
    config = tiny_config("2.3")
    config["transformer"] |= {"ff_bias": False, "use_keyframes_abs_pos_embedding": True} | overrides
    return config


def build(config: dict):
    model = build_transformer(config).eval()
    model.init_weights(torch.Generator().manual_seed(SEED))
    return model


def test_video_ffn_has_no_bias_and_audio_ffn_keeps_it() -> None:
    keys = set(build(tiny_25()).state_dict())
    assert "transformer_blocks.0.ff.net.0.proj.weight" in keys
    assert "transformer_blocks.0.ff.net.0.proj.bias" not in keys
    assert "transformer_blocks.0.ff.net.2.bias" not in keys
    assert "transformer_blocks.0.audio_ff.net.0.proj.bias" in keys
    assert "transformer_blocks.0.audio_ff.net.2.bias" in keys


def test_keyframe_embedding_is_one_row_of_the_video_width() -> None:
    model = build(tiny_25())
    assert model.keyframes_abs_pos_embedding.shape == (1, VIDEO_INNER)
    assert not hasattr(build(tiny_config("2.3")), "keyframes_abs_pos_embedding")


def test_marked_tokens_get_the_embedding_right_after_patchify() -> None:
    model = build(tiny_25())
    video, audio = inputs("2.3", batch=2)
    n = video.latent.shape[1]
    mask = first_frame_keyframes_mask(2, n, tokens_per_frame=6)
    mask[1, 7] = 0.5  # any positive value marks a token
    marked = (mask > 0).float().unsqueeze(-1)

    # Expected: the same model without a mask, its patchify output shifted on marked tokens.
    embedding = model.keyframes_abs_pos_embedding.detach().clone()
    hook = model.patchify_proj.register_forward_hook(lambda m, i, out: out + marked * embedding)
    with torch.no_grad():
        expected_v, expected_a = model(video, audio)
    hook.remove()
    with torch.no_grad():
        v, a = model(dataclasses.replace(video, keyframes_mask=mask), audio)
        plain_v, _ = model(video, audio)
    torch.testing.assert_close(v, expected_v, rtol=0, atol=1e-6)
    torch.testing.assert_close(a, expected_a, rtol=0, atol=1e-6)
    assert not torch.allclose(v, plain_v, atol=1e-4)


def test_a_mask_without_the_embedding_changes_nothing() -> None:
    model = build(tiny_config("2.3"))
    video, audio = inputs("2.3")
    mask = first_frame_keyframes_mask(1, video.latent.shape[1], 6)
    with torch.no_grad():
        marked = model(dataclasses.replace(video, keyframes_mask=mask), audio)
        plain = model(video, audio)
    torch.testing.assert_close(marked, plain, rtol=0, atol=0)


def test_first_frame_mask_marks_exactly_the_first_latent_frame() -> None:
    mask = first_frame_keyframes_mask(2, 10, tokens_per_frame=4)
    assert mask.shape == (2, 10)
    assert mask[:, :4].eq(1).all() and mask[:, 4:].eq(0).all()


def test_fp8_cast_covers_the_bias_free_video_ffn() -> None:
    from ltx2cli.models.fp8 import Fp8CastLinear, apply_fp8_cast

    model = build(tiny_25())
    video, audio = inputs("2.3")
    video = dataclasses.replace(video, keyframes_mask=first_frame_keyframes_mask(1, 12, 6))
    # Expected: the same weights rounded through float8 and back, kept in a plain model.
    rounded = build(tiny_25())
    with torch.no_grad():
        for name, module in rounded.named_modules():
            if name.startswith("transformer_blocks.") and name.endswith(
                (".to_q", ".to_k", ".to_v", ".to_out.0", "ff.net.0.proj", "ff.net.2")
            ):
                module.weight.copy_(module.weight.to(torch.float8_e4m3fn).float())
                if module.bias is not None:
                    module.bias.copy_(module.bias.to(torch.float8_e4m3fn).float())
        expected = rounded(video, audio)
    names = apply_fp8_cast(model)
    assert "transformer_blocks.0.ff.net.2" in names
    ff = model.get_submodule("transformer_blocks.0.ff.net.2")
    assert isinstance(ff, Fp8CastLinear) and ff.bias is None
    with torch.no_grad():
        v, a = model(video, audio)
    torch.testing.assert_close(v, expected[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a, expected[1], rtol=1e-5, atol=1e-5)


AUDIO_KEYS = re.compile(
    r"^(audio_patchify_proj|audio_adaln_single|audio_prompt_adaln_single|audio_scale_shift_table"
    r"|audio_proj_out|transformer_blocks\.\d+\.(audio_attn1|audio_attn2|audio_ff"
    r"|audio_scale_shift_table|audio_prompt_scale_shift_table))"
)


def test_audio_only_build_holds_the_audio_keys_and_computes_video_none() -> None:
    full = build(tiny_25())
    audio_only = build_transformer(tiny_25(), audio_only=True).eval()
    state = full.state_dict()
    audio_state = {k: v for k, v in state.items() if AUDIO_KEYS.match(k)}
    assert set(audio_only.state_dict()) == set(audio_state)
    audio_only.load_state_dict(audio_state, strict=True)
    _, audio = inputs("2.3", batch=2)
    with torch.no_grad():
        v, a = audio_only(None, audio)
        _, expected = full(None, audio)
    assert v is None
    torch.testing.assert_close(a, expected, rtol=0, atol=0)
    video, _ = inputs("2.3")
    with pytest.raises(ValueError, match="audio-only"):
        audio_only(video, audio)
