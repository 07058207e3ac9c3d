"""Train the engine's boosters on an existing Dask cluster (``lightgbm.dask``).

The design matrix is still built where :meth:`ForecastModel.fit` runs; each
booster's rows are then split into one partition per Dask worker and boosted
with LightGBM's data-parallel learner across the workers (each holds only its
share of the binned dataset). The result is a plain ``lgb.Booster``, so
``predict``/``save``/``load`` are unchanged. Every booster must finish within
``timeout_s``: a hung or lost worker fails the task with :class:`DaskTrainingError`
instead of stalling the night.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger("nightcast.forecasting")

ADDRESS_SETTING = "NIGHTCAST_DASK_ADDRESS"
TIMEOUT_SETTING = "NIGHTCAST_DASK_TIMEOUT_S"
CONNECT_TIMEOUT_S = 30.0
# Set per worker by lightgbm.dask (threads = the worker's nthreads), or chosen for
# the task's machine rather than the workers' (device: workers train on their CPUs).
_DROP = ("num_threads", "device", "device_type", "tree_learner", "num_machines", "machines")


class DaskTrainingError(RuntimeError):
    """Training on the Dask cluster failed, timed out, or the cluster is unreachable."""


@contextmanager
def dask_client(address: str, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> Iterator[Client]:
    """A client of the scheduler at ``address``; raises a clear error when unreachable."""
    from distributed import Client

    try:
        client = Client(address, timeout=connect_timeout_s, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise DaskTrainingError(
            f"cannot reach the Dask scheduler at {address!r} ({ADDRESS_SETTING}) within "
            f"{connect_timeout_s:.0f}s: {exc}. Start the cluster or unset {ADDRESS_SETTING} "
            "to train in the task"
        ) from exc
    try:
        yield client
    finally:
        client.close()


def _partitions(
    client: Client, x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None
) -> tuple[Any, Any, Any]:
    """Dask arrays of ``x``/``y``/``w``, one row block per worker, scattered to the workers."""
    import dask.array as da

    workers = list(client.scheduler_info()["workers"])
    if not workers:
        raise DaskTrainingError(
            f"the Dask cluster ({ADDRESS_SETTING}) has no workers: start some, or unset it"
        )
    bounds = np.linspace(0, len(y), min(len(workers), len(y)) + 1).astype(int)
    xs, ys, ws = [], [], []
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        # Pin block i to worker i so LightGBM really trains on every worker.
        parts = [x[lo:hi], y[lo:hi]] + ([] if w is None else [w[lo:hi]])
        futures = client.scatter(parts, workers=[workers[i]], direct=True)
        xs.append(da.from_delayed(futures[0], shape=(hi - lo, x.shape[1]), dtype=x.dtype))
        ys.append(da.from_delayed(futures[1], shape=(hi - lo,), dtype=y.dtype))
        if w is not None:
            ws.append(da.from_delayed(futures[2], shape=(hi - lo,), dtype=w.dtype))
    return da.concatenate(xs), da.concatenate(ys), (da.concatenate(ws) if ws else None)


def _fit(client: Client, params: dict[str, Any], data: lgb.Dataset) -> lgb.Booster:
    from lightgbm.dask import DaskLGBMRegressor

    x = np.asarray(data.data)
    y = np.asarray(data.label, dtype=np.float64)
    w = None if data.weight is None else np.asarray(data.weight, dtype=np.float64)
    dx, dy, dw = _partitions(client, x, y, w)
    est = DaskLGBMRegressor(client=client, **{k: v for k, v in params.items() if k not in _DROP})
    est.fit(
        dx,
        dy,
        sample_weight=dw,
        feature_name=data.feature_name,
        categorical_feature=data.categorical_feature,
    )
    return est.booster_


class DaskTrainer:
    """A :data:`nightcast.forecasting.model.Trainer` that boosts on a Dask cluster.

    Each call trains one booster (one quantile) on the cluster at ``address``
    and must finish within ``timeout_s`` seconds once connected (connecting is
    bounded by ``connect_timeout_s``).
    """

    def __init__(
        self, address: str, timeout_s: float = 3600.0, connect_timeout_s: float = CONNECT_TIMEOUT_S
    ) -> None:
        if not address:
            raise ValueError(f"{ADDRESS_SETTING} is empty: set it to the scheduler address")
        if timeout_s <= 0:
            raise ValueError(f"{TIMEOUT_SETTING} must be > 0 seconds, got {timeout_s}")
        self.address = address
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)

    def __call__(self, params: dict[str, Any], data: lgb.Dataset) -> lgb.Booster:
        t0 = time.perf_counter()
        # LightGBM's own socket timeout (minutes), so workers also give up on a lost peer.
        params = {**params, "time_out": max(1, math.ceil(self.timeout_s / 60))}
        result: dict[str, Any] = {}
        with dask_client(self.address, self.connect_timeout_s) as client:

            def work() -> None:
                try:
                    # lightgbm.dask waits on the current client, not the one it was given.
                    with client.as_current():
                        result["booster"] = _fit(client, params, data)
                except BaseException as exc:  # re-raised in the calling thread
                    result["error"] = exc

            # fit() blocks on the cluster with no deadline of its own: run it aside and,
            # on timeout, fail; closing the client releases its tasks on the cluster.
            worker = threading.Thread(target=work, name="nightcast-dask-fit", daemon=True)
            worker.start()
            worker.join(self.timeout_s)
            if worker.is_alive():
                raise DaskTrainingError(
                    f"Dask training of one booster ({params.get('objective')}, "
                    f"alpha={params.get('alpha')}) on {self.address} did not finish within "
                    f"{self.timeout_s:.0f}s ({TIMEOUT_SETTING}): a worker is hung or the "
                    f"cluster is too small. Check the workers, or raise {TIMEOUT_SETTING}"
                )
        if "error" in result:
            err = result["error"]
            raise DaskTrainingError(
                f"Dask training on {self.address} failed: {type(err).__name__}: {err}"
            ) from err
        log.info(
            "dask: trained %s booster on %s in %.2fs",
            params.get("objective"),
            self.address,
            time.perf_counter() - t0,
        )
        booster: lgb.Booster = result["booster"]
        return booster
