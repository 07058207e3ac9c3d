"""Choose the LightGBM device: 'cpu', 'gpu' (OpenCL), 'cuda', or 'auto'.

Two things decide whether a GPU device can run: the installed LightGBM (the PyPI
wheel has the OpenCL ``gpu`` learner; ``cuda`` needs a source build) and the
machine (an NVIDIA GPU for ``cuda``, an OpenCL platform for ``gpu``). Both are
checked with a one-round training run on 64 rows, once per process and device.

- ``auto`` takes the first that runs of cuda > gpu > cpu and logs one line
  saying what it chose and why (a warning when it falls back to the CPU).
- An explicit ``gpu``/``cuda`` that cannot run raises :class:`DeviceUnavailableError`:
  a deployment that asked for a GPU should not silently train 10x slower.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("nightcast.forecasting")

_DEVICES = ("cpu", "gpu", "cuda")
_GPU_ORDER = ("cuda", "gpu")  # preference of 'auto', best first
SETTING = "NIGHTCAST_LIGHTGBM_DEVICE"
_NOT_BUILT = "was not enabled in this build"  # LightGBM's message for a learner left out
CUDA_BUILD_HINT = (
    "pip install lightgbm --no-binary lightgbm --config-settings=cmake.define.USE_CUDA=ON "
    "(needs the CUDA toolkit; see docs/benchmarks.md 'GPU training benchmark')"
)


class DeviceUnavailableError(RuntimeError):
    """An explicitly requested LightGBM device cannot train on this machine."""


@dataclass(frozen=True)
class Probe:
    """Whether one LightGBM device trains here, and why (not)."""

    device: str
    ok: bool
    reason: str


def nvidia_gpus() -> int:
    """NVIDIA GPUs the driver exposes (device nodes; 0 without the driver)."""
    nodes = glob.glob("/dev/nvidia[0-9]*") or glob.glob("/proc/driver/nvidia/gpus/*")
    return len(nodes)


def opencl_platforms() -> int:
    """OpenCL platforms the ICD loader reports (0 without ``libOpenCL.so.1`` or ICDs)."""
    try:
        lib = ctypes.CDLL("libOpenCL.so.1")
    except OSError:
        return 0
    count = ctypes.c_uint(0)
    # clGetPlatformIDs(num_entries, platforms, num_platforms); -1001 = no ICD found.
    status = lib.clGetPlatformIDs(0, None, ctypes.byref(count))
    return int(count.value) if status == 0 else 0


def _train_once(device: str) -> None:
    """One boosting round on 64 rows with ``device_type=device``; raises when it cannot."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2))
    y = x[:, 0] + rng.normal(scale=0.1, size=64)
    params = {"device_type": device, "objective": "l2", "verbosity": -1, "num_threads": 1}
    lgb.train(params, lgb.Dataset(x, y, params={"verbosity": -1}), num_boost_round=1)


def _hardware(device: str) -> str | None:
    """What the machine lacks for ``device`` (None when the hardware is there)."""
    if device == "cuda" and not nvidia_gpus():
        return "no NVIDIA GPU (no /dev/nvidia0; in docker, use the `gpu` profile)"
    if device == "gpu" and not opencl_platforms():
        fix = (
            "; an NVIDIA GPU is present: add /etc/OpenCL/vendors/nvidia.icd"
            if nvidia_gpus()
            else ""
        )
        return f"no OpenCL platform (libOpenCL.so.1 with an ICD in /etc/OpenCL/vendors{fix})"
    return None


@functools.cache
def probe(device: str) -> Probe:
    """Can LightGBM train with ``device`` ('gpu' or 'cuda') here? Cached per process."""
    try:
        _train_once(device)
    except Exception as exc:  # LightGBMError, OpenCL/Boost.Compute/CUDA runtime errors
        msg = " ".join(str(exc).split())
        if _NOT_BUILT in msg:
            built = "a source build with CUDA" if device == "cuda" else "a build with USE_GPU"
            return Probe(
                device, False, f"the installed LightGBM has no {device} learner (needs {built})"
            )
        missing = _hardware(device)
        return Probe(device, False, missing or f"LightGBM {device} failed: {msg[:200]}")
    return Probe(device, True, f"LightGBM trained on {device}")


@functools.cache
def _auto() -> tuple[str, str]:
    """(device, why) for 'auto': the first of cuda > gpu that trains, else cpu."""
    reasons: list[str] = []
    for device in _GPU_ORDER:
        found = probe(device)
        if found.ok:
            skipped = f"; {'; '.join(reasons)}" if reasons else ""
            return device, f"{found.reason}{skipped}"
        reasons.append(f"{device}: {found.reason}")
    return "cpu", "; ".join(reasons)


def resolve_device(requested: str) -> str:
    """Return the LightGBM ``device_type`` to train with for ``requested``.

    'cpu' passes through; 'gpu'/'cuda' are checked and raise
    :class:`DeviceUnavailableError` when they cannot run; 'auto' picks the best
    that runs (cuda > gpu > cpu) and logs one line with the choice and the reason.
    """
    key = requested.lower().strip()
    if key == "cpu":
        return key
    if key in _DEVICES:
        found = probe(key)
        if not found.ok:
            hint = f"; to build it: {CUDA_BUILD_HINT}" if key == "cuda" else ""
            raise DeviceUnavailableError(
                f"LightGBM device {key!r} was requested ({SETTING} or params['device']) but "
                f"cannot train here: {found.reason}. Set {SETTING}=auto to use a GPU when "
                f"one works and the CPU otherwise, or {SETTING}=cpu{hint}"
            )
        return key
    if key != "auto":
        raise ValueError(
            f"LightGBM device={requested!r} ({SETTING}) is not one of {[*_DEVICES, 'auto']}"
        )
    device, why = _auto()
    if device == "cpu":
        log.warning("LightGBM device auto: no usable GPU, falling back to 'cpu' (%s)", why)
    else:
        log.info("LightGBM device auto: using %r (%s)", device, why)
    return device


def reset_device_cache() -> None:
    """Forget the probes (tests; a process whose drivers changed)."""
    probe.cache_clear()
    _auto.cache_clear()
