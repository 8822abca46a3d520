"""The LTX-2.5 Gemma 4 text-encoder file: loading, tokenisation, hidden states, pairing check."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ltx2cli.errors import CheckpointError
from ltx2cli.models.gemma4 import (
    LTX25_GEMMA_VERSION,
    check_text_encoder_pairing,
    gemma_config_of,
    load_gemma4_text_encoder,
    projection_sizes,
    write_tiny_gemma4_text_encoder,
)

PROMPT = "a red fox runs in the snow"


@pytest.fixture(scope="module")
def te_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("te") / "gemma4-tiny.safetensors"
    return write_tiny_gemma4_text_encoder(path, video_dim=16, audio_dim=8, seed=1)


def test_file_layout_matches_the_release(te_file) -> None:
    with safe_open(te_file, "pt") as f:
        keys = set(f.keys())
        metadata = f.metadata()
    assert "model.layers.0.post_feedforward_layernorm.weight" in keys
    assert "model.embed_tokens.weight" in keys and "model.norm.weight" in keys
    assert {
        "text_embedding_projection.video_aggregate_embed.weight",
        "text_embedding_projection.audio_aggregate_embed.bias",
        "tokenizer_json",
        "hf_asset__tokenizer_config.json",
    } <= keys
    config = json.loads(metadata["gemma_config"])
    assert config["model_type"] == "gemma4_unified"
    assert config["gemma_version"] == LTX25_GEMMA_VERSION
    assert projection_sizes(config) == (32, 3)


def test_tokens_get_one_bos_and_left_padding(te_file) -> None:
    encoder = load_gemma4_text_encoder(te_file, dtype=torch.float32, max_length=16)
    tok = encoder.tokenizer
    assert tok(PROMPT)["input_ids"][0] != tok.bos_token_id  # Gemma 4 adds none itself
    ids, mask = encoder.tokenize([f"  {PROMPT} "])
    words = tok(PROMPT)["input_ids"]
    n = len(words) + 1
    assert ids.shape == (1, 16)
    assert ids[0, -n:].tolist() == [tok.bos_token_id, *words]
    assert ids[0, :-n].eq(tok.pad_token_id).all()
    assert mask[0].tolist() == [0] * (16 - n) + [1] * n


def test_hidden_states_are_every_layer_of_the_flat_weights(te_file) -> None:
    from transformers import AutoConfig, Gemma4UnifiedForConditionalGeneration

    encoder = load_gemma4_text_encoder(te_file, dtype=torch.float32, max_length=24)
    encoding = encoder.encode([PROMPT])
    assert encoding.hidden_states.shape == (1, 24, 32, 3)

    # Independently: the file's flat keys renamed by hand into a model built from its config.
    config = gemma_config_of(te_file)
    hf = AutoConfig.for_model(**config)
    model = Gemma4UnifiedForConditionalGeneration(hf).eval()
    with safe_open(te_file, "pt") as f:
        state = {
            "model.language_model." + k.removeprefix("model."): f.get_tensor(k).float()
            for k in f.keys()  # noqa: SIM118 (safe_open is not a Mapping)
            if k.startswith("model.")
        }
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert unexpected == [] and set(missing) <= {"lm_head.weight"}
    ids, mask = encoder.tokenize([PROMPT])
    with torch.no_grad():
        out = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    expected = torch.stack(out.hidden_states, dim=-1)
    torch.testing.assert_close(encoding.hidden_states, expected)
    torch.testing.assert_close(encoding.hidden_states[..., -1], out.last_hidden_state)


def test_a_file_without_gemma_config_is_refused(tmp_path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="gemma_config"):
        load_gemma4_text_encoder(path)


def test_missing_weights_are_listed(te_file, tmp_path) -> None:
    with safe_open(te_file, "pt") as f:
        names = [k for k in f.keys() if k != "model.norm.weight"]  # noqa: SIM118
        tensors = {k: f.get_tensor(k) for k in names}
        metadata = f.metadata()
    broken = tmp_path / "broken.safetensors"
    save_file(tensors, broken, metadata=metadata)
    with pytest.raises(CheckpointError, match=r"norm\.weight"):
        load_gemma4_text_encoder(broken, dtype=torch.float32)


SOURCE = {
    "gemma_source_checkpoint": {"gemma_version": LTX25_GEMMA_VERSION},
    "model_version": "2.5.0",
}
GEMMA4 = {"model_type": "gemma4_unified", "gemma_version": LTX25_GEMMA_VERSION}


def test_pairing_accepts_the_matching_version() -> None:
    check_text_encoder_pairing(SOURCE, GEMMA4)
    as_string = SOURCE | {
        "gemma_source_checkpoint": json.dumps({"gemma_version": LTX25_GEMMA_VERSION})
    }
    check_text_encoder_pairing(as_string, GEMMA4)
    check_text_encoder_pairing({"model_version": "2.3.0"}, None)  # LTX-2.3 with Gemma 3


@pytest.mark.parametrize(
    ("transformer", "gemma"),
    [
        (SOURCE, {"model_type": "gemma4_unified", "gemma_version": "gemma4-12b"}),  # stock Gemma 4
        (SOURCE, None),  # a Gemma 3 directory
        ({"model_version": "2.5.0"}, GEMMA4),  # 2.5 without the declaration
        ({"model_version": "2.3.0"}, GEMMA4),  # 2.3 needs Gemma 3
    ],
)
def test_pairing_mismatches_are_one_line_errors(transformer, gemma) -> None:
    with pytest.raises(CheckpointError) as info:
        check_text_encoder_pairing(transformer, gemma)
    assert "\n" not in str(info.value)


def test_undeclared_on_both_sides_is_a_warning(caplog) -> None:
    with caplog.at_level("WARNING"):
        check_text_encoder_pairing({"model_version": "2.5.0"}, {"model_type": "gemma4_unified"})
    assert "cannot be checked" in caplog.text


@pytest.fixture(scope="module")
def enhancer_dir(tmp_path_factory):
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig

    from ltx2cli.models.tiny_gemma import build_tiny_tokenizer

    folder = tmp_path_factory.mktemp("gemma4-enhancer")
    tokenizer = build_tiny_tokenizer()
    config = Gemma4TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        layer_types=["sliding_attention", "full_attention"],
        sliding_window=64,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    Gemma4ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_gemma4_enhancement_decodes_greedily_with_our_system_prompt(
    enhancer_dir, monkeypatch
) -> None:
    from transformers import AutoTokenizer, Gemma4ForCausalLM

    from ltx2cli.models import gemma4
    from ltx2cli.models.gemma4 import enhance_with_gemma4, load_gemma4_enhancer
    from ltx2cli.models.text_encoder import clean_enhanced_prompt, system_prompt

    # The reference's Gemma 4 settings; the test decodes fewer tokens to stay quick.
    assert gemma4.GEMMA4_ENHANCE_SETTINGS == {
        "do_sample": False,
        "no_repeat_ngram_size": 5,
        "max_new_tokens": 600,
    }
    monkeypatch.setitem(gemma4.GEMMA4_ENHANCE_SETTINGS, "max_new_tokens", 40)

    enhancer = load_gemma4_enhancer(enhancer_dir, dtype=torch.float32)
    text = enhance_with_gemma4(enhancer, f" {PROMPT} ")
    assert text == enhance_with_gemma4(enhancer, PROMPT)  # greedy: no randomness
    assert text == enhance_with_gemma4(enhancer, PROMPT, static_cache=True)

    tokenizer = AutoTokenizer.from_pretrained(enhancer_dir)
    model = Gemma4ForCausalLM.from_pretrained(enhancer_dir, dtype=torch.float32).eval()
    chat = tokenizer.apply_chat_template(
        [
            {"role": "system", "content": system_prompt("t2v")},
            {"role": "user", "content": f"user prompt: {PROMPT}"},
        ],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = torch.tensor([tokenizer(chat, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            no_repeat_ngram_size=5,
            max_new_tokens=40,
            pad_token_id=tokenizer.pad_token_id,
        )
    expected = clean_enhanced_prompt(
        tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    )
    assert text == expected


def test_a_gemma3_directory_is_not_a_gemma4_enhancer(tmp_path) -> None:
    from ltx2cli.errors import UsageError
    from ltx2cli.models.gemma4 import load_gemma4_enhancer
    from ltx2cli.models.tiny_gemma import TinyGemmaConfig, write_tiny_gemma

    folder = write_tiny_gemma(tmp_path / "g3", config=TinyGemmaConfig(vision=False))
    with pytest.raises(UsageError, match="not a generative Gemma 4"):
        load_gemma4_enhancer(folder)


def test_vision_and_audio_embedders_load_from_their_flat_names(tmp_path) -> None:
    path = write_tiny_gemma4_text_encoder(
        tmp_path / "te.safetensors", video_dim=16, audio_dim=8, multimodal=True
    )
    with safe_open(path, "pt") as f:
        keys = set(f.keys())
        projection = f.get_tensor("multi_modal_projector.embedding_projection.weight")
        audio = f.get_tensor("audio_projector.embedding_projection.weight")
    assert "vision_model.patch_dense.weight" in keys
    encoder = load_gemma4_text_encoder(path, dtype=torch.float32, max_length=8)
    inner = encoder.model.model
    torch.testing.assert_close(
        inner.embed_vision.multimodal_embedder.embedding_projection.weight, projection.float()
    )
    torch.testing.assert_close(inner.embed_audio.embedding_projection.weight, audio.float())
    assert encoder.encode([PROMPT]).hidden_states.shape == (1, 8, 32, 3)
