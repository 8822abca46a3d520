"""The whole text path on tiny weights in the official layouts, for both generations:
Gemma 3 directory → hidden states → feature extractor → connectors → transformer context,
then one transformer forward with positions from the diffusion layer."""

from __future__ import annotations

import pytest
import torch

from ltx2cli.diffusion.patchify import (
    AudioLatentShape,
    VideoLatentShape,
    audio_positions,
    video_positions,
)
from ltx2cli.models.loading import load_component
from ltx2cli.models.text_connectors import encode_text_context
from ltx2cli.models.text_encoder import GEMMA_MAX_LENGTH, GemmaTextEncoder
from ltx2cli.models.tiny import TINY_GEMMA_HIDDEN_SIZE, write_tiny_checkpoint, write_tiny_gemma
from ltx2cli.models.transformer import Modality

GENERATIONS = ("2.0", "2.3")
FPS = 24.0
SIGMA = 0.7


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    folder = write_tiny_gemma(tmp_path_factory.mktemp("gemma") / "gemma", seed=0)
    return GemmaTextEncoder.from_pretrained(folder, dtype=torch.float32)


@pytest.mark.parametrize("generation", GENERATIONS)
def test_prompt_to_transformer_velocity(generation, encoder, tmp_path):
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.safetensors", generation=generation)
    load = dict(dtype=torch.float32)
    extractor = load_component(checkpoint, "text_projection", **load)
    video_connector = load_component(checkpoint, "video_connector", **load)
    audio_connector = load_component(checkpoint, "audio_connector", **load)
    transformer = load_component(checkpoint, "transformer", **load)
    cfg = transformer.config

    encoding = encoder.encode(["a red fox runs through the snow"])
    with torch.inference_mode():
        video_ctx, audio_ctx, mask = encode_text_context(
            encoding.hidden_states, encoding.mask, extractor, video_connector, audio_connector
        )
    assert mask.shape == (1, GEMMA_MAX_LENGTH) and mask.all()
    if generation == "2.0":  # 19B: contexts stay Gemma-wide; the transformer projects them
        widths = (TINY_GEMMA_HIDDEN_SIZE, TINY_GEMMA_HIDDEN_SIZE)
    else:  # 2.3: projected before the connectors to the transformer's widths
        widths = (
            cfg.num_attention_heads * cfg.attention_head_dim,
            cfg.audio_num_attention_heads * cfg.audio_attention_head_dim,
        )
    assert (video_ctx.shape[-1], audio_ctx.shape[-1]) == widths

    video_shape = VideoLatentShape(1, cfg.in_channels, 2, 2, 3)
    audio_shape = AudioLatentShape(1, 1, 5, cfg.audio_in_channels)
    generator = torch.Generator().manual_seed(0)
    video_tokens = torch.randn(1, video_shape.token_count, cfg.in_channels, generator=generator)
    audio_tokens = torch.randn(1, audio_shape.frames, cfg.audio_in_channels, generator=generator)
    sigma = torch.tensor([SIGMA])
    video = Modality(
        latent=video_tokens,
        sigma=sigma,
        timesteps=sigma.expand(1, video_shape.token_count),
        positions=video_positions(video_shape, FPS),
        context=video_ctx,
    )
    audio = Modality(
        latent=audio_tokens,
        sigma=sigma,
        timesteps=sigma.expand(1, audio_shape.frames),
        positions=audio_positions(audio_shape),
        context=audio_ctx,
    )
    with torch.inference_mode():
        v_out, a_out = transformer(video, audio)
        other_prompt = encoder.encode(["a blue car in the city at night"])
        other_video_ctx, _, _ = encode_text_context(
            other_prompt.hidden_states,
            other_prompt.mask,
            extractor,
            video_connector,
            audio_connector,
        )
        v_other, _ = transformer(
            Modality(
                latent=video_tokens,
                sigma=sigma,
                timesteps=video.timesteps,
                positions=video.positions,
                context=other_video_ctx,
            ),
            audio,
        )
    assert v_out.shape == video_tokens.shape and a_out.shape == audio_tokens.shape
    assert torch.isfinite(v_out).all() and torch.isfinite(a_out).all()
    assert not torch.allclose(v_out, v_other)  # the prompt reaches the velocity
