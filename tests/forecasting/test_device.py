"""LightGBM device choice: the auto probe (cuda > gpu > cpu), its CPU fallback, the
loud failure of an explicit GPU request that cannot run, and the per-process cache."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pandas as pd
import pytest
from _demand import FAST

from nightcast.forecasting import ForecastModel
from nightcast.forecasting import device as dev
from nightcast.forecasting.device import DeviceUnavailableError, resolve_device

# What LightGBM 4.7's PyPI wheel raises on a machine without a GPU.
NO_CUDA_BUILD = (
    "CUDA Tree Learner was not enabled in this build.\n"
    "Please recompile with CMake option -DUSE_CUDA=1 (NVIDIA GPUs) or -DUSE_ROCM=1 (AMD GPUs)"
)
NO_OPENCL = "No OpenCL device found"


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    # Faked probes must not leak into other tests' real ones (and vice versa).
    dev.reset_device_cache()
    yield
    dev.reset_device_cache()


def fake_machine(
    monkeypatch: pytest.MonkeyPatch, works: set[str], nvidia: int = 0, opencl: int = 0
) -> list[str]:
    """Make only the devices in ``works`` train; returns the log of probed devices."""
    probed: list[str] = []

    def train_once(device: str) -> None:
        probed.append(device)
        if device not in works:
            raise RuntimeError(NO_CUDA_BUILD if device == "cuda" else NO_OPENCL)

    monkeypatch.setattr(dev, "_train_once", train_once)
    monkeypatch.setattr(dev, "nvidia_gpus", lambda: nvidia)
    monkeypatch.setattr(dev, "opencl_platforms", lambda: opencl)
    return probed


def test_auto_on_this_machine_picks_a_device_that_trains(
    caplog: pytest.LogCaptureFixture, demand: pd.DataFrame
) -> None:
    with caplog.at_level(logging.INFO, logger="nightcast.forecasting"):
        chosen = resolve_device("auto")
    lines = [r for r in caplog.records if "device auto" in r.getMessage()]
    assert len(lines) == 1, caplog.text
    assert chosen in ("cpu", "gpu", "cuda")
    if chosen == "cpu":
        # Both GPU learners were tried and the line says why each was not used.
        assert "falling back to 'cpu'" in caplog.text
        assert "cuda:" in caplog.text and "gpu:" in caplog.text
        assert lines[0].levelno == logging.WARNING
    fitted = ForecastModel({**FAST, "num_iterations": 5, "device": "auto"}, horizon=7)
    assert len(fitted.fit(demand).predict(demand)) == 7 * demand["unique_id"].nunique()


def test_auto_without_gpu_falls_back_to_cpu_with_the_reasons(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_machine(monkeypatch, works=set())
    with caplog.at_level(logging.INFO, logger="nightcast.forecasting"):
        assert resolve_device("AUTO ") == "cpu"
    ours = [r for r in caplog.records if r.name == "nightcast.forecasting"]
    assert len(ours) == 1, caplog.text
    msg = ours[0].getMessage()
    assert "falling back to 'cpu'" in msg
    assert "cuda: the installed LightGBM has no cuda learner (needs a source build" in msg
    assert "gpu: no OpenCL platform" in msg


@pytest.mark.parametrize(
    ("works", "expected", "why"),
    [
        ({"cuda", "gpu"}, "cuda", "trained on cuda"),
        ({"gpu"}, "gpu", "cuda: the installed LightGBM has no cuda learner"),
    ],
)
def test_auto_prefers_cuda_then_gpu(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    works: set[str],
    expected: str,
    why: str,
) -> None:
    fake_machine(monkeypatch, works=works, nvidia=1, opencl=1)
    with caplog.at_level(logging.INFO, logger="nightcast.forecasting"):
        assert resolve_device("auto") == expected
    assert f"using {expected!r}" in caplog.text and why in caplog.text


def test_nvidia_gpu_without_opencl_icd_says_what_to_add(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_machine(monkeypatch, works=set(), nvidia=1, opencl=0)
    assert "add /etc/OpenCL/vendors/nvidia.icd" in dev.probe("gpu").reason


@pytest.mark.parametrize("device", ["gpu", "cuda"])
def test_explicit_gpu_that_cannot_run_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, demand: pd.DataFrame, device: str
) -> None:
    fake_machine(monkeypatch, works=set())
    with pytest.raises(DeviceUnavailableError) as err:
        resolve_device(device)
    msg = str(err.value)
    assert f"device {device!r} was requested (NIGHTCAST_LIGHTGBM_DEVICE" in msg
    assert "NIGHTCAST_LIGHTGBM_DEVICE=auto" in msg and "NIGHTCAST_LIGHTGBM_DEVICE=cpu" in msg
    if device == "cuda":
        assert "cmake.define.USE_CUDA=ON" in msg
    # The same error stops a fit instead of training on some other device.
    with pytest.raises(DeviceUnavailableError, match=device):
        ForecastModel({**FAST, "device": device}, horizon=7).fit(demand)


def test_explicit_gpu_that_runs_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_machine(monkeypatch, works={"gpu"}, opencl=1)
    assert resolve_device("gpu") == "gpu"


def test_unknown_device_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"NIGHTCAST_LIGHTGBM_DEVICE.*'cpu', 'gpu', 'cuda'"):
        resolve_device("tpu")


def test_probes_run_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    probed = fake_machine(monkeypatch, works={"gpu"}, opencl=1)
    calls: list[Callable[[], str]] = [
        lambda: resolve_device("auto"),
        lambda: resolve_device("gpu"),
        lambda: resolve_device("auto"),
        lambda: resolve_device("cpu"),
    ]
    assert [c() for c in calls] == ["gpu", "gpu", "gpu", "cpu"]
    assert probed == ["cuda", "gpu"]
    dev.reset_device_cache()
    assert resolve_device("auto") == "gpu"
    assert probed == ["cuda", "gpu", "cuda", "gpu"]
