"""The transformer and the text connector against a plain re-statement of the reference recipe.

The recipe below is written from the reference facts (op by op, no shared code
with the package): every AdaLN runs on every token, RoPE angles are built per axis and frequency
with explicit loops over the layout, attention is an explicit softmax. It reads the module's
parameters by their checkpoint key names, so it also pins which table row and which timestep
feeds which modulation. Inputs exercise what differs between versions: per-token timesteps with
clean (timestep 0) tokens, per-stream sigmas that differ, a batch of two, gated attention.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from ltx2cli.diffusion.patchify import (
    AudioLatentShape,
    VideoLatentShape,
    audio_positions,
    video_positions,
)
from ltx2cli.models.text_connectors import build_video_connector
from ltx2cli.models.transformer import (
    BatchedPerturbations,
    Modality,
    Perturbation,
    PerturbationType,
    build_transformer,
)

SEED = 0
EPS = 1e-6
THETA = 10000.0
TIMESTEP_SCALE = 1000.0
VIDEO_MAX_POS = (20, 2048, 2048)
AUDIO_MAX_POS = (20,)
GRID = (2, 2, 3)
AUDIO_TOKENS = 5
CONTEXT_TOKENS = 6
CHANNELS = 8
CAPTION = 12
FPS = 24.0
VIDEO_SIGMAS = (0.7, 0.45)
AUDIO_SIGMAS = (0.3, 0.9)
ATOL = 2e-5  # observed differences are ~1e-6 (float32 op order)


def config(generation: str) -> dict:
    # Head dims chosen so the video RoPE needs front padding (dim 24: 3 axes × 3 freqs = 9 < 12).
    section = {
        "num_layers": 2,
        "num_attention_heads": 2,
        "attention_head_dim": 12,
        "audio_num_attention_heads": 2,
        "audio_attention_head_dim": 6,
        "in_channels": CHANNELS,
        "out_channels": CHANNELS,
        "audio_in_channels": CHANNELS,
        "audio_out_channels": CHANNELS,
        "cross_attention_dim": 24,
        "audio_cross_attention_dim": 12,
        "caption_channels": CAPTION,
        "positional_embedding_max_pos": list(VIDEO_MAX_POS),
        "audio_positional_embedding_max_pos": list(AUDIO_MAX_POS),
        "timestep_scale_multiplier": 1000,
        "av_ca_timestep_scale_multiplier": 1000.0,
        "frequencies_precision": "float64",
        "rope_type": "split",
    }
    if generation == "2.3":
        section |= {
            "cross_attention_adaln": True,
            "apply_gated_attention": True,
            "caption_proj_before_connector": True,
            "caption_projection_first_linear": False,
            "caption_projection_second_linear": False,
            "caption_proj_input_norm": False,
        }
    return {"transformer": section}


# ---- the recipe --------------------------------------------------------------------------


def linear(p: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    bias = p.get(f"{name}.bias")
    return x @ p[f"{name}.weight"].T + (0 if bias is None else bias)


def rms(x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    y = x / torch.sqrt(x.square().mean(-1, keepdim=True) + EPS)
    return y if weight is None else y * weight


def sinusoids(t: torch.Tensor) -> torch.Tensor:
    """256 channels: cos first, frequencies exp(-ln(10000)·i/128)."""
    i = torch.arange(128, dtype=torch.float32)
    args = t.reshape(-1, 1).float() * torch.exp(-math.log(10000.0) * i / 128)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def adaln(p: dict, name: str, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`t` (B, N) → (mod (B, N, k·D), embedded (B, N, D)), one MLP evaluation per entry."""
    b, n = t.shape
    e = linear(p, f"{name}.emb.timestep_embedder.linear_1", sinusoids(t))
    e = linear(p, f"{name}.emb.timestep_embedder.linear_2", F.silu(e))
    return linear(p, f"{name}.linear", F.silu(e)).view(b, n, -1), e.view(b, n, -1)


def rows(table: torch.Tensor, mod: torch.Tensor, index: int) -> torch.Tensor:
    """Row `index` of `table` plus the matching D-sized chunk of the AdaLN output."""
    d = table.shape[1]
    return table[index] + mod[..., index * d : (index + 1) * d]


def rope(
    positions: torch.Tensor, dim: int, heads: int, max_pos, middle: bool = True, double=True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) of shape (B, T, heads, dim/(2·heads)); angles in float32 as the reference.

    The ladder (π/2)·theta^(k/(N−1)) is evaluated in float64 and rounded to float32 when the
    config says `frequencies_precision: "float64"`, else evaluated in float32."""
    b, n_axes, t = positions.shape[:3]
    n = dim // (2 * n_axes)
    if double:
        omega = [
            float(torch.tensor(THETA ** (k / (n - 1) if n > 1 else 0.0) * math.pi / 2).float())
            for k in range(n)
        ]
    else:
        omega = (THETA ** torch.linspace(0.0, 1.0, n) * math.pi / 2).tolist()
    cos = torch.ones(b, t, dim // 2)
    sin = torch.zeros(b, t, dim // 2)
    pad = dim // 2 - n * n_axes
    for a in range(n_axes):
        p = positions[:, a]
        p = (p[..., 0] + p[..., 1]) / 2 if middle else p
        u = p / max_pos[a] * 2 - 1  # float32
        for k in range(n):
            angle = torch.tensor(omega[k], dtype=torch.float32) * u
            cos[:, :, pad + k * n_axes + a] = torch.cos(angle)
            sin[:, :, pad + k * n_axes + a] = torch.sin(angle)
    return cos.view(b, t, heads, -1), sin.view(b, t, heads, -1)


def rotate(x: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    cos, sin = table
    b, t, _ = x.shape
    x = x.view(b, t, cos.shape[2], 2, -1)
    x1, x2 = x[..., 0, :], x[..., 1, :]
    return torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=3).reshape(b, t, -1)


def attention(p, name, heads, x, ctx=None, pe=None, k_pe=None, keep=None):
    ctx = x if ctx is None else ctx
    v = linear(p, f"{name}.to_v", ctx)
    q = rms(linear(p, f"{name}.to_q", x), p[f"{name}.q_norm.weight"])
    k = rms(linear(p, f"{name}.to_k", ctx), p[f"{name}.k_norm.weight"])
    if pe is not None:
        q, k = rotate(q, pe), rotate(k, pe if k_pe is None else k_pe)
    b, t, inner = q.shape
    d = inner // heads
    qh, kh, vh = (z.view(b, -1, heads, d).transpose(1, 2) for z in (q, k, v))
    weights = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(d), dim=-1)
    out = (weights @ vh).transpose(1, 2).reshape(b, t, inner)
    if keep is not None:  # STG: value pass-through for perturbed samples
        out = out * keep + v * (1 - keep)
    if f"{name}.to_gate_logits.weight" in p:
        gate = 2 * torch.sigmoid(linear(p, f"{name}.to_gate_logits", x))  # (B, T, H)
        out = (out.view(b, t, heads, d) * gate.unsqueeze(-1)).reshape(b, t, inner)
    return linear(p, f"{name}.to_out.0", out)


def recipe(model, video: Modality, audio: Modality, skip_video_self: dict | None = None):
    """`skip_video_self`: {block: keep (B,)} for SKIP_VIDEO_SELF_ATTN."""
    p = {k: v.detach() for k, v in model.state_dict().items()}
    cfg = config_of(model)
    double = cfg["double_precision_rope"]
    # The gate AdaLN sees sigma·1000·(av_ca_timestep_scale_multiplier / 1000).
    av_factor = cfg["av_ca_timestep_scale_multiplier"] / TIMESTEP_SCALE
    v2 = "prompt_adaln_single.linear.weight" in p
    heads = cfg["num_attention_heads"]
    streams = {}
    for name, m, other, pre, max_pos in (
        ("v", video, audio, "", VIDEO_MAX_POS),
        ("a", audio, video, "audio_", AUDIO_MAX_POS),
    ):
        b, t = m.latent.shape[:2]
        ts = m.timesteps.reshape(b, t) * TIMESTEP_SCALE
        s = {"x": linear(p, f"{pre}patchify_proj", m.latent)}
        s["mod"], s["emb"] = adaln(p, f"{pre}adaln_single", ts)
        if v2:
            s["prompt"], _ = adaln(p, f"{pre}prompt_adaln_single", m.sigma.view(b, 1) * 1000)
            s["ctx"] = m.context
        else:
            hidden = linear(p, f"{pre}caption_projection.linear_1", m.context)
            hidden = F.gelu(hidden, approximate="tanh")
            s["ctx"] = linear(p, f"{pre}caption_projection.linear_2", hidden)
        dim = s["x"].shape[-1]
        s["pe"] = rope(m.positions, dim, heads, max_pos, double=double)
        cross_dim = cfg["audio_cross_attention_dim"]
        s["cross_pe"] = rope(m.positions[:, :1], cross_dim, heads, [20], double=double)
        # Current reference: own per-token timesteps for scale/shift, the other's sigma for gate.
        av = "video" if name == "v" else "audio"
        s["cross_mod"], _ = adaln(p, f"av_ca_{av}_scale_shift_adaln_single", ts)
        gate_name = "av_ca_a2v_gate_adaln_single" if name == "v" else "av_ca_v2a_gate_adaln_single"
        s["cross_gate"], _ = adaln(p, gate_name, other.sigma.view(b, 1) * 1000 * av_factor)
        streams[name] = s

    for i in range(cfg["num_layers"]):
        blk = f"transformer_blocks.{i}"
        for name, pre in (("v", ""), ("a", "audio_")):
            s = streams[name]
            table = p[f"{blk}.{pre}scale_shift_table"]
            shift, scale, gate = (rows(table, s["mod"], r) for r in range(3))
            keep = None
            if name == "v" and skip_video_self and i in skip_video_self:
                keep = skip_video_self[i].view(-1, 1, 1)
            h = rms(s["x"]) * (1 + scale) + shift
            s["x"] = (
                s["x"] + attention(p, f"{blk}.{pre}attn1", heads, h, pe=s["pe"], keep=keep) * gate
            )
            normed = rms(s["x"])
            if v2:
                shift_q, scale_q, gate_q = (rows(table, s["mod"], r) for r in (6, 7, 8))
                prompt_table = p[f"{blk}.{pre}prompt_scale_shift_table"]
                shift_kv, scale_kv = (rows(prompt_table, s["prompt"], r) for r in (0, 1))
                query = normed * (1 + scale_q) + shift_q
                ctx = s["ctx"] * (1 + scale_kv) + shift_kv
                s["x"] = s["x"] + attention(p, f"{blk}.{pre}attn2", heads, query, ctx) * gate_q
            else:
                s["x"] = s["x"] + attention(p, f"{blk}.{pre}attn2", heads, normed, s["ctx"])
        v, a = streams["v"], streams["a"]
        v0, a0 = v["x"], a["x"]
        tv, ta = (
            p[f"{blk}.scale_shift_table_a2v_ca_video"],
            p[f"{blk}.scale_shift_table_a2v_ca_audio"],
        )
        # Five-row tables: scale_a2v, shift_a2v, scale_v2a, shift_v2a, gate.
        q_in = rms(v0) * (1 + rows(tv, v["cross_mod"], 0)) + rows(tv, v["cross_mod"], 1)
        kv_in = rms(a0) * (1 + rows(ta, a["cross_mod"], 0)) + rows(ta, a["cross_mod"], 1)
        gate = tv[4] + v["cross_gate"]
        a2v = attention(
            p, f"{blk}.audio_to_video_attn", heads, q_in, kv_in, v["cross_pe"], a["cross_pe"]
        )
        q_in = rms(a0) * (1 + rows(ta, a["cross_mod"], 2)) + rows(ta, a["cross_mod"], 3)
        kv_in = rms(v0) * (1 + rows(tv, v["cross_mod"], 2)) + rows(tv, v["cross_mod"], 3)
        v2a = attention(
            p, f"{blk}.video_to_audio_attn", heads, q_in, kv_in, a["cross_pe"], v["cross_pe"]
        )
        v["x"] = v0 + a2v * gate
        a["x"] = a0 + v2a * (ta[4] + a["cross_gate"])
        for s, pre in ((v, ""), (a, "audio_")):
            table = p[f"{blk}.{pre}scale_shift_table"]
            shift, scale, gate = (rows(table, s["mod"], r) for r in (3, 4, 5))
            h = rms(s["x"]) * (1 + scale) + shift
            hidden = F.gelu(linear(p, f"{blk}.{pre}ff.net.0.proj", h), approximate="tanh")
            s["x"] = s["x"] + linear(p, f"{blk}.{pre}ff.net.2", hidden) * gate

    outputs = []
    for name, pre in (("v", ""), ("a", "audio_")):
        s = streams[name]
        table = p[f"{pre}scale_shift_table"]
        shift, scale = table[0] + s["emb"], table[1] + s["emb"]
        x = F.layer_norm(s["x"], (s["x"].shape[-1],), eps=EPS)
        outputs.append(linear(p, f"{pre}proj_out", x * (1 + scale) + shift))
    return outputs


def config_of(model) -> dict:
    return dataclasses.asdict(model.config)


# ---- inputs and tests --------------------------------------------------------------------


def inputs(generation: str) -> tuple[Modality, Modality]:
    g = torch.Generator().manual_seed(1)
    batch = len(VIDEO_SIGMAS)
    n_video = GRID[0] * GRID[1] * GRID[2]
    video_sigma = torch.tensor(VIDEO_SIGMAS)
    audio_sigma = torch.tensor(AUDIO_SIGMAS)
    # Latent frame 0 of sample 0 is a clean conditioning frame (denoise mask 0).
    mask = torch.ones(batch, n_video, 1)
    mask[0, : GRID[1] * GRID[2]] = 0
    video_ctx, audio_ctx = (24, 12) if generation == "2.3" else (CAPTION, CAPTION)
    video = Modality(
        latent=torch.randn(batch, n_video, CHANNELS, generator=g),
        sigma=video_sigma,
        timesteps=mask * video_sigma.view(-1, 1, 1),
        positions=video_positions(VideoLatentShape(batch, CHANNELS, *GRID), FPS),
        context=torch.randn(batch, CONTEXT_TOKENS, video_ctx, generator=g),
    )
    audio = Modality(
        latent=torch.randn(batch, AUDIO_TOKENS, CHANNELS, generator=g),
        sigma=audio_sigma,
        timesteps=torch.ones(batch, AUDIO_TOKENS, 1) * audio_sigma.view(-1, 1, 1),
        positions=audio_positions(AudioLatentShape(batch, CHANNELS, AUDIO_TOKENS, 1)),
        context=torch.randn(batch, CONTEXT_TOKENS, audio_ctx, generator=g),
    )
    return video, audio


def tiny(generation: str, drop: tuple[str, ...] = ()):
    cfg = config(generation)
    for key in drop:
        del cfg["transformer"][key]
    model = build_transformer(cfg).eval()
    model.init_weights(torch.Generator().manual_seed(SEED))
    return model


@pytest.mark.parametrize(
    ("generation", "drop"),
    [
        ("19b", ()),
        ("2.3", ()),
        # Absent keys take the reference defaults: float32 frequency ladder, and an A/V gate
        # multiplier of 1 (so the gate AdaLN sees sigma, not sigma·1000).
        ("2.3", ("frequencies_precision", "av_ca_timestep_scale_multiplier")),
    ],
)
def test_forward_matches_recipe(generation: str, drop: tuple[str, ...]) -> None:
    model = tiny(generation, drop)
    video, audio = inputs(generation)
    with torch.no_grad():
        v, a = model(video, audio)
        v_ref, a_ref = recipe(model, video, audio)
    assert torch.allclose(v, v_ref, atol=ATOL), (v - v_ref).abs().max()
    assert torch.allclose(a, a_ref, atol=ATOL), (a - a_ref).abs().max()


def test_partial_stg_matches_recipe() -> None:
    """STG on video self-attention of block 1 for sample 1 only: value pass-through there."""
    model = tiny("2.3")
    video, audio = inputs("2.3")
    skip = Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, blocks=(1,))
    perturbations = BatchedPerturbations([[], [skip]], model.num_blocks)
    with torch.no_grad():
        v, a = model(video, audio, perturbations)
        v_ref, a_ref = recipe(model, video, audio, skip_video_self={1: torch.tensor([1.0, 0.0])})
    assert torch.allclose(v, v_ref, atol=ATOL) and torch.allclose(a, a_ref, atol=ATOL)


CONNECTOR_SEQ = 128
CONNECTOR_VALID = 40


@pytest.mark.parametrize("config_theta", [None, 500.0])
def test_connector_matches_recipe(config_theta) -> None:
    """One gated connector block: registers in the padding, 1-D RoPE over raw indices with
    theta 10000 and max_pos [4096] (the checkpoint's transformer theta is not read), pre-norm
    residual attention and FF, final RMSNorm."""
    section = {
        "connector_num_attention_heads": 2,
        "connector_attention_head_dim": 8,
        "connector_num_layers": 1,
        "connector_positional_embedding_max_pos": [4096],
        "connector_apply_gated_attention": True,
        "frequencies_precision": "float64",
    }
    if config_theta is not None:
        section["positional_embedding_theta"] = config_theta
    connector = build_video_connector({"transformer": section})
    connector.init_weights(torch.Generator().manual_seed(SEED))
    g = torch.Generator().manual_seed(2)
    features = torch.randn(1, CONNECTOR_SEQ, 16, generator=g)
    mask = torch.zeros(1, CONNECTOR_SEQ, dtype=torch.int64)
    mask[:, :CONNECTOR_VALID] = 1
    with torch.no_grad():
        out, _ = connector(features, mask)

    p = {k: v.detach() for k, v in connector.state_dict().items()}
    x = features.clone()
    x[:, CONNECTOR_VALID:] = p["learnable_registers"][CONNECTOR_VALID:]
    index = torch.arange(CONNECTOR_SEQ, dtype=torch.float32).view(1, 1, -1)
    pe = rope(index, 16, 2, [4096], middle=False)
    blk = "transformer_1d_blocks.0"
    x = x + attention(p, f"{blk}.attn1", 2, rms(x), pe=pe)
    hidden = F.gelu(linear(p, f"{blk}.ff.net.0.proj", rms(x)), approximate="tanh")
    x = rms(x + linear(p, f"{blk}.ff.net.2", hidden))
    assert torch.allclose(out, x, atol=ATOL), (out - x).abs().max()
