"""Nightly forecast, load and publish stages (the weekly retrain is in ``retrain.py``).

Grain of the published forecast: one row per run date, item, location and
forecast date (the ``horizon_days`` days after the run date).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nightcast.audit import record_publication
from nightcast.config import Settings
from nightcast.forecasting import ForecastModel
from nightcast.forecasting.registry import (
    load_champion,
    load_version,
    save_and_register,
    shadow_candidate,
)
from nightcast.pipeline.stages import record_task, warehouse
from nightcast.warehouse.base import Warehouse

log = logging.getLogger("nightcast.pipeline")

STATIC_COLS = ["item_id", "location_id", "department", "category", "location_type", "country"]
# A series is forecast while its item is not discontinued and it sold within this many days.
ACTIVE_WITHIN_DAYS = 91


def model_params() -> dict[str, Any]:
    """LightGBM parameters for the nightly model, from LIGHTGBM_NUM_THREADS and NIGHTCAST_LIGHTGBM_DEVICE."""
    return {
        "num_threads": int(os.environ.get("LIGHTGBM_NUM_THREADS", "1")),
        "seed": 7,
        # cpu (default), gpu, cuda, or auto: probe the GPU and fall back to CPU with a warning.
        "device": os.environ.get("NIGHTCAST_LIGHTGBM_DEVICE", "cpu"),
    }


def history_frame(wh: Warehouse, run_date: date) -> pd.DataFrame:
    """Daily demand of the active series up to ``run_date``: one row per series and day with activity."""
    return wh.df(
        """
        with active as (
            select f.item_id, f.location_id
            from marts.fct_sales_daily as f
            join marts.dim_item as i on i.item_id = f.item_id
            where f.sales_date <= ? and f.quantity > 0
              and (i.discontinue_date is null or i.discontinue_date > ?)
            group by f.item_id, f.location_id
            having max(f.sales_date) > cast(? as date) - cast(? as integer)
        )
        select
            f.item_id || '|' || f.location_id as unique_id,
            cast(f.sales_date as timestamp) as ds,
            cast(f.quantity as double precision) as y,
            cast(case when f.on_promo then 1 else 0 end as double precision) as on_promo,
            cast(case when f.is_stockout then 1 else 0 end as double precision) as is_stockout,
            f.item_id,
            f.location_id,
            coalesce(i.department, 'UNKNOWN') as department,
            coalesce(i.category, 'UNKNOWN') as category,
            coalesce(l.location_type, 'UNKNOWN') as location_type,
            coalesce(l.country, 'UNKNOWN') as country
        from marts.fct_sales_daily as f
        join active as a on a.item_id = f.item_id and a.location_id = f.location_id
        join marts.dim_item as i on i.item_id = f.item_id
        join marts.dim_location as l on l.location_id = f.location_id
        where f.sales_date <= ?
        order by unique_id, ds
        """,
        [run_date, run_date, run_date, ACTIVE_WITHIN_DAYS, run_date],
    )


def future_frame(wh: Warehouse, series: pd.DataFrame, run_date: date, horizon: int) -> pd.DataFrame:
    """Known-in-advance features for the horizon: planned promotions per series and day."""
    days = pd.date_range(pd.Timestamp(run_date) + pd.Timedelta(days=1), periods=horizon, freq="D")
    last = (days[-1]).date()
    promos = wh.df(
        "select item_id, location_id, start_date, end_date from raw.promotions "
        "where end_date > ? and start_date <= ?",
        [run_date, last],
    )
    keys = series[["unique_id", "item_id", "location_id"]].drop_duplicates()
    grid = keys.merge(pd.DataFrame({"ds": days}), how="cross")
    grid["on_promo"] = 0.0
    if not promos.empty:
        promos["start_date"] = pd.to_datetime(promos["start_date"])
        promos["end_date"] = pd.to_datetime(promos["end_date"])
        # A promotion without a location applies everywhere.
        local = grid.merge(promos.dropna(subset=["location_id"]), on=["item_id", "location_id"])
        everywhere = grid.merge(
            promos[promos["location_id"].isna()].drop(columns="location_id"), on="item_id"
        )
        hits = pd.concat([local, everywhere])
        hits = hits[(hits["ds"] >= hits["start_date"]) & (hits["ds"] <= hits["end_date"])]
        flagged = hits[["unique_id", "ds"]].drop_duplicates().assign(hit=1.0)
        grid = grid.drop(columns="on_promo").merge(flagged, on=["unique_id", "ds"], how="left")
        grid["on_promo"] = grid["hit"].fillna(0.0)
    return (
        grid[["unique_id", "ds", "on_promo"]]
        .sort_values(["unique_id", "ds"])
        .reset_index(drop=True)
    )


def forecast_path(settings: Settings, run_date: date) -> Path:
    return settings.lake_dir / "forecast" / f"date={run_date.isoformat()}" / "forecasts.parquet"


def train(history: pd.DataFrame, settings: Settings) -> ForecastModel:
    model = ForecastModel(params=model_params(), horizon=settings.horizon_days)
    return model.fit(history, static_cols=STATIC_COLS, exog_cols=["on_promo"])


def _forecast_rows(
    model: ForecastModel,
    version: str,
    history: pd.DataFrame,
    future: pd.DataFrame,
    series: pd.DataFrame,
    run_date: date,
) -> pd.DataFrame:
    pred = model.predict(history, future, cutoff=pd.Timestamp(run_date))
    out = pred.merge(series, on="unique_id", how="left")
    return pd.DataFrame(
        {
            "run_date": pd.Timestamp(run_date),
            "item_id": out["item_id"],
            "location_id": out["location_id"],
            "forecast_date": pd.to_datetime(out["ds"]).dt.normalize(),
            "horizon": out["horizon"].astype("int32"),
            "p10": out["p10"],
            "p50": out["p50"],
            "p90": out["p90"],
            "model_version": version,
        }
    )


def _shadow_forecast(
    settings: Settings,
    history: pd.DataFrame,
    future: pd.DataFrame,
    series: pd.DataFrame,
    run_date: date,
) -> None:
    """Shadow mode: the latest challenger forecasts into ``forecast.shadow_forecasts``.

    Best effort: a failure is logged and never fails the nightly forecast.
    """
    try:
        with warehouse(settings) as wh:
            version = shadow_candidate(wh)
            if version is None:
                log.info("shadow: no challenger newer than the champion; nothing to shadow")
                return
            model = load_version(wh, version)
        rows = _forecast_rows(model, version, history, future, series, run_date)
        table = pa.Table.from_pandas(rows, preserve_index=False)
        with warehouse(settings) as wh, wh.transaction():
            wh.replace_partition("forecast.shadow_forecasts", "run_date", run_date, table)
        log.info("shadow: %d rows from challenger %s for %s", len(rows), version, run_date)
    except Exception:
        log.warning(
            "shadow forecast for %s failed; the nightly forecast goes on", run_date, exc_info=True
        )


def forecast(settings: Settings, run_date: date) -> dict[str, Any]:
    """P10/P50/P90 for every active series; trains and registers a first model if none exists."""
    started = time.monotonic()
    with warehouse(settings) as wh:
        history = history_frame(wh, run_date)
        if history.empty:
            raise ValueError(
                f"no sales history up to {run_date} in marts.fct_sales_daily: nothing to forecast. "
                "Check that the extract loaded order lines (ops.task_runs) and that dbt build ran."
            )
        series = history[["unique_id", "item_id", "location_id"]].drop_duplicates()
        future = future_frame(wh, series, run_date, settings.horizon_days)
        found = load_champion(wh)
        trained = False
        if found is None:
            log.info("no champion model registered: training a first one on %d rows", len(history))
            model = train(history, settings)
            version = save_and_register(wh, model, settings.models_dir, run_date)
            trained = True
        else:
            version, model = found
    out = _forecast_rows(model, version, history, future, series, run_date)
    if os.environ.get("NIGHTCAST_SHADOW") == "1":
        _shadow_forecast(settings, history, future, series, run_date)
    path = forecast_path(settings, run_date)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(path.with_suffix(".tmp"), index=False)
    path.with_suffix(".tmp").replace(path)
    seconds = time.monotonic() - started
    with warehouse(settings) as wh:
        record_task(
            wh,
            run_date,
            "forecast",
            rows_in=len(history),
            rows_out=len(out),
            seconds=seconds,
            summary=f"model {version}, {len(series)} series",
        )
    log.info(
        "forecast %s: %d series x %d days with model %s%s (%.1fs)",
        run_date,
        len(series),
        settings.horizon_days,
        version,
        " (newly trained)" if trained else "",
        seconds,
    )
    return {
        "model_version": version,
        "series": len(series),
        "rows": len(out),
        "trained": trained,
        "path": str(path),
    }


def load_forecasts(settings: Settings, run_date: date) -> dict[str, Any]:
    """Replace run D's forecasts in one transaction (a rerun leaves the same rows)."""
    started = time.monotonic()
    path = forecast_path(settings, run_date)
    if not path.exists():
        raise FileNotFoundError(
            f"no forecast file {path} for {run_date}: rerun the forecast task first"
        )
    data = pq.read_table(path)
    versions = set(data.column("model_version").to_pylist())
    series = len(
        set(
            zip(
                data.column("item_id").to_pylist(),
                data.column("location_id").to_pylist(),
                strict=True,
            )
        )
    )
    with warehouse(settings) as wh, wh.transaction():
        n = wh.replace_partition("forecast.forecasts", "run_date", run_date, data)
        wh.execute(
            "update forecast.runs set model_version = ?, series_count = ?, rows_forecast = ?, horizon_days = ?, "
            "status = case when status = 'published' then status else 'loaded' end where run_date = ?",
            [",".join(sorted(versions)), series, n, settings.horizon_days, run_date],
        )
        record_task(
            wh,
            run_date,
            "load_forecasts",
            rows_in=data.num_rows,
            rows_out=n,
            seconds=time.monotonic() - started,
        )
    log.info("load_forecasts %s: %d rows for %d series", run_date, n, series)
    return {"rows": n, "series": series}


def publish(settings: Settings, run_date: date) -> dict[str, Any]:
    """Mark run D published: BI's ``marts.forecast_latest`` switches to it atomically."""
    with warehouse(settings) as wh, wh.transaction():
        row = wh.fetchone(
            "select status, rows_forecast from forecast.runs where run_date = ?", [run_date]
        )
        if row is None or row[0] not in ("loaded", "published") or not row[1]:
            raise RuntimeError(
                f"run {run_date} cannot be published: status {row[0] if row else 'missing'!r}, "
                f"{row[1] if row else 0} forecast rows; rerun load_forecasts first"
            )
        wh.execute(
            "update forecast.runs set status = 'published', published_at = ?, message = null where run_date = ?",
            [datetime.now(), run_date],
        )
        record_task(wh, run_date, "publish", rows_out=int(row[1]), seconds=0.0)
        # The append-only audit row commits with the publication, or neither does.
        record_publication(wh, run_date, "published", actor="pipeline")
    log.info(
        "published run %s (%d forecast rows): marts.forecast_latest now shows it", run_date, row[1]
    )
    return {"run_date": run_date.isoformat(), "rows": int(row[1])}
