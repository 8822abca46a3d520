"""Precedence: built-in defaults < preset < LTX2_* environment < flags, one layer at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ltx2cli.config.generation import GenerationSettings
from ltx2cli.config.presets import list_presets
from ltx2cli.config.resolve import resolve
from ltx2cli.errors import ConfigError
from ltx2cli.hub.catalog import DEMO_MODEL

PRESET_HEIGHT = 512
ENV_HEIGHT = 768
FLAG_HEIGHT = 1280
# The demo preset must run "on any CPU in seconds" (README): a thumbnail, a few steps.
DEMO_MAX_PIXELS = 128 * 128
DEMO_MAX_STEPS = 8


def write_preset(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_no_layers_gives_the_defaults():
    resolved = resolve(GenerationSettings)
    assert resolved.settings == GenerationSettings()
    assert set(resolved.sources.values()) == {"default"}
    assert resolved.explicit() == {}


def test_preset_overrides_defaults(tmp_path):
    path = write_preset(tmp_path, "mine", f"description: x\nheight: {PRESET_HEIGHT}\n")
    resolved = resolve(GenerationSettings, preset=path)
    assert resolved.settings.height == PRESET_HEIGHT
    assert resolved.sources["height"] == "preset:mine"
    assert resolved.sources["width"] == "default"
    assert resolved.explicit() == {"height": PRESET_HEIGHT}


def test_environment_overrides_preset(tmp_path):
    path = write_preset(tmp_path, "mine", f"height: {PRESET_HEIGHT}\n")
    environ = {"LTX2_HEIGHT": str(ENV_HEIGHT)}
    resolved = resolve(GenerationSettings, preset=path, environ=environ)
    assert resolved.settings.height == ENV_HEIGHT
    assert resolved.sources["height"] == "env:LTX2_HEIGHT"
    assert resolved.environment == environ


def test_flags_override_environment(tmp_path):
    path = write_preset(tmp_path, "mine", f"height: {PRESET_HEIGHT}\n")
    resolved = resolve(
        GenerationSettings,
        preset=path,
        environ={"LTX2_HEIGHT": str(ENV_HEIGHT)},
        flags={"height": FLAG_HEIGHT, "width": None},
    )
    assert resolved.settings.height == FLAG_HEIGHT
    assert resolved.sources["height"] == "flag:--height"
    assert resolved.sources["width"] == "default"  # None means "flag not given"


def test_environment_values_are_parsed_to_field_types():
    environ = {
        "LTX2_STEPS": "12",
        "LTX2_FRAME_RATE": "25",
        "LTX2_ENHANCE_PROMPT": "true",
        "LTX2_VIDEO_STG_BLOCKS": "3,7",
        "LTX2_DEVICE": "cpu",
        "LTX2_HOME": "/elsewhere",  # not a field: ignored
        "LTX2_DEBUG": "1",
    }
    settings = resolve(GenerationSettings, environ=environ).settings
    assert (settings.steps, settings.frame_rate, settings.enhance_prompt) == (12, 25.0, True)
    assert settings.video_stg_blocks == (3, 7)
    assert settings.device == "cpu"


@pytest.mark.parametrize(
    ("layer", "expected"),
    [("preset", "preset:fast"), ("env", "env:LTX2_PIPELINE"), ("flag", "flag:--pipeline")],
)
def test_chosen_pipeline_brings_its_defaults_from_any_layer(layer, expected):
    kwargs = {
        "preset": {"preset": "fast"},
        "env": {"environ": {"LTX2_PIPELINE": "distilled"}},
        "flag": {"flags": {"pipeline": "distilled"}},
    }[layer]
    resolved = resolve(GenerationSettings, **kwargs)
    assert resolved.settings == GenerationSettings.for_pipeline("distilled")
    assert resolved.sources["pipeline"] == expected
    assert resolved.sources["steps"] == "default"


@pytest.mark.parametrize(
    ("layer", "origin"),
    [
        ("preset", "preset 'bad'"),
        ("env", "environment variable LTX2_NUM_FRAMES"),
        ("flag", "flag --num-frames"),
    ],
)
def test_invalid_value_error_names_the_layer_it_came_from(tmp_path, layer, origin):
    kwargs = {
        "preset": {"preset": write_preset(tmp_path, "bad", "num_frames: 120\n")},
        "env": {"environ": {"LTX2_NUM_FRAMES": "120"}},
        "flag": {"flags": {"num_frames": 120}},
    }[layer]
    with pytest.raises(ConfigError) as info:
        resolve(GenerationSettings, **kwargs)
    assert "num_frames: 120 is not 8k+1" in info.value.message
    assert f"(from {origin})" in info.value.message
    assert info.value.hint == "use 113 or 121"


def test_a_later_layer_can_fix_an_earlier_invalid_value(tmp_path):
    path = write_preset(tmp_path, "odd", "num_frames: 120\n")
    fixed = 121
    resolved = resolve(GenerationSettings, preset=path, flags={"num_frames": fixed})
    assert resolved.settings.num_frames == fixed


def test_wrong_type_in_preset_names_the_file(tmp_path):
    path = write_preset(tmp_path, "typo", "steps: many\n")
    with pytest.raises(ConfigError) as info:
        resolve(GenerationSettings, preset=path)
    assert info.value.message == f"{path}: steps: expected an integer, got 'many'"


@pytest.mark.parametrize("preset", [p.name for p in list_presets()])
def test_every_shipped_preset_resolves_to_valid_settings(preset):
    found = next(p for p in list_presets() if p.name == preset)
    assert found.source == "built-in"
    assert found.error is None
    assert found.description
    resolved = resolve(GenerationSettings, preset=preset)
    assert resolved.settings.pipeline == found.values.get("pipeline", "two-stage")
    for key, value in found.values.items():
        assert resolved.sources[key] == f"preset:{preset}"
        expected = tuple(value) if isinstance(value, list) else value  # YAML has no tuples
        assert getattr(resolved.settings, key) == expected


@pytest.mark.parametrize(
    ("preset", "pipeline"),
    [("fast", "distilled"), ("balanced", "two-stage"), ("quality", "two-stage-hq")],
)
def test_named_presets_pick_their_pipeline(preset, pipeline):
    assert resolve(GenerationSettings, preset=preset).settings.pipeline == pipeline


def test_demo_preset_is_small_and_uses_the_demo_model():
    settings = resolve(GenerationSettings, preset="demo").settings
    assert settings.model == DEMO_MODEL
    assert settings.height * settings.width <= DEMO_MAX_PIXELS
    assert settings.steps <= DEMO_MAX_STEPS
    draft = resolve(GenerationSettings, preset="draft").settings
    balanced = resolve(GenerationSettings, preset="balanced").settings
    assert draft.height * draft.width * draft.num_frames < (
        balanced.height * balanced.width * balanced.num_frames
    )


# -- any schema: nested dataclasses merge key by key ------------------------------------------


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-4
    warmup: int = 100


@dataclass(frozen=True)
class Train:
    steps: int = 1000
    optim: Optim = field(default_factory=Optim)
    weights: dict[str, float] = field(default_factory=lambda: {"a": 1.0})


def test_nested_fields_merge_per_key_and_dict_fields_are_replaced(tmp_path):
    path = write_preset(tmp_path, "t", "optim:\n  lr: 0.001\nweights: {b: 2}\n")
    resolved = resolve(
        Train,
        preset=path,
        environ={"LTX2_STEPS": "5"},
        flags={"optim": {"warmup": 7}, "weights": None},
    )
    assert resolved.settings == Train(steps=5, optim=Optim(lr=0.001, warmup=7), weights={"b": 2.0})
    assert resolved.sources["optim.lr"] == "preset:t"
    assert resolved.sources["optim.warmup"] == "flag:--optim.warmup"
    assert resolved.sources["steps"] == "env:LTX2_STEPS"
    assert resolved.explicit() == {
        "optim.lr": 0.001,
        "optim.warmup": 7,
        "weights": {"b": 2.0},
        "steps": 5,
    }
