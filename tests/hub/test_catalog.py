"""The built-in catalog is internally consistent and carries the reference's facts."""

from __future__ import annotations

import json

import pytest

from ltx2cli.errors import ConfigError, UsageError
from ltx2cli.families import CATALOG_GENERATIONS, GENERATIONS
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
    assert a.generation in (*CATALOG_GENERATIONS, ANY_GENERATION)
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


# LTX-2.5 (ltx-2.5.md §1): repository, path in it and, where known, exact bytes and sha256.
LTX25_REPO = "Lightricks/LTX-2.5"
LTX25_FILES = {
    "ltx-2.5-22b-dev": "diffusion_models/ltx-2.5-22b-dev-transformer-bf16.safetensors",
    "ltx-2.5-22b-distilled": "diffusion_models/ltx-2.5-22b-distilled-transformer-bf16.safetensors",
    "gemma-4-12b-ltx-2.5": "text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors",
    "ltx-2.5-video-vae": "vae/ltx-2.5-video-vae-bf16.safetensors",
    "ltx-2.5-video-vae-conv": "vae/ltx-2.5-video-vae-conv-bf16.safetensors",
    "ltx-2.5-audio-vae": "vae/ltx-2.5-audio-vae-bf16.safetensors",
    "ltx-2.5-spatial-upscaler-x2": (
        "latent_upscale_models/ltx-2.5-latent-spatial-upscaler-x2-bf16-1.0.safetensors"
    ),
    "ltx-2.5-temporal-upscaler-x2": (
        "latent_upscale_models/ltx-2.5-latent-temporal-upscaler-x2-bf16-1.0.safetensors"
    ),
    "ltx-2.5-22b-distilled-lora-450": "loras/ltx-2.5-22b-distilled-lora-450-bf16.safetensors",
    "ltx-2.5-duration-head": "model_patches/ltx-2.5-duration-head-bf16.safetensors",
    "ltx-2.5-22b-distilled-int8": (
        "diffusion_models/ltx-2.5-22b-distilled-transformer-comfy-int8-convrot.safetensors"
    ),
    "gemma-4-12b-ltx-2.5-int8": (
        "text_encoders/gemma4-12b-with-proj-ltx-2.5-comfy-int8-convrot.safetensors"
    ),
}
LTX25_EXACT = {
    "ltx-2.5-video-vae": (1_472_223_346, None),
    "ltx-2.5-audio-vae": (
        364_866_540,
        "c52733d37f6a7fb7949c3dc0fb468c6cb2169e4d836983a73babb9f0d54837a5",
    ),
    "ltx-2.5-spatial-upscaler-x2": (
        995_778_752,
        "eb5a71fe4068ee87ccdb1c3aa635e547ca76bd2d30ae20ae889f2c325c0677e8",
    ),
    "ltx-2.5-22b-distilled-int8": (
        21_504_034_224,
        "c4279eeff115cbeaca494bd2183e7d768c38fe85a184dc6afbb7159157c44334",
    ),
    "gemma-4-12b-ltx-2.5-int8": (
        15_372_969_374,
        "6ce688a0aa98a5fa36a9f1e6c3f42152a498cc2b53ee8c15674c64244f91487f",
    ),
}


@pytest.mark.parametrize(("name", "path"), LTX25_FILES.items())
def test_ltx25_files_are_in_the_gated_repository_under_their_paths(name, path):
    a = BUILTIN.artifacts[name]
    assert (a.repo, [f.name for f in a.files], a.generation) == (LTX25_REPO, [path], "2.5")
    assert a.gated is True
    assert a.licence == "LTX-2.x Community License Agreement"


@pytest.mark.parametrize(("name", "expected"), LTX25_EXACT.items())
def test_ltx25_exact_sizes_and_hashes(name, expected):
    (spec,) = BUILTIN.artifacts[name].files
    assert (spec.size, spec.sha256, spec.exact) == (*expected, True)


def test_ltx25_split_files_have_their_own_kinds():
    kinds = {n: BUILTIN.artifacts[n].kind for n in LTX25_FILES}
    assert kinds["ltx-2.5-22b-distilled"] == "transformer"
    assert kinds["gemma-4-12b-ltx-2.5"] == "text-encoder"
    assert not BUILTIN.artifacts["gemma-4-12b-ltx-2.5"].is_directory
    assert kinds["ltx-2.5-video-vae"] == kinds["ltx-2.5-video-vae-conv"] == "video-vae"
    assert kinds["ltx-2.5-audio-vae"] == "audio-vae"
    assert kinds["ltx-2.5-duration-head"] == "duration-head"


def test_the_ltx25_distilled_quick_start_is_about_66_gib():
    needed = BUILTIN.required("distilled", "2.5")
    chosen = {r.role: r.candidates[0].name for r in needed}
    assert chosen == {
        "distilled-checkpoint": "ltx-2.5-22b-distilled",
        "spatial-upsampler": "ltx-2.5-spatial-upscaler-x2",
        "text-encoder": "gemma-4-12b-ltx-2.5",
        "video-vae": "ltx-2.5-video-vae",
        "audio-vae": "ltx-2.5-audio-vae",
    }
    total = sum(r.candidates[0].size for r in needed)
    # 42.02 GB + 26.26 GB + 1,472,223,346 + 364,866,540 + 995,778,752 B ("roughly 66 GiB")
    assert total == 42_020_000_000 + 26_260_000_000 + 1_472_223_346 + 364_866_540 + 995_778_752
    assert 65.5 < total / 2**30 < 66.5


@pytest.mark.parametrize(
    ("pipeline", "roles"),
    [
        ("two-stage", {"ltx-2.5-22b-dev", "ltx-2.5-22b-distilled-lora-450"}),
        ("one-stage", {"ltx-2.5-22b-dev"}),
        ("t2a", {"ltx-2.5-22b-dev"}),
    ],
)
def test_ltx25_pipelines_need_their_split_files(pipeline, roles):
    needed = {r.role: r.candidates[0].name for r in BUILTIN.required(pipeline, "2.5")}
    assert roles <= set(needed.values())
    assert needed["text-encoder"] == "gemma-4-12b-ltx-2.5"
    assert needed["audio-vae"] == "ltx-2.5-audio-vae"
    # text-to-audio decodes no video (ltx-2.5.md §1)
    assert ("video-vae" in needed) == (pipeline != "t2a")
    assert all(BUILTIN.artifacts[n].generation == "2.5" for n in needed.values())


def test_the_duration_head_is_optional_for_auto_duration_pipelines_only():
    (head,) = BUILTIN.optional("distilled", "2.5")
    assert [a.name for a in head.candidates] == ["ltx-2.5-duration-head"]
    assert "duration-head" not in {r.role for r in BUILTIN.required("distilled", "2.5")}
    assert BUILTIN.optional("ic-lora", "2.5") == []
    assert BUILTIN.optional("distilled", "2.3") == []


def test_ltx25_listing_excludes_gemma_3_and_other_generations():
    names = {a.name for a in BUILTIN.of_generation("2.5")}
    assert set(LTX25_FILES) <= names
    assert not {"gemma-3-12b", "gemma-3-12b-lightricks", "ltx-2.3-22b-dev"} & names
    assert {"gemma-3-12b", "gemma-3-12b-lightricks"} <= {
        a.name for a in BUILTIN.of_generation("2.3")
    }


@pytest.mark.parametrize("pipeline", [p for p in PIPELINES if p != "ic-lora"])
def test_every_pipeline_can_plan_a_25_pull_from_25_files_only(pipeline):
    needed = BUILTIN.required(pipeline, "2.5")
    assert [r.role for r in needed] == list(PIPELINES[pipeline].roles_for("2.5"))
    assert {a.generation for r in needed for a in r.candidates} == {"2.5"}
    assert [r.candidates[0].kind for r in needed].count("transformer") == 1


def test_no_25_ic_lora_for_the_ic_lora_pipeline_is_one_line_naming_the_listing():
    with pytest.raises(ConfigError, match=r"no ic-lora for LTX-2\.5") as caught:
        BUILTIN.required("ic-lora", "2.5")
    assert "ltx2 models available -g 2.5" in caught.value.hint
