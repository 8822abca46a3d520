"""Checkpoint headers: metadata decoding, generation detection, clear refusals."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from ltx2cli.errors import CheckpointError
from ltx2cli.models.checkpoint import detect_generation, read_checkpoint

MANIFESTS = {"2.0": "ltx-2-19b", "2.3": "ltx-2.3-22b"}
TRANSFORMER_BLOCK_0 = "model.diffusion_model.transformer_blocks.0."


def _all_keys(manifest: dict) -> list[str]:
    return [k for c in manifest["components"].values() for k in c["keys"]]


def _write(path, tensors=None, **metadata):
    tensors = tensors if tensors is not None else {"vocoder.conv_pre.weight": torch.zeros(2, 2)}
    save_file(tensors, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize("generation", ["2.0", "2.3"])
@pytest.mark.parametrize("with_config", [True, False])
def test_generation_from_released_key_lists(manifest, generation, with_config):
    m = manifest(MANIFESTS[generation])
    config = m["config"] if with_config else None
    assert detect_generation(_all_keys(m), config) == generation


@pytest.mark.parametrize("generation", ["2.0", "2.3"])
def test_generation_from_config_alone(manifest, generation):
    assert detect_generation([], manifest(MANIFESTS[generation])["config"]) == generation


def test_metadata_values_are_json_decoded_where_possible(tmp_path):
    config = {"transformer": {"num_layers": 2}}
    path = _write(
        tmp_path / "m.safetensors",
        config=json.dumps(config),
        model_version="2.3.0",
        license="some licence text",
        count="5",
    )
    info = read_checkpoint(path)
    assert info.config == config
    assert info.metadata["model_version"] == "2.3.0"
    assert info.metadata["license"] == "some licence text"
    assert info.metadata["count"] == 5


def test_header_reports_shapes_dtypes_and_sizes(tmp_path):
    path = _write(tmp_path / "h.safetensors", {"a": torch.zeros(3, 4, dtype=torch.bfloat16)})
    info = read_checkpoint(path)
    assert info.tensors["a"].shape == (3, 4)
    assert info.tensors["a"].dtype == "BF16"
    assert info.nbytes() == 3 * 4 * 2


def test_model_version_decides_when_nothing_else_does(tmp_path):
    assert (
        read_checkpoint(_write(tmp_path / "a.safetensors", model_version="2.3.0")).generation
        == "2.3"
    )
    # The reference treats a missing version as LTX-2.0.
    assert read_checkpoint(_write(tmp_path / "b.safetensors")).generation == "2.0"


@pytest.mark.parametrize(
    ("keys", "config", "metadata", "message"),
    [
        (["model.diffusion_model.embeddings_connector.learnable_registers"], None, {},
         "video-only LTX-Video"),
        (["model.diffusion_model.keyframes_abs_pos_embedding"], None, {}, "LTX-2.5"),
        ([], None, {"model_version": "2.5.0"}, "model_version"),
        ([], None, {"gemma_source_checkpoint": {}}, "gemma_source_checkpoint"),
        ([], {"vae": {"_class_name": "CausalDiffusionVAE"}}, {}, "vae._class_name"),
        ([TRANSFORMER_BLOCK_0 + "prompt_scale_shift_table",
          "model.diffusion_model.caption_projection.linear_1.weight"], None, {}, "mixes"),
        ([TRANSFORMER_BLOCK_0 + "attn1.to_gate_logits.weight"],
         {"transformer": {"cross_attention_adaln": False}}, {}, "config says LTX-2.0"),
    ],
)  # fmt: skip
def test_unsupported_or_inconsistent_files_name_the_key(keys, config, metadata, message):
    with pytest.raises(CheckpointError, match=message):
        detect_generation(keys, config, metadata)


def test_missing_config_is_reported(tmp_path):
    info = read_checkpoint(_write(tmp_path / "n.safetensors"))
    assert info.config is None
    with pytest.raises(CheckpointError, match="'config' metadata is missing"):
        info.require_config()
    bad = read_checkpoint(_write(tmp_path / "s.safetensors", config="not json"))
    with pytest.raises(CheckpointError, match="not a JSON object"):
        bad.require_config()


def _header(entry: dict) -> bytes:
    raw = json.dumps({"a": entry}).encode()
    return len(raw).to_bytes(8, "little") + raw


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (b"", "empty"),
        (b"1234", "too short"),
        (b"GIF89a" + b"\0" * 64, "header length"),
        ((5).to_bytes(8, "little") + b"nope!", "not JSON"),
        ((2).to_bytes(8, "little") + b"[]", "not a JSON object"),
        (_header({"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}) + b"\0" * 8, "truncated"),
        (_header({"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}) + b"\0" * 12,
         "inconsistent"),
        (_header({"dtype": "Q4", "shape": [4], "data_offsets": [0, 4]}) + b"\0" * 4, "bad header"),
    ],
)  # fmt: skip
def test_non_safetensors_input_is_one_line_naming_the_file(tmp_path, contents, message):
    path = tmp_path / "weights.bin"
    path.write_bytes(contents)
    with pytest.raises(CheckpointError, match=message) as err:
        read_checkpoint(path)
    assert "weights.bin" in err.value.message and "\n" not in str(err.value)


def test_directory_and_missing_paths(tmp_path):
    with pytest.raises(CheckpointError, match="not a file"):
        read_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "absent.safetensors")


def test_file_kinds(tmp_path):
    lora = _write(
        tmp_path / "l.safetensors", {"diffusion_model.x.lora_A.weight": torch.zeros(1, 1)}
    )
    upsampler = _write(
        tmp_path / "u.safetensors",
        {"initial_conv.weight": torch.zeros(1)},
        config='{"mid_channels": 8}',
    )
    split = _write(tmp_path / "s.safetensors", {"encoder.conv_in.conv.weight": torch.zeros(1)})
    kinds = [read_checkpoint(p).kind for p in (lora, upsampler, split)]
    assert kinds == ["lora", "upsampler", "component"]
