"""load_component: key layouts, strict key and shape checks, per-tensor casts, fp8, bad files."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ltx2cli.errors import CheckpointError, UsageError
from ltx2cli.models import loading
from ltx2cli.models.loading import COMPONENTS, Component, load_component

WIDTH = 8
CONFIG = {"transformer": {"width": WIDTH}, "vae": {"width": WIDTH}, "vocoder": {"width": WIDTH}}


class Toy(nn.Module):
    """A stand-in with a Linear, a Conv, a persistent buffer and a 0-d scalar parameter."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width, width)
        self.conv = nn.Conv1d(width, width, 3)
        self.multiplier = nn.Parameter(torch.tensor(1000.0))
        self.register_buffer("table", torch.zeros(2, width))


class ToyVae(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv1d(2, width, 1)
        self.per_channel_statistics = nn.Module()
        self.per_channel_statistics.register_buffer("mean-of-means", torch.zeros(width))
        self.per_channel_statistics.register_buffer("std-of-means", torch.ones(width))


class ToyVocoder(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.vocoder = nn.Conv1d(width, 2, 1)  # like 2.3: keys `vocoder.*` inside the module


def _builder(cls, section):
    return lambda config, **options: cls(config[section]["width"], **options)


@pytest.fixture
def toys(monkeypatch):
    """Swap the real builders for the toys, keeping the real key layouts."""
    for name, cls, section in (
        ("transformer", Toy, "transformer"),
        ("video_encoder", ToyVae, "vae"),
        ("vocoder", ToyVocoder, "vocoder"),
    ):
        spec = COMPONENTS[name]
        monkeypatch.setitem(
            COMPONENTS,
            name,
            Component(_builder(cls, section), spec.section, spec.layouts, spec.lenient),
        )


def _toy_tensors(prefix: str, dtype=torch.bfloat16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "proj.weight": (WIDTH, WIDTH),
        "proj.bias": (WIDTH,),
        "conv.weight": (WIDTH, WIDTH, 3),
        "conv.bias": (WIDTH,),
        "table": (2, WIDTH),
    }
    out = {prefix + k: torch.randn(s, generator=g).to(dtype) for k, s in shapes.items()}
    out[prefix + "multiplier"] = torch.tensor(1000.0)  # 0-d float32, must stay float32
    return out


def _write(path, tensors, config=CONFIG, **metadata):
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    if config is not None:
        meta["config"] = json.dumps(config)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def _monolithic(tmp_path, dtype=torch.bfloat16):
    tensors = _toy_tensors("model.diffusion_model.", dtype)
    tensors["model.diffusion_model.video_embeddings_connector.learnable_registers"] = torch.ones(
        4, 2
    )
    tensors["vae.encoder.conv_in.weight"] = torch.randn(WIDTH, 2, 1)
    tensors["vae.encoder.conv_in.bias"] = torch.randn(WIDTH)
    tensors["vae.per_channel_statistics.mean-of-means"] = torch.randn(WIDTH)
    tensors["vae.per_channel_statistics.std-of-means"] = torch.rand(WIDTH) + 0.5
    tensors["vocoder.vocoder.weight"] = torch.randn(2, WIDTH, 1)
    tensors["vocoder.vocoder.bias"] = torch.randn(2)
    return _write(tmp_path / "mono.safetensors", tensors), tensors


@pytest.mark.parametrize("stored", [torch.bfloat16, torch.float32])
def test_round_trip_keeps_stored_values_exactly(tmp_path, toys, stored):
    path, tensors = _monolithic(tmp_path, stored)
    model = load_component(path, "transformer")
    for key, value in model.state_dict().items():
        assert torch.equal(value, tensors["model.diffusion_model." + key]), key
        assert value.dtype == tensors["model.diffusion_model." + key].dtype


def test_casts_each_tensor_but_keeps_float32_scalars(tmp_path, toys):
    path, tensors = _monolithic(tmp_path, torch.float32)
    model = load_component(path, "transformer", dtype=torch.bfloat16)
    assert model.proj.weight.dtype == torch.bfloat16
    assert model.table.dtype == torch.bfloat16
    assert model.multiplier.dtype == torch.float32
    expected = tensors["model.diffusion_model.proj.weight"].to(torch.bfloat16)
    assert torch.equal(model.proj.weight, expected)


def test_reads_only_the_component_tensors(tmp_path, toys, monkeypatch):
    path, tensors = _monolithic(tmp_path)
    read: list[str] = []
    real_open = loading.safe_open

    class Spy:
        def __init__(self, *args, **kwargs):
            self.inner = real_open(*args, **kwargs)

        def __enter__(self):
            self.f = self.inner.__enter__()
            return self

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

        def get_tensor(self, key):
            read.append(key)
            return self.f.get_tensor(key)

    monkeypatch.setattr(loading, "safe_open", Spy)
    load_component(path, "video_encoder")
    assert sorted(read) == sorted(k for k in tensors if k.startswith("vae."))


def test_shared_statistics_and_split_vae_file(tmp_path, toys):
    mono, tensors = _monolithic(tmp_path)
    split = {k.removeprefix("vae."): v for k, v in tensors.items() if k.startswith("vae.")}
    split["per_channel_statistics.channel"] = torch.zeros(3)  # older VAEs' extra stats: ignored
    split_path = _write(tmp_path / "vae.safetensors", split, config=CONFIG["vae"])
    for path in (mono, split_path):
        vae = load_component(path, "video_encoder")
        stats = getattr(vae.per_channel_statistics, "std-of-means")
        assert torch.equal(stats, tensors["vae.per_channel_statistics.std-of-means"])


def test_a_source_of_split_files_reads_each_component_from_its_file(tmp_path, toys):
    _, tensors = _monolithic(tmp_path)
    transformer = {k: v for k, v in tensors.items() if k.startswith("model.diffusion_model.")}
    vae = {k.removeprefix("vae."): v for k, v in tensors.items() if k.startswith("vae.")}
    vocoder = {k: v for k, v in tensors.items() if k.startswith("vocoder.")}
    files = [
        _write(tmp_path / "dit.safetensors", transformer),
        _write(tmp_path / "vae.safetensors", vae, config=CONFIG["vae"]),
        _write(tmp_path / "voc.safetensors", vocoder),
    ]
    source = loading.ModelSource.of(files)
    assert set(loading.available_components(source)) >= {"transformer", "vocoder"}
    assert "transformer" not in loading.available_components(files[1])  # the VAE file
    encoder = load_component(source, "video_encoder")
    assert torch.equal(encoder.conv_in.weight, tensors["vae.encoder.conv_in.weight"])
    model = load_component(source, "transformer")
    assert torch.equal(model.proj.weight, tensors["model.diffusion_model.proj.weight"])
    assert torch.equal(
        load_component(files, "vocoder").vocoder.bias, tensors["vocoder.vocoder.bias"]
    )


@pytest.mark.parametrize(
    ("extra_key", "metadata", "named"),
    [
        ("model.diffusion_model.keyframes_abs_pos_embedding", {}, "keyframes_abs_pos_embedding"),
        (None, {"gemma_source_checkpoint": {"gemma_version": "4"}}, "gemma_source_checkpoint"),
        (None, {"model_version": "2.5.0"}, "model_version"),
    ],
)
def test_unsupported_generations_are_refused_when_loading(
    tmp_path, toys, extra_key, metadata, named
):
    tensors = _toy_tensors("model.diffusion_model.")
    if extra_key:
        tensors[extra_key] = torch.zeros(2)
    path = _write(tmp_path / "new.safetensors", tensors, **metadata)
    with pytest.raises(CheckpointError, match=named) as err:
        load_component(path, "transformer")
    assert "\n" not in str(err.value.message)


def test_vocoder_prefix_is_removed_once(tmp_path, toys):
    path, tensors = _monolithic(tmp_path)
    vocoder = load_component(path, "vocoder")
    assert torch.equal(vocoder.vocoder.weight, tensors["vocoder.vocoder.weight"])


def test_missing_and_unexpected_keys_are_listed(tmp_path, toys):
    tensors = _toy_tensors("model.diffusion_model.")
    del tensors["model.diffusion_model.proj.bias"]
    tensors["model.diffusion_model.extra.weight"] = torch.zeros(2)
    path = _write(tmp_path / "bad.safetensors", tensors)
    with pytest.raises(CheckpointError) as err:
        load_component(path, "transformer")
    assert "missing 1 (proj.bias)" in err.value.message
    assert "unexpected 1 (extra.weight)" in err.value.message


def test_shape_mismatch_names_the_key(tmp_path, toys):
    tensors = _toy_tensors("model.diffusion_model.")
    tensors["model.diffusion_model.proj.weight"] = torch.zeros(WIDTH, WIDTH + 1)
    path = _write(tmp_path / "bad.safetensors", tensors)
    with pytest.raises(CheckpointError, match=r"proj\.weight \[8, 9\] vs \[8, 8\]"):
        load_component(path, "transformer")


def test_component_absent_from_file_names_what_is_there(tmp_path, toys):
    path = _write(tmp_path / "t.safetensors", _toy_tensors("model.diffusion_model."))
    with pytest.raises(CheckpointError, match=r"holds no 'vocoder' weights.*transformer"):
        load_component(path, "vocoder")


def test_missing_config_is_a_checkpoint_error(tmp_path, toys):
    path = _write(tmp_path / "t.safetensors", _toy_tensors("model.diffusion_model."), config=None)
    with pytest.raises(CheckpointError, match="'config' metadata is missing"):
        load_component(path, "transformer")
    model = load_component(path, "transformer", config=CONFIG)  # an explicit config works
    assert model.proj.weight.shape == (WIDTH, WIDTH)


def test_lora_file_is_refused_as_a_model(tmp_path):
    path = _write(
        tmp_path / "l.safetensors", {"diffusion_model.a.lora_A.weight": torch.zeros(2, 2)}
    )
    with pytest.raises(CheckpointError, match="is a LoRA file"):
        load_component(path, "transformer")


@pytest.mark.parametrize(
    ("component", "quantization", "error"),
    [
        ("diffusion", None, UsageError),
        ("vocoder", "fp8-cast", UsageError),
        ("transformer", "int4", UsageError),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path, component, quantization, error):
    path = _write(tmp_path / "t.safetensors", {"vocoder.x": torch.zeros(1)})
    with pytest.raises(error):
        load_component(path, component, quantization=quantization)


def _corrupt(tmp_path, kind: str):
    good, _ = _monolithic(tmp_path)
    data = good.read_bytes()
    bad = tmp_path / f"{kind}.safetensors"
    contents = {
        "empty": b"",
        "truncated": data[: len(data) - 100],
        "text": b"this is not a checkpoint at all, just some text\n" * 4,
        "header": len(data).to_bytes(8, "little") + data[8:],
        "json": (12).to_bytes(8, "little") + b"{not json!!}" + data[20:],
    }[kind]
    bad.write_bytes(contents)
    return bad


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "header", "json"])
def test_damaged_files_give_one_line_errors(tmp_path, toys, kind):
    bad = _corrupt(tmp_path, kind)
    with pytest.raises(CheckpointError) as err:
        load_component(bad, "transformer")
    assert bad.name in err.value.message
    assert "\n" not in str(err.value)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match=r"not found.*nope\.safetensors"):
        load_component(tmp_path / "nope.safetensors", "transformer")


def test_prequantised_weights_are_folded_through_bf16(tmp_path, toys):
    """Reference fold: `bf16(w_fp8 · scale)`, then the build cast (float32 here)."""
    tensors = _toy_tensors("model.diffusion_model.", torch.float32)
    scale = torch.tensor(0.3)  # not a power of two, so the product needs rounding
    payload = (tensors["model.diffusion_model.proj.weight"] / scale).to(torch.float8_e4m3fn)
    tensors["model.diffusion_model.proj.weight"] = payload
    tensors["model.diffusion_model.proj.weight_scale"] = scale
    tensors["model.diffusion_model.proj.input_scale"] = torch.tensor(0.5)
    path = _write(tmp_path / "fp8.safetensors", tensors)
    model = load_component(path, "transformer", dtype=torch.float32)
    folded = (payload.float() * scale).to(torch.bfloat16).float()
    assert not torch.equal(folded, payload.float() * scale)  # the bf16 step is visible
    assert torch.equal(model.proj.weight, folded)
    assert "proj.weight_scale" not in model.state_dict()


@pytest.mark.parametrize(
    ("stored", "build"), [(torch.float32, torch.bfloat16), (torch.bfloat16, None)]
)
def test_loras_fuse_in_the_stored_dtype_before_the_build_cast(tmp_path, toys, stored, build):
    """Reference builder order: load, fuse (`bf16((B·s)@A) + W` rounded to bf16, cast to the
    stored dtype), then cast to the build dtype."""
    path, tensors = _monolithic(tmp_path, stored)
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, WIDTH, generator=g), torch.randn(WIDTH, 2, generator=g)
    lora = tmp_path / "lora.safetensors"
    save_file(
        {"diffusion_model.proj.lora_A.weight": a, "diffusion_model.proj.lora_B.weight": b},
        str(lora),
    )
    strength = 0.8
    model = load_component(path, "transformer", dtype=build, loras=[(lora, strength)])
    w = tensors["model.diffusion_model.proj.weight"]
    delta = (b.to(torch.bfloat16) * strength) @ a.to(torch.bfloat16)
    fused = (delta.float() + w.float()).to(torch.bfloat16).to(w.dtype).to(build or w.dtype)
    assert torch.equal(model.proj.weight, fused)
    untouched = tensors["model.diffusion_model.conv.weight"].to(build or stored)
    assert torch.equal(model.conv.weight, untouched)


def test_progress_reports_every_byte(tmp_path, toys):
    path, tensors = _monolithic(tmp_path)
    calls: list[tuple[int, int]] = []
    load_component(path, "transformer", progress=lambda done, total: calls.append((done, total)))
    component_bytes = sum(
        v.numel() * v.element_size()
        for k, v in tensors.items()
        if k.startswith("model.diffusion_model.") and "connector" not in k
    )
    assert calls[-1] == (component_bytes, component_bytes)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_component_nbytes_and_available_components(tmp_path, toys):
    path, tensors = _monolithic(tmp_path)
    vae_bytes = sum(
        v.numel() * v.element_size() for k, v in tensors.items() if k.startswith("vae.")
    )
    assert loading.component_nbytes(path, "video_encoder") == vae_bytes
    held = loading.available_components(path)
    assert {"transformer", "video_connector", "video_encoder", "video_decoder", "vocoder"} <= set(
        held
    )
    assert "audio_encoder" not in held


def test_decoder_timestep_conditioning_follows_the_tensors(tmp_path):
    from ltx2cli.models.tiny import tiny_config
    from ltx2cli.models.video_vae import build_video_decoder

    config = tiny_config("2.0")
    with_tc = copy.deepcopy(config)
    with_tc["vae"]["timestep_conditioning"] = True
    decoder = build_video_decoder(with_tc)
    decoder.init_weights(torch.Generator().manual_seed(0))
    tensors = {
        ("vae." if k.startswith("per_channel") else "vae.decoder.") + k: v
        for k, v in decoder.state_dict().items()
    }
    assert config["vae"]["timestep_conditioning"] is False  # the config says otherwise
    path = _write(tmp_path / "tc.safetensors", tensors, config=config)
    loaded = load_component(path, "video_decoder")
    assert torch.equal(loaded.last_scale_shift_table, decoder.last_scale_shift_table)


MANIFEST_COMPONENTS = {
    "transformer": ["transformer"],
    "video_connector": ["video_embeddings_connector"],
    "audio_connector": ["audio_embeddings_connector"],
    "text_projection": ["text_embedding_projection"],
    "video_encoder": ["vae_encoder", "vae_per_channel_statistics"],
    "video_decoder": ["vae_decoder", "vae_per_channel_statistics"],
    "audio_encoder": ["audio_vae_encoder", "audio_vae_per_channel_statistics"],
    "audio_decoder": ["audio_vae_decoder", "audio_vae_per_channel_statistics"],
    "vocoder": ["vocoder"],
}


# The reference's key ops, written out: (kept prefixes, ordered substring
# replacements applied to every occurrence, our module's root inside the reference module).
_PROJ, _DM = "text_embedding_projection.", "model.diffusion_model."
_EMBEDDING_RENAMES = (
    *((f"{_PROJ}{e}.", f"feature_extractor.{e}.") for e in
      ("aggregate_embed", "video_aggregate_embed", "audio_aggregate_embed")),
    (f"{_DM}video_embeddings_connector.", "video_connector."),
    (f"{_DM}audio_embeddings_connector.", "audio_connector."),
)  # fmt: skip
_EMBEDDINGS = (tuple(old for old, _ in _EMBEDDING_RENAMES), _EMBEDDING_RENAMES)


def _vae_ops(root: str, part: str):
    return (
        (f"{root}{part}", f"{root}per_channel_statistics.", part, "per_channel_statistics."),
        ((f"{root}{part}", ""), (f"{root}per_channel_statistics.", "per_channel_statistics."))
        + (((part, ""),) if root == "vae." else ()),
    )


REFERENCE_KEY_OPS = {
    "transformer": (("model.diffusion_model.",), (("model.diffusion_model.", ""),), ""),
    "video_connector": (*_EMBEDDINGS, "video_connector."),
    "audio_connector": (*_EMBEDDINGS, "audio_connector."),
    "text_projection": (*_EMBEDDINGS, "feature_extractor."),
    "video_encoder": (*_vae_ops("vae.", "encoder."), ""),
    "video_decoder": (*_vae_ops("vae.", "decoder."), ""),
    "audio_encoder": (*_vae_ops("audio_vae.", "encoder."), ""),
    "audio_decoder": (*_vae_ops("audio_vae.", "decoder."), ""),
}  # fmt: skip


def _reference_rename(key: str, component: str) -> str | None:
    if component == "vocoder":  # a key-value op: remove the leading `vocoder.` once
        return key.removeprefix("vocoder.") if key.startswith("vocoder.") else None
    prefixes, replacements, root = REFERENCE_KEY_OPS[component]
    if not key.startswith(prefixes):
        return None
    for old, new in replacements:
        key = key.replace(old, new)
    return key.removeprefix(root) if key.startswith(root) else None


@pytest.mark.parametrize("name", ["ltx-2-19b", "ltx-2.3-22b"])
def test_released_headers_plan_every_component_exactly(manifest, tmp_path, name):
    """The key table maps a released file's full header onto modules built from its config,
    pairing each module key with the raw key the reference's key ops give it."""
    from ltx2cli.models.checkpoint import CheckpointInfo, TensorInfo
    from ltx2cli.models.loading import plan_component

    m = manifest(name)
    tensors = {
        key: TensorInfo("BF16", tuple(shape), 2 * math.prod(shape))
        for part in m["components"].values()
        for key, shape in part["keys"].items()
    }
    info = CheckpointInfo(tmp_path / f"{name}.safetensors", 0, tensors, {"config": m["config"]})
    for component, parts in MANIFEST_COMPONENTS.items():
        plan = plan_component(info, component)
        expected = {k for p in parts for k in m["components"][p]["keys"]}
        assert set(plan.mapping.values()) == expected, component
        reference = {_reference_rename(raw, component): raw for raw in tensors}
        assert plan.mapping == {k: reference[k] for k in plan.mapping}, component


# --- peak resident memory ---------------------------------------------------------------------

MIB = 1024**2
BALLAST_BYTES = 256 * MIB  # another component's bytes in the same file, never to be read
NEAR_COMPONENT = 2.0  # peak growth may reach this multiple of what the loaded module holds
RSS_SLACK = 16 * MIB  # allocator arenas and lazily imported modules
# Runs in a fresh interpreter: VmHWM is the peak RSS of that process image alone (ru_maxrss
# would carry the pytest parent's peak through fork and exec).
_MEASURE_LOAD = """
import sys, torch
from ltx2cli.models import loading, transformer

def peak():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024

torch.set_num_threads(1)
base = peak()
module = loading.load_component(sys.argv[1], "transformer", dtype=getattr(torch, sys.argv[2]))
state = module.state_dict()
touched = sum(float(t.sum()) * 0 for t in state.values())  # read every page, as a forward would
held = sum(t.numel() * t.element_size() for t in state.values())
print(peak() - base, held)
"""


def _wide_transformer_file(path) -> tuple:
    """A monolithic file whose transformer (~34 MiB in bf16) sits beside BALLAST_BYTES of
    VAE weights: what loading reads must stay near the former."""
    from ltx2cli.models.tiny import tiny_config
    from ltx2cli.models.transformer import build_transformer

    config = tiny_config("2.0")
    config["transformer"].update(
        num_attention_heads=8, attention_head_dim=64, cross_attention_dim=512,
        audio_num_attention_heads=8, audio_attention_head_dim=32, audio_cross_attention_dim=256,
    )  # fmt: skip
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in build_transformer(config).state_dict().items()}
    g = torch.Generator().manual_seed(0)
    tensors = {
        "model.diffusion_model." + k: torch.randn(s, generator=g).to(torch.bfloat16)
        if len(s)
        else torch.tensor(1000.0)
        for k, s in shapes.items()
    }
    tensors["vae.decoder.ballast"] = torch.zeros(BALLAST_BYTES // 2, dtype=torch.bfloat16)
    return _write(path, tensors, config=config)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux VmHWM")
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_peak_memory_stays_near_the_component_not_the_file(tmp_path, dtype):
    path = _wide_transformer_file(tmp_path / "wide.safetensors")
    size = path.stat().st_size
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE_LOAD, str(path), dtype],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    growth, held = (int(float(v)) for v in run.stdout.split())
    assert held == loading.component_nbytes(path, "transformer") * (2 if dtype == "float32" else 1)
    assert growth <= NEAR_COMPONENT * held + RSS_SLACK < size, (growth, held, size)
