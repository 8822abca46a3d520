"""Gemma 3 text encoder: official directory layout, hidden states, padding, enhancement."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors import safe_open

from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.models.noise import make_generator
from ltx2cli.models.text_encoder import (
    GEMMA_MAX_LENGTH,
    GemmaTextEncoder,
    clean_enhanced_prompt,
    find_gemma_dir,
    system_prompt,
)
from ltx2cli.models.tiny_gemma import TinyGemmaConfig, write_tiny_gemma

TINY = TinyGemmaConfig()
OFFICIAL_ROOTS = ("language_model.model.", "vision_tower.vision_model.", "multi_modal_projector.")


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory):
    return write_tiny_gemma(tmp_path_factory.mktemp("gemma") / "gemma-3-tiny", seed=0)


@pytest.fixture(scope="module")
def encoder(gemma_dir):
    return GemmaTextEncoder.from_pretrained(gemma_dir, dtype=torch.float32)


def test_tiny_gemma_uses_the_official_key_layout(gemma_dir):
    with safe_open(gemma_dir / "model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert keys
    assert all(k.startswith(OFFICIAL_ROOTS) for k in keys), keys[:5]
    assert {root for root in OFFICIAL_ROOTS if any(k.startswith(root) for k in keys)} == set(
        OFFICIAL_ROOTS
    )
    assert json.loads((gemma_dir / "config.json").read_text())["model_type"] == "gemma3"


def test_encode_returns_every_hidden_state_left_padded(encoder):
    encoding = encoder.encode(["a red fox runs in the snow"])
    layers = TINY.num_hidden_layers + 1
    assert encoding.hidden_states.shape == (1, GEMMA_MAX_LENGTH, TINY.hidden_size, layers)
    real = 1 + 7  # <bos> + seven words
    assert encoding.mask.sum().item() == real
    assert encoding.mask[0, :-real].eq(0).all() and encoding.mask[0, -real:].eq(1).all()
    ids, _ = encoder.tokenize(["a red fox runs in the snow"])
    assert ids[0, -real].item() == encoder.tokenizer.bos_token_id
    assert ids[0, :-real].eq(encoder.tokenizer.pad_token_id).all()


def test_first_hidden_state_is_the_scaled_token_embedding(encoder):
    ids, mask = encoder.tokenize(["white bird flies"])
    encoding = encoder.encode(["white bird flies"])
    embed = encoder.model.model.language_model.embed_tokens
    # Gemma scales its embeddings by sqrt(hidden); state 0 is that, before any layer.
    expected = embed.weight[ids[0]] * math.sqrt(TINY.hidden_size)
    valid = mask[0].bool()
    torch.testing.assert_close(encoding.hidden_states[0, valid, :, 0], expected[valid])


def test_prompts_are_stripped_and_batching_is_a_plain_stack(encoder):
    alone = encoder.encode(["sky"]).hidden_states
    padded = encoder.encode(["   sky \n"]).hidden_states
    torch.testing.assert_close(alone, padded)
    batch = encoder.encode(["sky", "a dog walks in the rain"]).hidden_states
    torch.testing.assert_close(batch[0], alone[0], atol=1e-5, rtol=1e-5)


def test_long_prompts_are_truncated_to_max_length_keeping_bos(gemma_dir):
    short = GemmaTextEncoder.from_pretrained(gemma_dir, dtype=torch.float32, max_length=16)
    ids, mask = short.tokenize(["snow " * 40])
    assert ids.shape == (1, 16)
    assert mask.all()
    assert ids[0, 0].item() == short.tokenizer.bos_token_id


def test_enhance_is_seeded_and_leaves_global_rng_alone(encoder):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    seeded = make_generator(7)
    first = encoder.enhance("a fox in the snow", generator=seeded, max_new_tokens=10)
    after = torch.rand(3)
    second = encoder.enhance("a fox in the snow", generator=make_generator(7), max_new_tokens=10)
    other = encoder.enhance("a fox in the snow", generator=make_generator(8), max_new_tokens=10)
    assert first == second
    assert first != other
    assert torch.equal(after, expected_next)
    # The pipeline's generator advanced by the draws: continuing it gives another sample.
    assert not torch.equal(seeded.get_state(), make_generator(7).get_state())


def test_enhance_with_image_uses_the_vision_tower(encoder):
    image = torch.linspace(-1, 1, 3 * 20 * 30).reshape(3, 20, 30)
    text_only = encoder.enhance("a fox", generator=make_generator(1), max_new_tokens=10)
    with_image = encoder.enhance(
        "a fox", image=image, generator=make_generator(1), max_new_tokens=10
    )
    assert isinstance(with_image, str) and with_image
    assert with_image != text_only


def test_enhance_with_image_needs_a_vision_model(tmp_path):
    text_only = write_tiny_gemma(tmp_path / "g", config=TinyGemmaConfig(vision=False))
    encoder = GemmaTextEncoder.from_pretrained(text_only, dtype=torch.float32)
    assert encoder.processor is None
    with pytest.raises(UsageError, match="vision tower"):
        encoder.enhance("a fox", image=torch.zeros(3, 8, 8), max_new_tokens=2)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("A “quiet” fox’s run — slowly", 'A "quiet" fox\'s run - slowly'),
        ("  1. **A fox runs", "A fox runs"),
        ("A\u00a0fox", "A fox"),
    ],
)
def test_clean_enhanced_prompt(raw, clean):
    assert clean_enhanced_prompt(raw) == clean


def test_system_prompts_ship_with_the_package():
    t2v, i2v = system_prompt("t2v"), system_prompt("i2v")
    assert "soundscape" in t2v and "first frame" in i2v
    assert t2v != i2v


def test_find_gemma_dir_descends_into_a_snapshot_layout(gemma_dir, tmp_path):
    nested = tmp_path / "snapshots" / "abc123"
    nested.mkdir(parents=True)
    for item in gemma_dir.iterdir():
        (nested / item.name).symlink_to(item)
    assert find_gemma_dir(tmp_path) == nested


def test_missing_or_wrong_text_encoder_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        find_gemma_dir(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no Gemma 3 model"):
        find_gemma_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not Gemma 3"):
        GemmaTextEncoder.from_pretrained(tmp_path)


GEMMA_270M_HIDDEN = 640
GEMMA_270M_LAYERS = 18


@pytest.mark.slow
def test_packaged_gemma_270m_converts_once_and_encodes_real_text(packaged_gemma):
    from ltx2cli.models.gemma_gguf import convert_gguf_gemma

    target = packaged_gemma  # converted by the session fixture, with this same function
    assert not target.with_name(target.name + ".partial").exists()
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    assert convert_gguf_gemma(target) == target  # a second call reuses the directory
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp

    encoder = GemmaTextEncoder.from_pretrained(target, dtype=torch.float32)
    encoding = encoder.encode(["a red fox runs through the snow"])
    assert encoding.hidden_states.shape == (
        1,
        GEMMA_MAX_LENGTH,
        GEMMA_270M_HIDDEN,
        GEMMA_270M_LAYERS + 1,
    )
    assert torch.isfinite(encoding.hidden_states).all()
    enhanced = encoder.enhance(
        "a red fox in the snow", generator=make_generator(42), max_new_tokens=24
    )
    assert "fox" in enhanced.lower()
