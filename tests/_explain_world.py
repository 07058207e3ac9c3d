"""A tiny warehouse with published forecasts, for the explanation stage and CLI tests.

Six series (3 items x 2 locations) of daily demand with a weekly pattern and
promotions, a registered champion trained on them, and run D's forecasts in
``forecast.forecasts`` (status published).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from nightcast.config import Settings, get_settings
from nightcast.forecasting import ForecastModel
from nightcast.forecasting.registry import save_and_register
from nightcast.pipeline.forecast import STATIC_COLS, future_frame, history_frame
from nightcast.pipeline.runs import warehouse
from nightcast.warehouse.base import Warehouse

RUN = date(2025, 3, 31)
HORIZON = 7
ITEMS = ["demo:I0", "demo:I1", "demo:I2"]
LOCATIONS = ["demo:L0", "demo:L1"]
FAST = {"num_iterations": 40, "learning_rate": 0.1, "num_leaves": 15, "num_threads": 1}


def _sales() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    days = pd.date_range(RUN - timedelta(days=119), RUN, freq="D")
    weekly = np.array([0.6, 0.7, 0.8, 1.0, 1.3, 1.8, 0.8])[days.dayofweek]
    frames = []
    for i, item in enumerate(ITEMS):
        for j, loc in enumerate(LOCATIONS):
            promo = rng.random(len(days)) < 0.1
            lam = (2 + 3 * i + j) * weekly * np.where(promo, 2.5, 1.0)
            frames.append(
                pd.DataFrame(
                    {
                        "item_id": item,
                        "location_id": loc,
                        "sales_date": days.date,
                        "quantity": rng.poisson(lam).astype(float),
                        "on_promo": promo,
                        "is_stockout": False,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _seed_marts(wh: Warehouse) -> None:
    wh.execute("create schema if not exists marts")
    wh.execute(
        "create table marts.fct_sales_daily (item_id varchar, location_id varchar, "
        "sales_date date, quantity double precision, on_promo boolean, is_stockout boolean)"
    )
    wh.insert_arrow("marts.fct_sales_daily", pa.Table.from_pandas(_sales(), preserve_index=False))
    wh.execute(
        "create table marts.dim_item (item_id varchar, item_name varchar, department varchar, "
        "category varchar, discontinue_date date)"
    )
    for i, item in enumerate(ITEMS):
        wh.execute(
            "insert into marts.dim_item values (?, ?, 'Food', ?, null)",
            [item, f"Item {i}", "Fruit" if i % 2 else "Veg"],
        )
    wh.execute(
        "create table marts.dim_location (location_id varchar, location_name varchar, "
        "location_type varchar, country varchar)"
    )
    for j, loc in enumerate(LOCATIONS):
        wh.execute(
            "insert into marts.dim_location values (?, ?, 'store', 'FR')", [loc, f"Shop {j}"]
        )
    wh.execute(
        "insert into raw.promotions values ('demo', 'demo:P1', 'demo:I1', null, ?, ?, 20, null, ?)",
        [RUN + timedelta(days=2), RUN + timedelta(days=4), RUN],
    )


def publish_forecasts(settings: Settings, run_date: date = RUN) -> str:
    """Train and register a champion, and write run D's forecasts as the nightly run does."""
    with warehouse(settings) as wh:
        history = history_frame(wh, run_date)
        series = history[["unique_id", "item_id", "location_id"]].drop_duplicates()
        future = future_frame(wh, series, run_date, settings.horizon_days)
        model = ForecastModel(params=FAST, horizon=settings.horizon_days)
        model.fit(history, static_cols=STATIC_COLS, exog_cols=["on_promo"])
        version = save_and_register(wh, model, settings.models_dir, run_date)
        pred = model.predict(history, future, pd.Timestamp(run_date)).merge(series, on="unique_id")
        rows = pd.DataFrame(
            {
                "run_date": pd.Timestamp(run_date),
                "item_id": pred["item_id"],
                "location_id": pred["location_id"],
                "forecast_date": pred["ds"],
                "horizon": pred["horizon"].astype("int32"),
                "p10": pred["p10"],
                "p50": pred["p50"],
                "p90": pred["p90"],
                "model_version": version,
            }
        )
        with wh.transaction():
            wh.replace_partition(
                "forecast.forecasts", "run_date", run_date, pa.Table.from_pandas(rows)
            )
            wh.execute(
                "insert into forecast.runs (run_date, model_version, status) "
                "values (?, ?, 'published')",
                [run_date, version],
            )
    return version


def make_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str | None = None) -> Settings:
    """Settings of a fresh warehouse (DuckDB in ``tmp_path`` unless ``url``) with run D published."""
    monkeypatch.setenv("NIGHTCAST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_PATH", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("NIGHTCAST_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("NIGHTCAST_HORIZON_DAYS", str(HORIZON))
    monkeypatch.setenv("LIGHTGBM_NUM_THREADS", "1")
    for name in ("NIGHTCAST_EXPLAIN_TOP_K", "NIGHTCAST_EXPLAIN_MAX_SERIES"):
        monkeypatch.delenv(name, raising=False)
    if url:
        monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", url)
    else:
        monkeypatch.delenv("NIGHTCAST_WAREHOUSE_URL", raising=False)
    settings = get_settings()
    with warehouse(settings) as wh:
        _seed_marts(wh)
    publish_forecasts(settings)
    return settings
