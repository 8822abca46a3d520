"""`ltx2 quantize` as a user runs it: fp8 files in the reference's layout that the loader
accepts and recognises, about half the transformer bytes, and refusals that write nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ltx2cli.models.checkpoint import TRANSFORMER_PREFIX
from ltx2cli.models.loading import COMPONENTS, component_builder, load_component
from ltx2cli.models.tiny import tiny_config, write_tiny_checkpoint

FP8, BF16 = torch.float8_e4m3fn, torch.bfloat16
FP8_MAX = 448.0  # largest finite float8_e4m3fn
EXIT_RUNTIME, EXIT_USAGE = 1, 2
# model.md §10.1: the Linears fp8 stores, as suffixes under `transformer_blocks.`.
COVERED = (".to_q", ".to_k", ".to_v", ".to_out.0", "ff.net.0.proj", "ff.net.2")
LAYER = "transformer_blocks.1.attn2.to_k"
AMAX = 3.5


def ltx2(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ltx2cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _covered(key: str) -> bool:
    name = key.removeprefix(TRANSFORMER_PREFIX).rpartition(".")[0]
    return name.startswith("transformer_blocks.") and name.endswith(COVERED)


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A transformer-only file in the official layout whose block Linears dominate, as in the
    released models (in the 2-block tiny config the AdaLN MLPs are a third of the weights)."""
    config = tiny_config("2.3")
    config["transformer"].update(num_layers=16, attention_head_dim=64, audio_attention_head_dim=32)
    config["transformer"].update(cross_attention_dim=128, audio_cross_attention_dim=64)
    module = component_builder(COMPONENTS["transformer"])(config)
    module.init_weights(torch.Generator().manual_seed(0))
    tensors = {
        TRANSFORMER_PREFIX + k: v.to(BF16) if v.is_floating_point() and v.dim() else v
        for k, v in module.state_dict().items()
    }
    path = tmp_path_factory.mktemp("quantize") / "wide.safetensors"
    save_file(tensors, str(path), metadata={"config": json.dumps(config)})
    return path


@pytest.mark.parametrize("policy", ["fp8-cast", "fp8-scaled-mm"])
def test_quantize_about_halves_the_transformer(wide, tmp_path, policy):
    out = tmp_path / "q.safetensors"
    proc = ltx2("quantize", wide, "--policy", policy, "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    with safe_open(str(wide), "pt") as f:
        names = f.keys()
        shapes = {k: f.get_slice(k).get_shape() for k in names}
    numel = {k: torch.Size(s).numel() for k, s in shapes.items()}
    weights = [k for k in shapes if _covered(k) and k.endswith(".weight")]
    biases = [k for k in shapes if _covered(k) and k.endswith(".bias")]
    before = 2 * sum(numel.values())  # everything bf16
    saved = sum(numel[k] for k in weights) + (
        sum(numel[k] for k in biases) * (policy == "fp8-cast")
    )
    scales = 4 * len(weights) * (policy == "fp8-scaled-mm")  # one 0-d float32 per weight
    assert report["transformer_bytes_before"] == before
    assert report["transformer_bytes_after"] == before - saved + scales
    assert 0.5 < report["transformer_bytes_after"] / before < 0.6
    assert out.stat().st_size == report["size_after"]


def test_fp8_cast_file_loads_as_the_load_time_cast(wide, tmp_path):
    """Loading the quantized file with --quantization fp8-cast casts nothing twice: the same
    model as casting the original at load."""
    out = tmp_path / "q.safetensors"
    assert ltx2("quantize", wide, "-p", "fp8-cast", "-o", out).returncode == 0
    with safe_open(str(out), "pt") as f:
        raw = TRANSFORMER_PREFIX + LAYER
        assert f.get_tensor(raw + ".weight").dtype == FP8
        assert f.get_tensor(raw + ".bias").dtype == FP8
        names = f.keys()
        assert not any(k.endswith("_scale") for k in names)
        gate = TRANSFORMER_PREFIX + "transformer_blocks.0.attn1.to_gate_logits.weight"
        assert f.get_tensor(gate).dtype == BF16  # excluded layers kept
    ours = load_component(out, "transformer", dtype=BF16, quantization="fp8-cast").state_dict()
    cast = load_component(wide, "transformer", dtype=BF16, quantization="fp8-cast").state_dict()
    assert ours.keys() == cast.keys()
    for key, value in cast.items():
        assert ours[key].dtype == value.dtype
        assert torch.equal(ours[key].float(), value.float()), key


def test_fp8_scaled_file_has_the_reference_scales_and_loads(wide, tmp_path):
    calibration = tmp_path / "amax.json"
    calibration.write_text(json.dumps({"amax_values": {f"{LAYER}.input_quantizer": AMAX}}))
    out = tmp_path / "q.safetensors"
    proc = ltx2("quantize", wide, "-p", "fp8-scaled-mm", "-o", out, "--calibration", calibration)
    assert proc.returncode == 0, proc.stderr
    raw = TRANSFORMER_PREFIX + LAYER
    with safe_open(str(wide), "pt") as f:
        w = f.get_tensor(raw + ".weight")
    inv = FP8_MAX / w.float().abs().amax()  # model.md §10.2: q = clamp(w·448/amax)
    expected = (w.float() * inv).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    with safe_open(str(out), "pt") as f:
        assert torch.equal(
            f.get_tensor(raw + ".weight").view(torch.uint8), expected.view(torch.uint8)
        )
        assert f.get_tensor(raw + ".weight_scale").item() == inv.reciprocal().item()
        assert f.get_tensor(raw + ".weight_scale").shape == ()
        assert f.get_tensor(raw + ".input_scale").item() == pytest.approx(AMAX / FP8_MAX, rel=1e-7)
        assert f.get_tensor(raw + ".bias").dtype == BF16  # biases stay high precision
        other = TRANSFORMER_PREFIX + "transformer_blocks.0.attn1.to_q.input_scale"
        names = f.keys()
        assert other not in names  # no calibration for it: dynamic activation scale
    folded = load_component(out, "transformer", dtype=BF16).get_submodule(LAYER).weight
    assert torch.equal(folded, (expected.float() * inv.reciprocal()).to(BF16))
    scaled = load_component(out, "transformer", dtype=BF16, quantization="fp8-scaled-mm")
    layer = scaled.get_submodule(LAYER)
    assert layer.weight.dtype == FP8 and layer.input_scale.item() == pytest.approx(AMAX / FP8_MAX)


@pytest.mark.parametrize("case", ["already fp8", "calibration for fp8-cast", "unknown layer"])
def test_refusals_write_nothing(wide, tmp_path, case):
    source = wide
    args = ["-p", "fp8-cast"]
    if case == "already fp8":
        source = tmp_path / "q.safetensors"
        assert ltx2("quantize", wide, "-p", "fp8-scaled-mm", "-o", source).returncode == 0
        args = ["-p", "fp8-scaled-mm"]
        code, expected = EXIT_RUNTIME, "is already quantized"
    else:
        calibration = tmp_path / "amax.json"
        layer = LAYER if case == "calibration for fp8-cast" else "proj_out"
        calibration.write_text(json.dumps({"amax_values": {f"{layer}.input_quantizer": AMAX}}))
        if case == "unknown layer":
            args = ["-p", "fp8-scaled-mm"]
        args += ["--calibration", calibration]
        code = EXIT_USAGE
        expected = (
            "does not use" if case == "calibration for fp8-cast" else "'proj_out.input_quantizer'"
        )
    out = tmp_path / "again.safetensors"
    proc = ltx2("quantize", source, *args, "-o", out)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("Error: ") and expected in proc.stderr.splitlines()[0]
    assert not out.exists()


def test_a_truncated_checkpoint_is_one_line_and_no_file(tmp_path):
    base = write_tiny_checkpoint(tmp_path / "b.safetensors", "2.0")
    data = base.read_bytes()
    base.write_bytes(data[:-100])
    out = tmp_path / "q.safetensors"
    proc = ltx2("quantize", base, "-p", "fp8-cast", "-o", out)
    assert proc.returncode == EXIT_RUNTIME
    assert proc.stderr.splitlines()[0] == (
        "Error: b.safetensors is truncated: 100 bytes of tensor data are missing"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.safetensors"]
