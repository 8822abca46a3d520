"""The training config: ltx-trainer's schema, shipped configs, one-line errors, --set."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ltx2cli.errors import ConfigError
from ltx2cli.train.config import FlexibleConfig, apply_override, load_config, parse_config

PRESETS = Path(__file__).resolve().parents[2] / "presets" / "train"
SHIPPED = sorted(PRESETS.glob("*.yaml"))
EXPECTED_SHIPPED = {
    "t2v_lora",
    "i2v_lora",
    "v2v_ic_lora",
    "a2v_lora",
    "v2a_lora",
    "t2a_lora",
    "video_extend_lora",
    "video_inpainting_lora",
    "t2v_lora_low_vram",
    "full_finetune_fsdp",
    "demo",
}
MINIMAL = {
    "model": {"model_path": "m.safetensors"},
    "lora": {},
    "data": {"preprocessed_data_root": "d"},
}


def test_every_required_config_is_shipped():
    assert {p.stem for p in SHIPPED} >= EXPECTED_SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_validates(path):
    config = load_config(path)
    assert config.model.training_mode in ("lora", "full")
    # The first line describes the config (it is what `presets list --train` shows).
    assert path.read_text().startswith("# ")


def test_reference_defaults():
    config = parse_config(MINIMAL)
    assert config.lora.rank == 64 and config.lora.alpha == 64
    assert config.lora.target_modules == ["to_k", "to_q", "to_v", "to_out.0"]
    assert config.training_strategy.name == "text_to_video"
    assert config.training_strategy.first_frame_conditioning_p == 0.1
    assert config.optimization.learning_rate == 5e-4 and config.optimization.steps == 3000
    assert config.optimization.scheduler_type == "linear"
    assert config.acceleration.mixed_precision_mode == "bf16"
    assert config.validation.video_dims == (960, 544, 89)
    assert config.validation.stg_blocks == [28]
    assert config.checkpoints.keep_last_n == 1 and config.checkpoints.precision == "bfloat16"
    assert config.flow_matching.timestep_sampling_mode == "shifted_logit_normal"
    assert config.seed == 42 and config.output_dir == "outputs"


def _with(path: str, value):
    data = copy.deepcopy(MINIMAL)
    node = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return data


FLEX_VIDEO = {"name": "flexible", "video": {"is_generated": True, "latents_dir": "latents"}}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            _with("model.model_pth", "x"),
            "unknown key 'model.model_pth' (did you mean 'model_path'?)",
        ),
        (_with("model.model_path", "https://x/y.safetensors"), "not a URL"),
        (
            _with("model.training_mode", "lora2"),
            "model.training_mode: 'lora2' is not one of lora, full",
        ),
        (_with("lora.rank", 1), "lora.rank: input should be greater than or equal to 2"),
        (_with("lora.dropout", 1.5), "lora.dropout: input should be less than or equal to 1"),
        (
            _with("training_strategy", {"name": "flexibel"}),
            "training_strategy.name: 'flexibel' is not one of text_to_video, video_to_video, "
            "flexible (did you mean 'flexible'?)",
        ),
        (
            _with(
                "training_strategy",
                {"name": "flexible", "video": {"is_generated": False, "latents_dir": "l"}},
            ),
            "at least one of video or audio needs is_generated: true",
        ),
        (
            _with(
                "training_strategy",
                {
                    "name": "flexible",
                    "audio": {
                        "is_generated": True,
                        "latents_dir": "a",
                        "conditions": [{"type": "spatial_crop", "spatial_region": [0, 0, 32, 32]}],
                    },
                },
            ),
            "the audio modality cannot use a spatial_crop condition",
        ),
        (
            _with(
                "training_strategy",
                {
                    **FLEX_VIDEO,
                    "video": {**FLEX_VIDEO["video"], "conditions": [{"type": "prefix"}]},
                },
            ),
            "missing required key 'training_strategy.video.conditions[0].temporal_boundary'",
        ),
        (
            _with(
                "training_strategy",
                {
                    **FLEX_VIDEO,
                    "video": {
                        **FLEX_VIDEO["video"],
                        "conditions": [{"type": "first_frame", "probability": 1.5}],
                    },
                },
            ),
            "training_strategy.video.conditions[0].probability: input should be less than or "
            "equal to 1",
        ),
        (_with("optimization.optimizer_type", "adam"), "(did you mean 'adamw'?)"),
        (_with("optimization.scheduler_type", "cosin"), "(did you mean 'cosine'?)"),
        (
            _with("optimization.steps", 0),
            "optimization.steps: input should be greater than or equal to 1",
        ),
        (
            _with("acceleration.quantization", "int3-quanto"),
            "acceleration.quantization: 'int3-quanto'",
        ),
        (_with("data.num_dataloader_workers", -1), "data.num_dataloader_workers"),
        (
            _with(
                "validation.samples",
                [
                    {
                        "prompt": "p",
                        "conditions": [{"type": "prefix", "video": "v.mp4", "num_frames": 10}],
                    }
                ],
            ),
            "validation.samples[0].conditions[0]: a video prefix needs 8k+1 frames",
        ),
        (
            _with(
                "validation.samples",
                [
                    {
                        "prompt": "p",
                        "conditions": [
                            {"type": "video_to_audio", "video": "v.mp4"},
                            {"type": "audio_to_video", "audio": "a.wav"},
                        ],
                    }
                ],
            ),
            "video_to_audio and audio_to_video cannot be used together",
        ),
        (_with("validation.stg_mode", "stg_x"), "stg_mode 'stg_x' is not one of stg_av, stg_v"),
        (
            _with("validation.frame_rate", 0),
            "validation.frame_rate: input should be greater than 0",
        ),
        (
            _with("checkpoints.precision", "fp16"),
            "checkpoints.precision: 'fp16' is not one of bfloat16, float32",
        ),
        (_with("checkpoints.save_training_state", "all"), "checkpoints.save_training_state"),
        (_with("hub.push_to_hub", True), "push_to_hub needs hub_model_id"),
        (
            _with("flow_matching.timestep_sampling_mode", "logit"),
            "flow_matching.timestep_sampling_mode",
        ),
        (_with("wandb.projct", "x"), "unknown key 'wandb.projct' (did you mean 'project'?)"),
        ({k: v for k, v in MINIMAL.items() if k != "data"}, "missing required key 'data'"),
        (
            {k: v for k, v in MINIMAL.items() if k != "lora"},
            "training_mode lora needs a lora section",
        ),
    ],
)
def test_config_errors_name_the_key_and_fix(data, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="my.yaml")
    assert info.value.message.startswith("my.yaml: ")
    assert expected in info.value.message
    assert "\n" not in info.value.message
    assert info.value.hint


def test_legacy_validation_fields_migrate():
    data = _with(
        "validation",
        {
            "prompts": ["a", "b"],
            "images": ["a.png", "b.png"],
            "guidance_scale": 4.0,
            "stg_mode": "stg_v",
            "stg_scale": 0.5,
        },
    )
    v = parse_config(data).validation
    assert [s.prompt for s in v.samples] == ["a", "b"]
    assert v.samples[1].conditions[0].image_or_video == "b.png"
    assert (v.video_cfg_scale, v.audio_cfg_scale) == (4.0, 4.0)
    assert (v.video_stg_scale, v.audio_stg_scale) == (0.5, 0.0)


def test_set_overrides_nested_keys_lists_and_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "training_strategy": FLEX_VIDEO}))
    config = load_config(
        path,
        [
            "optimization.steps=12",
            "lora.target_modules=[to_q, to_v]",
            "training_strategy.video.conditions=[{type: first_frame, probability: 0.25}]",
            "validation.interval=null",
        ],
    )
    assert config.optimization.steps == 12
    assert config.lora.target_modules == ["to_q", "to_v"]
    assert isinstance(config.training_strategy, FlexibleConfig)
    assert config.training_strategy.video.conditions[0].probability == 0.25
    assert config.validation.interval is None


@pytest.mark.parametrize("item", ["optimization.steps", "=3", "model.model_path.x=1"])
def test_bad_set_is_a_one_line_error(item):
    with pytest.raises(ConfigError):
        apply_override(copy.deepcopy(MINIMAL), item)


def _ltx2(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "ltx2cli", *args], capture_output=True, text=True, cwd=cwd
    )


def test_presets_list_train_shows_shipped_configs():
    result = _ltx2("presets", "list", "--train")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines()[1:] if line.strip()}
    assert listed == {p.stem for p in SHIPPED}


def test_train_check_reports_bad_keys_and_missing_data(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    result = _ltx2("train", str(path), "--set", "lora.rnak=4", "--check")
    assert result.returncode == 2
    assert "unknown key 'lora.rnak' (did you mean 'rank'?)" in result.stderr
    assert "Traceback" not in result.stderr
    result = _ltx2("train", str(path), "--check", cwd=tmp_path)
    assert result.returncode == 2
    assert "data.preprocessed_data_root: no such folder" in result.stderr
    (tmp_path / "d" / "latents").mkdir(parents=True)
    (tmp_path / "d" / "conditions").mkdir()
    result = _ltx2("train", str(path), "--check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
