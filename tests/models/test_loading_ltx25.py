"""LTX-2.5 split files load through `load_component` with the key rules of the released layout,
and are recognised as LTX-2.5."""

from __future__ import annotations

import json

import pytest
import torch

from ltx2cli.families import GEN_2_5
from ltx2cli.models.checkpoint import read_checkpoint
from ltx2cli.models.diffusion_vae import DiffusionVideoDecoder
from ltx2cli.models.gemma4 import gemma_config_of, projection_sizes
from ltx2cli.models.loading import ModelSource, available_components, load_component
from ltx2cli.models.tiny_ltx25 import write_tiny_ltx25


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_tiny_ltx25(tmp_path_factory.mktemp("ltx25-load"), seed=1)


@pytest.fixture(scope="module")
def source(files):
    names = ("transformer", "video_vae", "audio_vae", "duration_head")
    return ModelSource(tuple(files[n] for n in names))


def raw(path, key):
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        return f.get_tensor(key)


@pytest.mark.parametrize(
    "name", ["transformer", "video_vae", "video_vae_conv", "audio_vae", "duration_head"]
)
def test_split_files_are_recognised_as_ltx25(files, name) -> None:
    assert read_checkpoint(files[name]).generation == GEN_2_5


def test_each_component_comes_from_the_file_that_holds_it(source) -> None:
    assert set(available_components(source)) == {
        "transformer",
        "video_connector",
        "audio_connector",
        "video_encoder",
        "video_decoder",
        "audio_encoder",
        "audio_decoder",
        "vocoder",
        "duration_head",
    }


def test_transformer_keeps_float32_tables_as_stored(files, source) -> None:
    model = load_component(source, "transformer")
    table = model.transformer_blocks[0].scale_shift_table
    assert table.dtype == torch.float32
    stored = raw(
        files["transformer"], "model.diffusion_model.transformer_blocks.0.scale_shift_table"
    )
    assert torch.equal(table, stored)
    assert model.transformer_blocks[0].ff.net[2].bias is None
    assert model.keyframes_abs_pos_embedding.dtype == torch.bfloat16
    cast = load_component(source, "transformer", dtype=torch.float32)
    assert cast.patchify_proj.weight.dtype == torch.float32


def test_diffusion_decoder_maps_the_file_keys(files, source) -> None:
    decoder = load_component(source, "video_decoder", dtype=torch.float32)
    assert isinstance(decoder, DiffusionVideoDecoder)
    weight = raw(files["video_vae"], "decoder.t_embedder.mlp.0.weight").float()
    assert torch.equal(decoder.t_embedder.timestep_embedder.linear_1.weight, weight)
    qkv = raw(files["video_vae"], "decoder.diff_blocks.0.attn.qkv.weight").float()
    assert torch.equal(decoder.diff_blocks[0].attn.qkv.weight, qkv)
    with torch.no_grad():
        pixels = decoder(torch.randn(1, 16, 2, 1, 1), generator=torch.Generator().manual_seed(0))
    assert pixels.shape == (1, 3, 9, 32, 32)


def test_conv_vae_file_with_bare_keys(files) -> None:
    encoder = load_component(files["video_vae_conv"], "video_encoder", dtype=torch.float32)
    decoder = load_component(files["video_vae_conv"], "video_decoder", dtype=torch.float32)
    video = torch.rand(1, 3, 9, 64, 64) * 2 - 1
    with torch.no_grad():
        latent = encoder(video)
        assert decoder(latent).shape == video.shape
    stats = raw(files["video_vae_conv"], "per_channel_statistics.mean-of-means").float()
    assert torch.equal(decoder.per_channel_statistics.get_buffer("mean-of-means"), stats)


def test_diffusion_file_encoder_reads_the_nested_config(source) -> None:
    encoder = load_component(source, "video_encoder", dtype=torch.float32)
    with torch.no_grad():
        assert encoder(torch.zeros(1, 3, 9, 64, 64)).shape == (1, 16, 2, 2, 2)


def test_duration_head_and_audio_parts(source) -> None:
    head = load_component(source, "duration_head", dtype=torch.float32)
    with torch.no_grad():
        seconds = head(torch.randn(1, 5, 32), torch.randn(1, 5, 16))
    assert seconds.shape == (1,) and bool(seconds > 0)
    for component in ("audio_encoder", "audio_decoder", "vocoder"):
        assert load_component(source, component) is not None


def test_text_projection_from_the_text_encoder_file(files) -> None:
    transformer_config = read_checkpoint(files["transformer"]).config
    hidden, states = projection_sizes(gemma_config_of(files["text_encoder"]))
    projection = load_component(
        files["text_encoder"],
        "text_projection",
        config=transformer_config,
        gemma_hidden_size=hidden,
        dtype=torch.float32,
    )
    weight = projection.video_aggregate_embed.weight
    assert weight.shape == (32, hidden * states)


def test_distilled_lora_fuses_on_load(files) -> None:
    base = load_component(files["dev_transformer"], "transformer")
    fused = load_component(files["dev_transformer"], "transformer", loras=[files["distilled_lora"]])
    name = "transformer_blocks.0.attn1.to_gate_logits"
    a = raw(files["distilled_lora"], f"diffusion_model.{name}.lora_A.weight")
    b = raw(files["distilled_lora"], f"diffusion_model.{name}.lora_B.weight")
    before = base.get_submodule(name).weight
    assert torch.equal(fused.get_submodule(name).weight, ((b @ a).to(torch.bfloat16) + before))


def test_fp8_cast_loads_the_25_transformer(source) -> None:
    model = load_component(source, "transformer", quantization="fp8-cast")
    assert model.transformer_blocks[0].ff.net[2].weight.dtype == torch.float8_e4m3fn


def test_upsamplers_load(files) -> None:
    for name in ("spatial_upscaler", "temporal_upscaler"):
        config = json.loads(json.dumps(read_checkpoint(files[name]).config))
        assert load_component(files[name], "upsampler").__class__.__name__ == "LatentUpsampler"
        assert config["in_channels"] == 16
