"""Training the engine's boosters through lightgbm.dask on a local two-worker cluster:
forecasts close to the single-machine fit, the usual save/load, and a hung cluster
failing with a clear error within the timeout instead of stalling."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _demand import FAST, make_demand
from distributed import Client, LocalCluster

from nightcast.config import get_settings
from nightcast.forecasting import ForecastModel
from nightcast.forecasting.distributed import DaskTrainer, DaskTrainingError
from nightcast.forecasting.metrics import wape
from nightcast.pipeline import retrain
from nightcast.pipeline.forecast import STATIC_COLS

H = 7
PARAMS = {**FAST, "num_iterations": 40}


def local_cluster() -> LocalCluster:
    return LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )  # fmt: skip


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with local_cluster() as c:
        yield c


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = make_demand(n_series=24, n_days=220, seed=3)
    cut = df["ds"].max() - pd.Timedelta(days=H)
    return df[df["ds"] <= cut], df


def actuals(df: pd.DataFrame, pred: pd.DataFrame) -> np.ndarray:
    got = pred[["unique_id", "ds"]].merge(df[["unique_id", "ds", "y"]], how="left")
    return got["y"].fillna(0.0).to_numpy()


def test_dask_fit_forecasts_like_the_single_machine_fit(
    cluster: LocalCluster, split: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    train, full = split
    trainer = DaskTrainer(cluster.scheduler_address, timeout_s=60)
    dask_model = ForecastModel(PARAMS, horizon=H, trainer=trainer).fit(train)
    local_model = ForecastModel(PARAMS, horizon=H).fit(train)
    on_dask, local = dask_model.predict(train), local_model.predict(train)

    q = on_dask[["p10", "p50", "p90"]].to_numpy()
    assert np.isfinite(q).all() and (q >= 0).all()
    assert (np.diff(q, axis=1) >= 0).all()
    # Data-parallel histograms differ slightly from one machine's: close, not equal.
    diff = np.abs(on_dask["p50"] - local["p50"]).sum() / local["p50"].sum()
    assert diff < 0.15, diff
    assert abs(on_dask["p50"].sum() / local["p50"].sum() - 1) < 0.05
    y = actuals(full, on_dask)
    assert wape(y, on_dask["p50"]) < wape(y, local["p50"]) + 0.05
    assert wape(y, on_dask["p50"]) < 0.5  # a strong weekly pattern: easy to forecast

    # The Dask-trained boosters are ordinary ones: save/load predict identically.
    restored = ForecastModel.load(dask_model.save(tmp_path / "m"))
    pd.testing.assert_frame_equal(restored.predict(train), on_dask)


def test_weekly_retrain_trains_the_nightly_model_on_the_cluster(cluster: LocalCluster) -> None:
    history = make_demand(n_series=12, n_days=150, seed=6, promo=True).assign(
        category="C0", location_type="store"
    )
    settings = get_settings().model_copy(
        update={"dask_address": cluster.scheduler_address, "horizon_days": H}
    )
    model = retrain._train_dask(history, settings, cluster.scheduler_address)
    assert isinstance(model.trainer, DaskTrainer)
    assert model.trainer.address == cluster.scheduler_address
    assert set(STATIC_COLS) <= set(model.feature_names) and "on_promo" in model.feature_names
    future = (
        history[["unique_id"]]
        .drop_duplicates()
        .merge(
            pd.DataFrame({"ds": pd.date_range(history["ds"].max(), periods=H + 1)[1:]}), how="cross"
        )
    )
    pred = model.predict(history, future.assign(on_promo=0.0))
    assert len(pred) == 12 * H and (pred["p50"] >= 0).all() and pred["p50"].sum() > 0


def test_hung_cluster_fails_within_the_timeout() -> None:
    train = make_demand(n_series=8, n_days=120, seed=4)
    with local_cluster() as c, Client(c, set_as_default=False) as blocker:
        # Occupy both single-thread workers: training tasks queue behind them, as
        # behind a hung worker.
        busy = [
            blocker.submit(time.sleep, 60, workers=[w], pure=False, key=f"hang-{i}")
            for i, w in enumerate(blocker.scheduler_info()["workers"])
        ]
        trainer = DaskTrainer(c.scheduler_address, timeout_s=2)
        started = time.monotonic()
        with pytest.raises(
            DaskTrainingError, match=r"did not finish within 2s.*NIGHTCAST_DASK_TIMEOUT_S"
        ):
            ForecastModel(PARAMS, horizon=H, trainer=trainer).fit(train)
        assert time.monotonic() - started < 15  # not the 60 s the workers are stuck for
        blocker.cancel(busy, force=True)


def test_unreachable_scheduler_names_the_setting() -> None:
    trainer = DaskTrainer("tcp://127.0.0.1:9", timeout_s=5, connect_timeout_s=1)
    train = make_demand(n_series=4, n_days=60, seed=5)
    with pytest.raises(
        DaskTrainingError, match=r"cannot reach the Dask scheduler.*NIGHTCAST_DASK_ADDRESS"
    ):
        ForecastModel(PARAMS, horizon=H, trainer=trainer).fit(train)


def test_settings_read_the_dask_address_and_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NIGHTCAST_DASK_ADDRESS", raising=False)
    monkeypatch.delenv("NIGHTCAST_DASK_TIMEOUT_S", raising=False)
    assert get_settings().dask_address is None  # unset: the retrain trains in the task
    assert get_settings().dask_timeout_s == 3600.0
    monkeypatch.setenv("NIGHTCAST_DASK_ADDRESS", "tcp://scheduler:8786")
    monkeypatch.setenv("NIGHTCAST_DASK_TIMEOUT_S", "900")
    assert (get_settings().dask_address, get_settings().dask_timeout_s) == (
        "tcp://scheduler:8786",
        900.0,
    )
    with pytest.raises(ValueError, match="NIGHTCAST_DASK_TIMEOUT_S must be > 0"):
        DaskTrainer("tcp://scheduler:8786", timeout_s=0)
