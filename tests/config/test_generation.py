"""GenerationSettings: reference defaults per pipeline and validation before anything loads.

Expected numbers are the official pipelines' guidance presets and CLI defaults.
"""

from __future__ import annotations

import dataclasses

import pytest

from ltx2cli.config.generation import (
    DEFAULT_NEGATIVE_PROMPT,
    GenerationSettings,
    adapt_to_model_version,
)
from ltx2cli.config.resolve import resolve
from ltx2cli.errors import ConfigError

# The official LTX_2_3_PARAMS: cfg, stg, stg_blocks, rescale, modality, skip
LTX_2_3_VIDEO = {
    "cfg_scale": 3.0,
    "stg_scale": 1.0,
    "stg_blocks": (28,),
    "rescale_scale": 0.7,
    "modality_scale": 3.0,
    "skip_step": 0,
}
LTX_2_3_AUDIO = {**LTX_2_3_VIDEO, "cfg_scale": 7.0}
# The official LTX_2_3_HQ_PARAMS
HQ_VIDEO = {**LTX_2_3_VIDEO, "stg_scale": 0.0, "stg_blocks": (), "rescale_scale": 0.45}
HQ_AUDIO = {**HQ_VIDEO, "cfg_scale": 7.0, "rescale_scale": 1.0}
FRAME_STEP = 8  # the VAE compresses time by 8 after the first frame
NEUTRAL = {
    "cfg_scale": 1.0,
    "stg_scale": 0.0,
    "stg_blocks": (),
    "rescale_scale": 0.0,
    "modality_scale": 1.0,
    "skip_step": 0,
}


@pytest.mark.parametrize(
    ("pipeline", "height", "width", "steps", "video", "audio"),
    [
        ("two-stage", 1024, 1536, 30, LTX_2_3_VIDEO, LTX_2_3_AUDIO),
        ("one-stage", 512, 768, 30, LTX_2_3_VIDEO, LTX_2_3_AUDIO),
        ("two-stage-hq", 1088, 1920, 15, HQ_VIDEO, HQ_AUDIO),
        ("distilled", 1024, 1536, 8, NEUTRAL, NEUTRAL),
    ],
)
def test_pipeline_defaults_match_reference(pipeline, height, width, steps, video, audio):
    settings = GenerationSettings.for_pipeline(pipeline)
    assert (settings.height, settings.width, settings.steps) == (height, width, steps)
    assert (settings.num_frames, settings.frame_rate, settings.seed) == (121, 24.0, 10)
    assert settings.guidance("video") == video
    assert settings.guidance("audio") == audio


def test_plain_constructor_is_the_two_stage_default():
    assert GenerationSettings() == GenerationSettings.for_pipeline("two-stage")
    assert GenerationSettings().duration == pytest.approx(121 / 24)


def test_default_negative_prompt_lists_visual_and_audio_defects():
    items = [item.strip() for item in DEFAULT_NEGATIVE_PROMPT.split(",")]
    assert 50 <= len(items) <= 70  # "about 60 items"
    assert {"blurry", "flickering", "silent or muted audio", "robotic voice"} <= set(items)
    assert GenerationSettings().negative_prompt == DEFAULT_NEGATIVE_PROMPT


@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [
        ({"num_frames": 120}, "num_frames", "use 113 or 121"),
        ({"num_frames": 0}, "num_frames", "8k+1"),
        ({"height": 1000}, "height", "use 960 or 1024"),
        ({"width": 96}, "width", "multiple of 64 for the two-stage pipeline"),
        ({"pipeline": "one-stage", "height": 1000}, "height", "use 992 or 1024"),
        ({"pipeline": "distilled", "width": 800}, "width", "use 768 or 832"),
        ({"frame_rate": 0.0}, "frame_rate", "greater than 0"),
        ({"steps": 0}, "steps", "at least 1"),
        ({"seed": -1}, "seed", "at least 0"),
        ({"quantization": "fp4-cast"}, "quantization", "fp8-cast"),
        ({"offload": "disk"}, "offload", "none, model, block"),
        ({"dtype": "bf16"}, "dtype", "bfloat16"),
        ({"pipeline": "two-stages"}, "pipeline", "did you mean 'two-stage'"),
        ({"device": "gpu"}, "device", "'gpu'"),
        ({"video_rescale_scale": 1.5}, "video_rescale_scale", "outside 0..1"),
        ({"audio_cfg_scale": -1.0}, "audio_cfg_scale", "at least 0"),
        ({"video_stg_blocks": (-1,)}, "video_stg_blocks", "at least 0"),
        ({"image_crf": 52}, "image_crf", "outside 0..51"),
        ({"model": " "}, "model", "empty"),
    ],
)
def test_invalid_values_fail_with_the_field_and_a_fix(changes, key, fragment):
    fields = dict(changes)
    pipeline = fields.pop("pipeline", "two-stage")
    with pytest.raises(ConfigError) as info:
        GenerationSettings.for_pipeline(pipeline, **fields)
    error = info.value
    assert error.exit_code == 2
    assert error.message.startswith(f"{key}:")
    assert fragment in f"{error.message} {error.hint}"


def accepts(**fields) -> bool:
    try:
        GenerationSettings(**fields)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("k", [0, 1, 15, 32])
def test_exactly_the_frame_counts_8k_plus_1_are_valid(k):
    valid = FRAME_STEP * k + 1
    assert accepts(num_frames=valid)
    for neighbour in (valid - 1, valid + 1, valid + FRAME_STEP // 2):
        with pytest.raises(ConfigError, match=rf"num_frames: {neighbour} is not 8k\+1"):
            GenerationSettings(num_frames=neighbour)


@pytest.mark.parametrize(
    ("device", "valid"),
    [
        ("auto", True),
        ("cpu", True),
        ("mps", True),
        ("cuda", True),
        ("cuda:1", True),
        ("cuda:", False),
        ("cuda:x", False),
        ("CPU", False),
        ("cpu ", False),
        ("tpu", False),
    ],
)
def test_device_names(device, valid):
    assert accepts(device=device) is valid


def test_one_stage_accepts_multiples_of_32_that_two_stage_rejects():
    size = 96
    assert GenerationSettings.for_pipeline("one-stage", height=size).height == size
    with pytest.raises(ConfigError):
        GenerationSettings.for_pipeline("two-stage", height=size)


@pytest.mark.parametrize(
    ("version", "pipeline", "steps", "blocks"),
    [
        ("2.0.0", "two-stage", 40, (29,)),
        ("", "one-stage", 40, (29,)),  # unreadable metadata: LTX-2 defaults, as the reference
        ("2.3.0", "two-stage", 30, (28,)),
        ("2.4", "two-stage", 30, (28,)),
        ("2.0.0", "two-stage-hq", 15, ()),  # HQ always uses the 2.3 HQ values
    ],
)
def test_model_version_swaps_defaults_only(version, pipeline, steps, blocks):
    resolved = resolve(GenerationSettings, flags={"pipeline": pipeline})
    adapted = adapt_to_model_version(resolved, version).settings
    assert (adapted.steps, adapted.video_stg_blocks, adapted.audio_stg_blocks) == (
        steps,
        blocks,
        blocks,
    )


def test_model_version_keeps_values_the_user_chose():
    chosen_steps = 12
    resolved = resolve(GenerationSettings, flags={"steps": chosen_steps})
    adapted = adapt_to_model_version(resolved, "2.0").settings
    assert adapted.steps == chosen_steps
    assert adapted.video_stg_blocks == (29,)
    assert dataclasses.replace(adapted, video_stg_blocks=(28,), audio_stg_blocks=(28,)) == (
        resolved.settings
    )


def test_compat_is_a_setting_like_the_others():
    assert GenerationSettings().compat == "current"
    from_env = resolve(GenerationSettings, environ={"LTX2_COMPAT": "1.0.0"})
    assert from_env.settings.compat == "1.0.0"
    assert from_env.sources["compat"] == "env:LTX2_COMPAT"
    with pytest.raises(ConfigError, match=r"compat: '1\.1' is not one of current, 1\.0\.0"):
        GenerationSettings(compat="1.1")
