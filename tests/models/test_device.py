"""Device and dtype choice: "auto|cpu|cuda[:N]|mps", one-line errors, the default dtype."""

from __future__ import annotations

import pytest
import torch

from ltx2cli.errors import DeviceError, UsageError
from ltx2cli.models import device as device_module
from ltx2cli.models.device import default_dtype, device_report, resolve_device, resolve_dtype


def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def cuda_gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_auto_is_the_cpu_without_a_gpu(monkeypatch):
    no_gpu(monkeypatch)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch):
    no_gpu(monkeypatch)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    cuda_gpus(monkeypatch, 2)
    assert resolve_device("auto") == torch.device("cuda", 0)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("cpu", "cpu"), ("CPU", "cpu"), ("cuda", "cuda:0"), ("cuda:1", "cuda:1"), ("mps", "mps")],
)
def test_named_devices_that_exist(monkeypatch, spec, expected):
    cuda_gpus(monkeypatch, 2)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device(spec) == torch.device(expected)


def test_cuda_without_cuda_is_a_one_line_device_error(monkeypatch):
    no_gpu(monkeypatch)
    with pytest.raises(DeviceError) as error:
        resolve_device("cuda")
    text = one_line(error)
    assert "'cuda'" in text and "CUDA is not available" in text and "use cpu" in text


def test_cuda_index_beyond_the_visible_gpus(monkeypatch):
    cuda_gpus(monkeypatch, 1)
    with pytest.raises(DeviceError) as error:
        resolve_device("cuda:3")
    assert "'cuda:3' does not exist: 1 CUDA device(s) visible" in one_line(error)


def test_mps_on_a_machine_without_it(monkeypatch):
    no_gpu(monkeypatch)
    with pytest.raises(DeviceError) as error:
        resolve_device("mps")
    assert "'mps' is not available" in one_line(error)


@pytest.mark.parametrize("spec", ["gpu", "cpu:1", "mps:0", "cuda:x", ""])
def test_what_is_not_a_device_is_a_usage_error(spec):
    with pytest.raises(UsageError) as error:
        resolve_device(spec)
    assert f"device {spec!r} is not a device" in one_line(error)


def test_default_dtype_per_device(monkeypatch):
    assert default_dtype("cpu") == torch.float32
    assert default_dtype(torch.device("cuda", 0)) == torch.bfloat16
    monkeypatch.setattr(device_module, "_mps_bf16", lambda: True)
    assert default_dtype("mps") == torch.bfloat16
    monkeypatch.setattr(device_module, "_mps_bf16", lambda: False)
    assert default_dtype("mps") == torch.float32


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (None, torch.float32),
        ("auto", torch.float32),
        ("bfloat16", torch.bfloat16),
        ("float16", torch.float16),
        ("float32", torch.float32),
    ],
)
def test_resolve_dtype_on_the_cpu(name, expected):
    assert resolve_dtype(name, "cpu") == expected


def test_bad_dtypes(monkeypatch):
    with pytest.raises(UsageError) as error:
        resolve_dtype("int8", "cpu")
    assert "dtype 'int8' is not a dtype" in one_line(error)
    monkeypatch.setattr(device_module, "_mps_bf16", lambda: False)
    with pytest.raises(DeviceError) as error:
        resolve_dtype("bfloat16", "mps")
    assert "use float32" in one_line(error)


def test_report_names_the_auto_device_and_its_dtype(monkeypatch):
    no_gpu(monkeypatch)
    report = device_report()
    assert report["available"] is True and report["version"] == torch.__version__
    assert report["cuda_available"] is False and report["cuda_devices"] == []
    assert report["auto_device"] == "cpu" and report["default_dtype"] == "float32"
