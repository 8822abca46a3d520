"""Tiny LTX-2.5 files follow the released split layout: the same key names (block indices
aside) as the manifests, the released dtypes and the metadata the reference reads."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest
from safetensors import safe_open

from ltx2cli.models.tiny_ltx25 import FILES, MODEL_VERSION_2_5, write_tiny_ltx25

MANIFESTS = Path(__file__).resolve().parents[1] / "data" / "manifests"
MANIFEST_OF = {
    "transformer": "ltx-2.5-22b-transformer",
    "dev_transformer": "ltx-2.5-22b-transformer",
    "video_vae": "ltx-2.5-video-vae",
    "video_vae_conv": "ltx-2.5-video-vae-conv",
    "audio_vae": "ltx-2.5-audio-vae",
    "spatial_upscaler": "ltx-2.5-spatial-upscaler-x2",
    "temporal_upscaler": "ltx-2.5-temporal-upscaler-x2",
    "duration_head": "ltx-2.5-duration-head",
    "distilled_lora": "ltx-2.5-22b-distilled-lora-450",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_ltx25(tmp_path_factory.mktemp("ltx25"), seed=0)


@cache
def manifest_keys(name: str) -> set[str]:
    data = json.loads((MANIFESTS / f"{name}.json").read_text())
    return {k for part in data["components"].values() for k in part["keys"]}


def pattern(key: str) -> str:
    return re.sub(r"\.\d+(?=\.)", ".N", key)


def header(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    with safe_open(path, "pt") as f:
        dtypes = {k: str(f.get_slice(k).get_dtype()) for k in f.keys()}  # noqa: SIM118
        return dtypes, f.metadata()


def test_every_released_file_is_written_under_its_hub_path(tiny) -> None:
    assert set(tiny) == set(FILES)
    for name, path in tiny.items():
        assert path.as_posix().endswith(FILES[name]) and path.is_file()


@pytest.mark.parametrize("name", sorted(MANIFEST_OF))
def test_key_layout_matches_the_release(tiny, name) -> None:
    dtypes, _ = header(tiny[name])
    assert {pattern(k) for k in dtypes} == {pattern(k) for k in manifest_keys(MANIFEST_OF[name])}


def test_transformer_file_dtypes_and_metadata(tiny) -> None:
    dtypes, metadata = header(tiny["transformer"])
    f32 = {k for k, d in dtypes.items() if d == "F32"}
    assert f32 == {k for k in dtypes if "scale_shift_table" in k}
    assert set(dtypes.values()) == {"BF16", "F32"}
    assert metadata["model_version"] == MODEL_VERSION_2_5
    assert json.loads(metadata["gemma_source_checkpoint"]) == {"gemma_version": "gemma4-12b-ltx-v1"}
    config = json.loads(metadata["config"])["transformer"]
    assert config["ff_bias"] is False and config["use_keyframes_abs_pos_embedding"] is True


def test_vae_and_upsampler_metadata(tiny) -> None:
    _, diffusion = header(tiny["video_vae"])
    assert json.loads(diffusion["config"])["vae"]["_class_name"] == "CausalDiffusionVAE"
    _, conv = header(tiny["video_vae_conv"])
    assert json.loads(conv["config"])["vae"]["_class_name"] == "CausalVideoAutoencoder"
    assert "license" not in header(tiny["temporal_upscaler"])[1]
    assert set(header(tiny["distilled_lora"])[1]) >= {"lora_rank", "lora_alpha", "model_version"}


def test_lora_rank_is_min_of_rank_and_layer_sides(tiny) -> None:
    with safe_open(tiny["distilled_lora"], "pt") as f:
        gate = f.get_slice(
            "diffusion_model.transformer_blocks.0.attn1.to_gate_logits.lora_A.weight"
        )
        assert gate.get_shape() == [2, 32]  # 2 heads: rank min(8, 32, 2)
        q = f.get_slice("diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight")
        assert q.get_shape() == [32, 8]


def test_same_seed_same_tensors(tmp_path) -> None:
    from safetensors.torch import load_file

    first = write_tiny_ltx25(tmp_path / "a", seed=3, files=("duration_head", "video_vae"))
    second = write_tiny_ltx25(tmp_path / "b", seed=3, files=("duration_head", "video_vae"))
    other = write_tiny_ltx25(tmp_path / "c", seed=4, files=("duration_head",))
    for name in first:
        a, b = load_file(first[name]), load_file(second[name])
        assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
        assert header(first[name])[1] == header(second[name])[1]
    a, c = load_file(first["duration_head"]), load_file(other["duration_head"])
    assert not all(a[k].equal(c[k]) for k in a)


def test_tiny_diffusion_vae_file_loads_through_the_key_rules_and_decodes(tiny) -> None:
    import torch
    from safetensors.torch import load_file

    from ltx2cli.models.diffusion_vae import build_diffusion_decoder, decoder_state_from_raw

    _, metadata = header(tiny["video_vae"])
    raw = load_file(tiny["video_vae"])
    decoder_raw = {
        k.removeprefix("decoder."): v for k, v in raw.items() if k.startswith("decoder.")
    }
    state = decoder_state_from_raw(decoder_raw)
    state |= {k: v for k, v in raw.items() if k.startswith("per_channel_statistics.")}
    decoder = build_diffusion_decoder(json.loads(metadata["config"]))
    decoder.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    with torch.no_grad():
        pixels = decoder(torch.randn(1, 16, 2, 1, 1), generator=torch.Generator().manual_seed(0))
    assert pixels.shape == (1, 3, 9, 32, 32)
    assert torch.isfinite(pixels).all()


def test_distilled_lora_fuses_into_every_linear_at_its_own_rank(tiny) -> None:
    import torch
    from safetensors.torch import load_file

    from ltx2cli.models.lora import fuse_loras
    from ltx2cli.models.tiny_ltx25 import tiny_ltx25_config
    from ltx2cli.models.transformer import build_transformer

    model = build_transformer(tiny_ltx25_config()).to(torch.bfloat16)
    model.init_weights(torch.Generator().manual_seed(0))
    linears = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    gate = "transformer_blocks.1.audio_attn2.to_gate_logits"
    before = model.get_submodule(gate).weight.detach().clone()
    fusion = fuse_loras(model, [tiny["distilled_lora"]])
    assert fusion.unmatched == {str(tiny["distilled_lora"]): []}
    assert {t.removesuffix(".weight") for t in fusion.targeted} == linears
    lora = load_file(tiny["distilled_lora"])
    a = lora[f"diffusion_model.{gate}.lora_A.weight"]
    b = lora[f"diffusion_model.{gate}.lora_B.weight"]
    assert a.shape[0] == 2  # rank min(8, in, out = 2 heads)
    expected = ((b @ a).to(torch.bfloat16) + before).to(torch.bfloat16)
    assert torch.equal(model.get_submodule(gate).weight, expected)
