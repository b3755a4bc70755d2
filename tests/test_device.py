"""Device and dtype selection, tested on the CPU (CUDA's presence is mocked where needed)."""

from __future__ import annotations

from unittest import mock

import pytest
import torch

from iterlens.config import ConfigError, validate
from iterlens.device import readout_rtol, resolve_device, resolve_dtype, uses_gpu


def test_auto_is_cpu_without_cuda_and_cuda_with_it():
    with mock.patch("torch.cuda.is_available", return_value=False):
        assert resolve_device("auto") == torch.device("cpu")
        assert not uses_gpu("auto")
    with mock.patch("torch.cuda.is_available", return_value=True):
        assert resolve_device("auto") == torch.device("cuda")
        assert uses_gpu("auto")


def test_explicit_cuda_refused_where_absent_but_still_asks_for_a_gpu_job():
    with mock.patch("torch.cuda.is_available", return_value=False):
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
        assert uses_gpu("cuda:1")  # a login node without a GPU submits GPU jobs
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="only cpu, cuda"):
        resolve_device("meta")


def test_dtype_auto_is_float32_on_cpu_and_half_on_gpu():
    assert resolve_dtype("auto", torch.device("cpu")) is torch.float32
    with mock.patch("torch.cuda.is_bf16_supported", return_value=True):
        assert resolve_dtype("auto", torch.device("cuda")) is torch.bfloat16
    with mock.patch("torch.cuda.is_bf16_supported", return_value=False):
        assert resolve_dtype("auto", torch.device("cuda")) is torch.float16
    assert resolve_dtype("float16", torch.device("cpu")) is torch.float16
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("float8", torch.device("cpu"))


def test_readout_tolerance_grows_with_lower_precision():
    assert readout_rtol(torch.float32) < readout_rtol(torch.float16) < readout_rtol(torch.bfloat16)
    # each is at least a few units in the last place of the dtype
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        assert readout_rtol(dtype) >= 4 * torch.finfo(dtype).eps


def test_config_device_defaults_and_validation():
    cfg = validate({})
    assert cfg["device"] == "auto"
    assert (cfg["extract"]["dtype"], cfg["extract"]["store_dtype"]) == ("auto", "float32")
    assert [m["controls"]["seeds"] for m in cfg["models"]] == [1, 3, 3]
    with pytest.raises(ConfigError, match="device"):
        validate({"device": "tpu"})
    with pytest.raises(ConfigError, match="store_dtype"):
        validate({"extract": {"store_dtype": "int8"}})
