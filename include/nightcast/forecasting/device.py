"""Choose the LightGBM device: 'cpu', 'gpu' (OpenCL), 'cuda', or 'auto' (probe GPU)."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("nightcast.forecasting")

_DEVICES = ("cpu", "gpu", "cuda")


def _probe_gpu() -> None:
    """Train a tiny model on the OpenCL GPU device; raises when there is none."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2))
    y = x[:, 0] + rng.normal(scale=0.1, size=64)
    params = {"device_type": "gpu", "objective": "l2", "verbosity": -1, "num_threads": 1}
    lgb.train(params, lgb.Dataset(x, y, params={"verbosity": -1}), num_boost_round=1)


def resolve_device(requested: str) -> str:
    """Return the LightGBM ``device_type`` to use.

    'auto' probes the GPU with a tiny training run and falls back to 'cpu' (with
    a logged warning) when that fails; explicit values are passed through.
    """
    key = requested.lower().strip()
    if key in _DEVICES:
        return key
    if key != "auto":
        raise ValueError(f"device={requested!r} is not one of {[*_DEVICES, 'auto']}")
    try:
        _probe_gpu()
    except Exception as exc:  # LightGBMError, OpenCL/Boost errors, missing drivers
        log.warning("LightGBM GPU probe failed (%s); falling back to device 'cpu'", exc)
        return "cpu"
    log.info("LightGBM GPU probe succeeded; using device 'gpu'")
    return "gpu"
