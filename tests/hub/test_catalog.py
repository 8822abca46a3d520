"""The built-in catalog is internally consistent and carries the reference's facts."""

from __future__ import annotations

import json

import pytest

from ltx2cli.errors import ConfigError, UsageError
from ltx2cli.families import GENERATIONS
from ltx2cli.hub.catalog import (
    ANY_GENERATION,
    BUILTIN,
    DEMO_MODEL,
    KINDS,
    hash_matches,
    load_catalog,
)
from ltx2cli.pipelines.registry import PIPELINES

# Exact sizes from the hub's LFS pointers and public download manifests
REFERENCE_SIZES = {
    "ltx-2-19b-distilled": 43_333_932_124,
    "ltx-2-19b-dev-fp8": 27_078_716_018,
    "ltx-2-spatial-upscaler-x2": 995_765_578,
    "ltx-2.3-22b-distilled": 46_149_345_334,
    "ltx-2.3-spatial-upscaler-x2": 995_743_560,
    "ltx-2.3-22b-distilled-lora-384": 7_605_507_256,
}
GEMMA_WEIGHTS = 24_374_793_024
GEMMA_TOKENIZER_JSON = 33_384_570
GEMMA_TOKENIZER_MODEL = 4_689_074


def test_names_unique_and_demo_reserved():
    names = [a.name for a in BUILTIN.artifacts.values()]
    assert len(names) == len(set(names))
    assert DEMO_MODEL not in names


@pytest.mark.parametrize("name", list(BUILTIN.artifacts))
def test_every_artifact_is_well_formed(name):
    a = BUILTIN.artifacts[name]
    assert a.kind in KINDS
    assert a.generation in (*GENERATIONS, ANY_GENERATION)
    assert "/" in a.repo and a.files
    assert all(f.size is None or f.size > 0 for f in a.files)
    assert a.licence
    if a.superseded_by:
        assert BUILTIN.artifacts[a.superseded_by].kind == a.kind


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("pipeline", list(PIPELINES))
def test_every_pipeline_role_is_filled_by_catalog_entries(pipeline, generation):
    needed = BUILTIN.required(pipeline, generation)
    assert [r.role for r in needed] == list(PIPELINES[pipeline].roles)
    for requirement in needed:
        assert requirement.candidates[0].size > 0, requirement.role
        for a in requirement.candidates:
            assert a.generation in (generation, ANY_GENERATION), (pipeline, a.name)
    kinds = [r.candidates[0].kind for r in needed]
    assert kinds.count("checkpoint") == 1, pipeline


def test_two_stage_needs_dev_lora_upscaler_and_gemma():
    needed = BUILTIN.required("two-stage", "2.3")
    assert [r.candidates[0].name for r in needed] == [
        "ltx-2.3-22b-dev",
        "ltx-2.3-22b-distilled-lora-384",
        "ltx-2.3-spatial-upscaler-x2",
        "gemma-3-12b",
    ]


def test_the_text_encoder_role_is_filled_by_either_gemma_copy():
    (text_encoder,) = [r for r in BUILTIN.required("distilled", "2.0") if r.role == "text-encoder"]
    assert {a.name for a in text_encoder.candidates} == {"gemma-3-12b", "gemma-3-12b-lightricks"}


@pytest.mark.parametrize(("name", "size"), REFERENCE_SIZES.items())
def test_reference_sizes(name, size):
    assert BUILTIN.artifacts[name].size == size
    assert BUILTIN.artifacts[name].size_exact


def test_gemma_is_the_whole_repository():
    files = {f.name: f.size for f in BUILTIN.artifacts["gemma-3-12b"].files}
    weights = sum(s for n, s in files.items() if n.startswith("model-"))
    assert weights == GEMMA_WEIGHTS
    assert files["tokenizer.json"] == GEMMA_TOKENIZER_JSON
    assert files["tokenizer.model"] == GEMMA_TOKENIZER_MODEL
    assert {"config.json", "model.safetensors.index.json", "preprocessor_config.json"} <= set(files)


def test_gated_gemma_has_an_ungated_alternative():
    assert BUILTIN.artifacts["gemma-3-12b"].gated is True
    alternatives = BUILTIN.alternatives("gemma-3-12b")
    assert [a.repo for a in alternatives] == ["Lightricks/gemma-3-12b-it-qat-q4_0-unquantized"]
    assert alternatives[0].gated is False


def test_abbreviated_hashes_match_full_ones():
    full = "b33b7fe4bbfe084f484be4aaf90b0f1d95dca20d403ac4c0e037eb8c4f0af7cc"
    assert hash_matches("b33b7fe4…f7cc", full)
    assert not hash_matches("b33b7fe4…f7cd", full)
    assert hash_matches(BUILTIN.artifacts["ltx-2.3-22b-distilled"].files[0].sha256, full)


def test_unknown_names_suggest_the_closest():
    with pytest.raises(UsageError, match=r"did you mean 'ltx-2\.3-22b-distilled'"):
        BUILTIN.get("ltx-2.3-22b-distiled")
    with pytest.raises(UsageError, match="unknown pipeline"):
        BUILTIN.required("three-stage", "2")


def test_catalog_file_override_round_trips(tmp_path, monkeypatch):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(BUILTIN.to_dict()))
    monkeypatch.setenv("LTX2_CATALOG", str(path))
    loaded = load_catalog()
    assert loaded.artifacts == BUILTIN.artifacts
    assert loaded.roles == BUILTIN.roles
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="LTX2_CATALOG"):
        load_catalog()


def test_an_empty_catalog_file_knows_no_models(tmp_path, monkeypatch):
    path = tmp_path / "empty.json"
    path.write_text("{}")
    monkeypatch.setenv("LTX2_CATALOG", str(path))
    empty = load_catalog()
    assert empty.artifacts == {} and empty.roles == {}
    with pytest.raises(UsageError, match=r"unknown model 'ltx-2\.3-22b-dev'"):
        empty.get("ltx-2.3-22b-dev")
