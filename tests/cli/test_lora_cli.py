"""`ltx2 lora inspect|convert|fuse` as a user runs them, on tiny checkpoints in the official
layout: what inspect reports per key style, lossless conversion, fused checkpoints that load
and compute like the base with the LoRA at load, and one-line errors that leave no file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ltx2cli.models.checkpoint import TRANSFORMER_PREFIX
from ltx2cli.models.loading import load_component
from ltx2cli.models.tiny import tiny_config, write_tiny_checkpoint
from ltx2cli.models.transformer import Modality

RANK, ALPHA = 4, 2.0
STRENGTH = 0.75
EXIT_RUNTIME, EXIT_USAGE = 1, 2
# One layer of every kind a trainer targets, including a 2.3-only one (gated attention).
TARGETS = (
    "transformer_blocks.0.attn1.to_q",
    "transformer_blocks.0.attn2.to_v",
    "transformer_blocks.1.audio_attn1.to_out.0",
    "transformer_blocks.1.audio_to_video_attn.to_k",
    "transformer_blocks.0.ff.net.0.proj",
    "transformer_blocks.1.attn1.to_gate_logits",
)
GROUPS = {"video": 4, "audio": 1, "cross-modal": 1}


def ltx2(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ltx2cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora-cli")
    base = write_tiny_checkpoint(root / "base.safetensors", "2.3")
    old = write_tiny_checkpoint(root / "base-2.0.safetensors", "2.0")
    return root, base, old


def _pairs(ckpt, modules=TARGETS, seed=0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """`{module: (A, B)}` float32, shaped for the checkpoint's weights."""
    g = torch.Generator().manual_seed(seed)
    pairs = {}
    with safe_open(str(ckpt), framework="pt") as f:
        for module in modules:
            out_f, in_f = f.get_slice(f"{TRANSFORMER_PREFIX}{module}.weight").get_shape()
            a = torch.randn(RANK, in_f, generator=g)
            pairs[module] = (a, torch.randn(out_f, RANK, generator=g) * 0.1)
    return pairs


def _diffusers_name(module: str) -> str:
    return "transformer." + module  # block layers keep their names in diffusers


def _write(path, pairs, style: str, alpha: float | None = None, metadata=None):
    """The key layouts the official trainer, ComfyUI/kohya and diffusers write."""
    tensors = {}
    for module, (a, b) in pairs.items():
        if style == "official":
            tensors[f"diffusion_model.{module}.lora_A.weight"] = a
            tensors[f"diffusion_model.{module}.lora_B.weight"] = b
        elif style in ("comfy", "kohya"):
            name = "lora_unet_" + module.replace(".", "_") if style == "kohya" else module
            name = name if style == "kohya" else f"diffusion_model.{name}"
            tensors[f"{name}.lora_down.weight"] = a
            tensors[f"{name}.lora_up.weight"] = b
            tensors[f"{name}.alpha"] = torch.tensor(alpha or float(RANK))
        else:
            tensors[f"{_diffusers_name(module)}.lora_A.weight"] = a
            tensors[f"{_diffusers_name(module)}.lora_B.weight"] = b
    save_file(tensors, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize(
    ("style", "reported"),
    [("official", "official"), ("comfy", "comfy"), ("kohya", "comfy"), ("diffusers", "diffusers")],
)
def test_inspect_reports_style_rank_alpha_groups_and_generation(files, tmp_path, style, reported):
    _, base, _ = files
    alpha = ALPHA if style in ("comfy", "kohya") else None
    meta = {"reference_downscale_factor": "2", "trigger_words": "zzstyle"}
    lora = _write(tmp_path / "l.safetensors", _pairs(base), style, alpha, meta)
    proc = ltx2("lora", "inspect", lora, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["style"] == reported
    assert report["ranks"] == [RANK]
    assert report["alphas"] == ([ALPHA] if alpha else [])
    assert ("alpha/rank scales" in report["alpha"]) == (alpha is not None)
    assert report["groups"] == GROUPS
    assert report["generation"] == "2.3"
    assert "to_gate_logits" in report["generation_evidence"]
    assert report["dtypes"] == ["F32"]
    assert report["metadata"] == {"reference_downscale_factor": 2, "trigger_words": "zzstyle"}


def test_inspect_against_models_gives_a_verdict(files, tmp_path):
    _, base, old = files
    modules = (*TARGETS[:-1], "transformer_blocks.7.attn1.to_q")
    pairs = _pairs(base, TARGETS[:-1]) | {modules[-1]: _pairs(base, TARGETS[:1])[TARGETS[0]]}
    lora = _write(tmp_path / "l.safetensors", pairs, "official")
    proc = ltx2("lora", "inspect", lora, "--model", base)
    assert proc.returncode == 0, proc.stderr
    total = len(modules)
    assert f"partly fits {base}: {total - 1} of {total} keys (1 unmatched" in proc.stdout
    assert "transformer_blocks.7.attn1.to_q" in proc.stdout
    fits = _write(tmp_path / "f.safetensors", _pairs(base), "official")
    report = json.loads(ltx2("lora", "inspect", fits, "-m", base, "--json").stdout)["model"]
    assert report["verdict"] == f"fits {base}: {len(TARGETS)} of {len(TARGETS)} keys"
    other = json.loads(ltx2("lora", "inspect", fits, "-m", old, "--json").stdout)["model"]
    assert other["verdict"].startswith(f"does not fit {old}: a LoRA for LTX-2.3")


def _fused(base, lora, dtype=torch.float32, strength=1.0) -> dict[str, torch.Tensor]:
    model = load_component(base, "transformer", dtype=dtype, loras=[(lora, strength)])
    return model.state_dict()


def test_convert_round_trip_fuses_bit_identically_in_float32(files, tmp_path):
    """official → comfy → diffusers → official: the same file, and the same fused weights."""
    _, base, _ = files
    first = _write(tmp_path / "a.safetensors", _pairs(base), "official")
    path = first
    for style in ("comfy", "diffusers", "official"):
        out = tmp_path / f"{style}.safetensors"
        proc = ltx2("lora", "convert", path, "--to", style, "-o", out, "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["to"] == style
        assert json.loads(ltx2("lora", "inspect", out, "--json").stdout)["style"] == style
        fused = _fused(base, out, strength=STRENGTH)
        expected = _fused(base, first, strength=STRENGTH)
        assert all(torch.equal(fused[k], expected[k]) for k in expected)
        path = out
    with safe_open(str(first), "pt") as a, safe_open(str(path), "pt") as b:
        names = a.keys()
        assert set(names) == set(b.keys())
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in names)


def test_converting_alpha_away_folds_it_into_lora_b(files, tmp_path):
    """A kohya alpha ≠ rank becomes `B·alpha/rank`; at strength 1 it fuses to the same bits."""
    _, base, _ = files
    kohya = _write(tmp_path / "k.safetensors", _pairs(base), "comfy", alpha=ALPHA)
    out = tmp_path / "o.safetensors"
    proc = ltx2("lora", "convert", kohya, "--to", "official", "-o", out, "--json")
    assert json.loads(proc.stdout)["alpha_folded"] == len(TARGETS)
    with safe_open(str(kohya), "pt") as k, safe_open(str(out), "pt") as o:
        up = f"diffusion_model.{TARGETS[0]}"
        assert torch.equal(
            o.get_tensor(f"{up}.lora_B.weight"),
            k.get_tensor(f"{up}.lora_up.weight") * (ALPHA / RANK),
        )
        names = o.keys()
        assert not any(key.endswith(".alpha") for key in names)
    fused, expected = _fused(base, out), _fused(base, kohya)
    assert all(torch.equal(fused[k], expected[k]) for k in expected)


def _forward(model, seed=0):
    t = tiny_config("2.3")["transformer"]
    g = torch.Generator().manual_seed(seed)

    def modality(tokens, channels, axes, ctx):
        start = torch.rand(1, axes, tokens, 1, generator=g) * 4
        return Modality(
            latent=torch.randn(1, tokens, channels, generator=g, dtype=torch.bfloat16),
            sigma=torch.tensor([0.6]),
            timesteps=torch.full((1, tokens, 1), 0.6),
            positions=torch.cat([start, start + 1], dim=-1),
            context=torch.randn(1, 5, ctx, generator=g, dtype=torch.bfloat16),
        )

    video_dim = t["num_attention_heads"] * t["attention_head_dim"]
    audio_dim = t["audio_num_attention_heads"] * t["audio_attention_head_dim"]
    video = modality(6, t["in_channels"], 3, video_dim)
    audio = modality(4, t["audio_out_channels"], 1, audio_dim)
    with torch.no_grad():
        return model(video, audio)


def test_fused_checkpoint_computes_like_the_base_with_the_lora_at_load(files, tmp_path):
    _, base, _ = files
    lora = _write(tmp_path / "l.safetensors", _pairs(base), "official")
    out = tmp_path / "fused.safetensors"
    proc = ltx2("lora", "fuse", base, "--lora", f"{lora}:{STRENGTH}", "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["fused_weights"] == len(TARGETS)
    at_load = load_component(base, "transformer", dtype=torch.bfloat16, loras=[(lora, STRENGTH)])
    fused = load_component(out, "transformer", dtype=torch.bfloat16)
    for expected, got in zip(_forward(at_load), _forward(fused), strict=True):
        assert torch.equal(expected, got)
    with safe_open(str(base), "pt") as b, safe_open(str(out), "pt") as f:
        meta = f.metadata()
        assert meta["config"] == b.metadata()["config"]  # embedded config kept byte for byte
        assert meta["model_version"] == b.metadata()["model_version"]
        untouched = f"{TRANSFORMER_PREFIX}transformer_blocks.0.attn1.to_k.weight"
        assert torch.equal(f.get_tensor(untouched), b.get_tensor(untouched))
        assert set(f.keys()) == set(b.keys())
    record = json.loads(meta["fused_loras"])
    assert record == [{"file": "l.safetensors", "strength": STRENGTH, "alpha_scaled": False}]
    # The other components load unchanged from the fused file.
    vae = load_component(out, "video_decoder").state_dict()
    assert all(
        torch.equal(v, load_component(base, "video_decoder").state_dict()[k])
        for k, v in vae.items()
    )


def test_fusing_into_an_fp8_scaled_base_requantises_like_loading_it(files, tmp_path):
    _, base, _ = files
    q = tmp_path / "q.safetensors"
    assert ltx2("quantize", base, "--policy", "fp8-scaled-mm", "-o", q).returncode == 0
    lora = _write(tmp_path / "l.safetensors", _pairs(base, TARGETS[:1]), "official")
    out = tmp_path / "fused.safetensors"
    proc = ltx2("lora", "fuse", q, "--lora", lora, "-o", out)
    assert proc.returncode == 0, proc.stderr
    kwargs = {"dtype": torch.bfloat16, "quantization": "fp8-scaled-mm"}
    at_load = load_component(q, "transformer", loras=[lora], **kwargs).state_dict()
    fused = load_component(out, "transformer", **kwargs).state_dict()
    for key, value in at_load.items():
        bits = fused[key].reshape(-1).view(torch.uint8)
        assert torch.equal(bits, value.reshape(-1).view(torch.uint8)), key
    layer = TARGETS[0]
    with safe_open(str(q), "pt") as a:
        assert not torch.equal(
            fused[f"{layer}.weight_scale"],
            a.get_tensor(f"{TRANSFORMER_PREFIX}{layer}.weight_scale"),
        )


def _truncate(path, tmp_path):
    data = path.read_bytes()
    bad = tmp_path / f"cut-{path.name}"
    bad.write_bytes(data[: len(data) - 1000])
    return bad


@pytest.mark.parametrize(
    "case", ["truncated base", "truncated lora", "not safetensors", "other generation", "no match"]
)
def test_bad_inputs_give_one_line_errors_and_no_output(files, tmp_path, case):
    _, base, old = files
    lora = _write(tmp_path / "l.safetensors", _pairs(base), "official")
    if case == "truncated base":
        base = _truncate(base, tmp_path)
        expected = "is truncated"
    elif case == "truncated lora":
        lora = _truncate(lora, tmp_path)
        expected = "is truncated"
    elif case == "not safetensors":
        lora.write_text("a LoRA? no, a text file\n")
        expected = "l.safetensors is not a valid safetensors file"
    elif case == "other generation":
        base = old
        expected = "l.safetensors is a LoRA for LTX-2.3"
    else:
        lora = _write(tmp_path / "l.safetensors", _pairs(base, TARGETS[:1]), "official")
        lora.write_bytes(lora.read_bytes().replace(b"blocks.0.", b"blocks.9."))
        expected = "none of its 1 LoRA modules exist in the model"
    out = tmp_path / "out" / "fused.safetensors"
    proc = ltx2("lora", "fuse", base, "--lora", lora, "-o", out)
    assert proc.returncode == EXIT_RUNTIME
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("Error: ") and expected in lines[0]
    assert len(lines) == 2 and lines[1].startswith("Hint: ")
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.parametrize("case", ["input", "parent is a file", "unknown style"])
def test_bad_outputs_are_usage_errors(files, tmp_path, case):
    _, base, _ = files
    lora = _write(tmp_path / "l.safetensors", _pairs(base), "official")
    args = {
        "input": ("lora", "convert", lora, "--to", "comfy", "-o", lora),
        "parent is a file": (
            "lora",
            "convert",
            lora,
            "--to",
            "comfy",
            "-o",
            lora / "x.safetensors",
        ),
        "unknown style": (
            "lora",
            "convert",
            lora,
            "--to",
            "kohya",
            "-o",
            tmp_path / "k.safetensors",
        ),
    }[case]
    before = sorted(tmp_path.iterdir())
    proc = ltx2(*args)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr
    assert sorted(tmp_path.iterdir()) == before


def test_dry_run_checks_and_writes_nothing(files, tmp_path):
    _, base, _ = files
    lora = _write(tmp_path / "l.safetensors", _pairs(base), "official")
    out = tmp_path / "fused.safetensors"
    proc = ltx2("lora", "fuse", base, "--lora", lora, "-o", out, "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["written"] is False and report["fused_weights"] == len(TARGETS)
    assert report["size_after"] > base.stat().st_size  # the same tensors plus the record
    assert not out.exists()


def test_too_little_disk_space_is_refused_before_writing(files, tmp_path, monkeypatch):
    import shutil

    from ltx2cli.hub.errors import DiskSpaceError
    from ltx2cli.models.rewrite import fuse_checkpoint

    _, base, _ = files
    lora = _write(tmp_path / "l.safetensors", _pairs(base), "official")
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    out = tmp_path / "fused.safetensors"
    with pytest.raises(DiskSpaceError, match=r"not enough disk space: fused\.safetensors needs"):
        fuse_checkpoint(base, [lora], out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.safetensors"]
