"""Each latent upsampler file's config builds a module with exactly the manifest's keys."""

from __future__ import annotations

import pytest
import torch

from ltx2cli.models.upsampler import build_upsampler

UPSAMPLERS = [
    "ltx-2-spatial-upscaler-x2",
    "ltx-2-temporal-upscaler-x2",
    "ltx-2.3-spatial-upscaler-x1.5",
    "ltx-2.3-spatial-upscaler-x2",
    "ltx-2.3-temporal-upscaler-x2",
]
# x2 files whose resampler variant is uncertain carry the other variant as an alternative.
ALTERNATIVES = [
    ("ltx-2-spatial-upscaler-x2", "plain_pixel_shuffle_instead"),
    ("ltx-2.3-spatial-upscaler-x2", "rational_2.0_instead"),
]


def _shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", UPSAMPLERS)
def test_upsampler_matches_manifest(manifest, name):
    m = manifest(name)
    with torch.device("meta"):
        upsampler = build_upsampler(m["config"])
    assert _shapes(upsampler) == m["components"]["upsampler"]["keys"]
    assert sum(p.numel() for p in upsampler.parameters()) == m["total_params"]


@pytest.mark.parametrize(("name", "alternative"), ALTERNATIVES)
def test_upsampler_alternative_variant_matches_manifest(manifest, name, alternative):
    m = manifest(name)
    alt = m["alternatives"][alternative]
    expected = {
        k: v
        for k, v in m["components"]["upsampler"]["keys"].items()
        if k not in alt["removed_keys"]
    }
    expected.update(alt["added_keys"])
    with torch.device("meta"):
        upsampler = build_upsampler(alt["config"])
    assert _shapes(upsampler) == expected
