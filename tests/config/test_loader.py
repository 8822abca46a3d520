"""The strict YAML loader: nested dataclasses, unknown keys, wrong types, files, env strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from ltx2cli.config.loader import build, load, parse_env, read_yaml
from ltx2cli.errors import ConfigError

DEFAULT_BETAS = (0.9, 0.99)
DEFAULT_STEPS = 10


@dataclass(frozen=True)
class Optimizer:
    lr: float
    betas: tuple[float, float] = DEFAULT_BETAS


@dataclass(frozen=True)
class Job:
    name: str
    optimizer: Optimizer
    steps: int = DEFAULT_STEPS
    mode: Literal["lora", "full"] = "lora"
    tags: list[str] = field(default_factory=list)
    output: Path | None = None
    weights: dict[str, float] = field(default_factory=dict)


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_builds_nested_dataclasses_with_converted_values(tmp_path):
    path = write(
        tmp_path,
        "name: run1\n"
        "optimizer:\n  lr: 1\n  betas: [0.8, 0.95]\n"
        "mode: full\n"
        "tags: [a, b]\n"
        "output: ~/out\n"
        "weights: {x: 2}\n",
    )
    job = load(Job, path)
    assert job == Job(
        name="run1",
        optimizer=Optimizer(lr=1.0, betas=(0.8, 0.95)),
        mode="full",
        tags=["a", "b"],
        output=Path.home() / "out",
        weights={"x": 2.0},
    )
    assert isinstance(job.optimizer.lr, float)
    assert job.steps == DEFAULT_STEPS


@pytest.mark.parametrize(
    ("data", "key", "suggestion"),
    [
        ({"name": "a", "optimizer": {"lr": 1.0}, "stpes": 3}, "'stpes'", "'steps'"),
        ({"name": "a", "optimizer": {"lr": 1.0, "betaz": [1, 2]}}, "'optimizer.betaz'", "'betas'"),
    ],
)
def test_unknown_key_is_an_error_with_did_you_mean(data, key, suggestion):
    with pytest.raises(ConfigError) as info:
        build(Job, data, source="job.yaml")
    assert f"unknown key {key}" in info.value.message
    assert f"did you mean {suggestion}?" in info.value.message
    assert info.value.message.startswith("job.yaml: ")


@pytest.mark.parametrize(
    ("key", "value", "shown", "expected"),
    [
        ("steps", "ten", "'ten'", "an integer"),
        ("steps", True, "True", "an integer"),
        ("steps", 1.5, "1.5", "an integer"),
        ("name", 5, "5", "a string"),
        ("mode", "half", "'half'", "one of lora, full"),
        ("tags", "a,b", "'a,b'", "a list of strings"),
        ("optimizer", 3, "3", "a mapping"),
        ("weights", [1], "a list", "a mapping"),
    ],
)
def test_wrong_type_names_key_value_and_expected_type(key, value, shown, expected):
    data = {"name": "a", "optimizer": {"lr": 1.0}, key: value}
    with pytest.raises(ConfigError) as info:
        build(Job, data)
    message = info.value.message
    assert key in message
    assert shown in message
    assert expected in message


def test_nested_wrong_type_uses_dotted_key():
    with pytest.raises(ConfigError) as info:
        build(Job, {"name": "a", "optimizer": {"lr": "fast"}})
    assert "optimizer.lr: expected a number, got 'fast'" in info.value.message


def test_fixed_length_tuple_checks_count():
    with pytest.raises(ConfigError, match="expected 2 values, got 3"):
        build(Job, {"name": "a", "optimizer": {"lr": 1.0, "betas": [1, 2, 3]}})


def test_missing_required_key_is_named():
    with pytest.raises(ConfigError, match="missing required key 'optimizer'"):
        build(Job, {"name": "a"})


def test_missing_file_names_the_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        read_yaml(missing)
    assert str(missing) in info.value.message


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    bad_line = 3  # the over-indented key
    path = write(tmp_path, "name: a\nsteps: 2\n  mode: full\ntags: []\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert info.value.message.startswith(f"{path}:{bad_line}: invalid YAML")
    assert "\n" not in info.value.message


def test_python_tags_are_refused_by_safe_load(tmp_path):
    marker = tmp_path / "pwned"
    path = write(tmp_path, f'x: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="invalid YAML"):
        read_yaml(path)
    assert not marker.exists()


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n"])
def test_top_level_must_be_a_mapping(tmp_path, text):
    with pytest.raises(ConfigError, match="expected a mapping"):
        read_yaml(write(tmp_path, text))


def test_empty_file_is_an_empty_mapping(tmp_path):
    assert read_yaml(write(tmp_path, "")) == {}


@pytest.mark.parametrize(
    ("tp", "text", "expected"),
    [
        (int, "12", 12),
        (float, "0.5", 0.5),
        (float, "3", 3.0),
        (bool, "yes", True),
        (bool, "0", False),
        (bool, "OFF", False),
        (tuple[int, ...], "28, 29", (28, 29)),
        (tuple[int, ...], "28 29", (28, 29)),
        (tuple[int, ...], "", ()),
        (int | None, "none", None),
        (int | None, "7", 7),
        (Literal["lora", "full"], "full", "full"),
        (str, "hello world", "hello world"),
        (Path, "~/x", Path.home() / "x"),
    ],
)
def test_parse_env_converts_strings_to_field_types(tp, text, expected):
    assert parse_env(tp, text, key="k", source="LTX2_K") == expected


@pytest.mark.parametrize(
    ("tp", "text", "expected"),
    [
        (int, "twelve", "expected an integer"),
        (float, "fast", "expected a number"),
        (bool, "maybe", "expected a boolean"),
        (tuple[int, ...], "1,x", "expected an integer"),
        (Literal["lora", "full"], "ful", "did you mean 'full'"),
    ],
)
def test_parse_env_errors_name_the_variable(tp, text, expected):
    with pytest.raises(ConfigError) as info:
        parse_env(tp, text, key="k", source="LTX2_K")
    assert "LTX2_K" in info.value.message
    assert expected in info.value.message
    assert info.value.hint == "fix LTX2_K or unset it"
