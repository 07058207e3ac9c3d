"""Nightly forecast, load and publish stages (the weekly retrain is in ``retrain.py``).

Grain of the published forecast: one row per run date, item, location and
forecast date (the ``horizon_days`` days after the run date).
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from nightcast.audit import record_publication
from nightcast.config import Settings, get_settings
from nightcast.forecasting import ForecastModel
from nightcast.forecasting.registry import (
    RegistryError,
    artifact_checksum,
    load_serving_model,
    save_and_register,
    shadow_candidate,
)
from nightcast.monitoring.alerts import model_fallback_alert, raise_alert
from nightcast.pipeline import batches
from nightcast.pipeline.runs import record_task, warehouse
from nightcast.storage import location
from nightcast.warehouse.base import Warehouse

log = logging.getLogger("nightcast.pipeline")

STATIC_COLS = ["item_id", "location_id", "department", "category", "location_type", "country"]
# A series is forecast while its item is not discontinued and it sold within this many days.
ACTIVE_WITHIN_DAYS = 91


def model_params() -> dict[str, Any]:
    """LightGBM parameters for the nightly model, from LIGHTGBM_NUM_THREADS and NIGHTCAST_LIGHTGBM_DEVICE."""
    settings = get_settings()
    return {
        "num_threads": settings.lightgbm_num_threads,
        "seed": 7,
        # cpu (default), gpu, cuda, or auto: probe the GPU and fall back to CPU with a warning.
        "device": settings.lightgbm_device,
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


def train(history: pd.DataFrame, settings: Settings) -> ForecastModel:
    model = ForecastModel(params=model_params(), horizon=settings.horizon_days)
    return model.fit(history, static_cols=STATIC_COLS, exog_cols=["on_promo"])


def _forecast_rows(
    model: ForecastModel,
    version: str,
    history: pd.DataFrame,
    future: pd.DataFrame,
    run_date: date,
) -> pd.DataFrame:
    """One row per item, location and forecast date of the series in ``history``."""
    series = history[["unique_id", "item_id", "location_id"]].drop_duplicates()
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


def _artifact_path(wh: Warehouse, version: str) -> str:
    """The registered artifact's URL (a local path or s3://bucket/prefix)."""
    row = wh.fetchone(
        "select artifact_path from forecast.model_registry where model_version = ?", [version]
    )
    if row is None:
        raise RegistryError(f"model {version} is not in forecast.model_registry")
    return str(row[0])


def _pin_champion(
    wh: Warehouse, history: pd.DataFrame, settings: Settings, run_date: date
) -> tuple[str, str, bool, str | None]:
    """The serving model's version and artifact; trains and registers a first one if none exists.

    The fourth item says why the fallback serves instead of the champion (None normally).
    """
    found = load_serving_model(wh, run_date)
    if found is not None:
        version, _, fallback_reason = found
        return version, _artifact_path(wh, version), False, fallback_reason
    log.info("no champion model registered: training a first one on %d rows", len(history))
    model = train(history, settings)
    version = save_and_register(wh, model, settings.models_location, run_date)
    return version, _artifact_path(wh, version), True, None


def _pin_shadow(wh: Warehouse) -> tuple[str, str] | None:
    """Shadow mode (NIGHTCAST_SHADOW=1): the challenger every batch also forecasts with."""
    if not get_settings().shadow:
        return None
    try:
        version = shadow_candidate(wh)
        if version is None:
            log.info("shadow: no challenger newer than the champion; nothing to shadow")
            return None
        return version, _artifact_path(wh, version)
    except Exception:
        log.warning("shadow: cannot pin a challenger; the nightly forecast goes on", exc_info=True)
        return None


def forecast_plan(settings: Settings, run_date: date) -> list[dict[str, Any]]:
    """Snapshot run D's inputs, pin one model version and cut the active series into batches.

    Returns one small reference per batch (index, count, plan file), never data.
    """
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
        version, artifact, trained, fallback_reason = _pin_champion(wh, history, settings, run_date)
        shadow = _pin_shadow(wh)
    if fallback_reason is not None:
        raise_alert(settings, model_fallback_alert(run_date, fallback_reason))
    snap = batches.input_dir(settings.lake, run_date)
    batches.write_snapshot(history, snap / "history.parquet")
    batches.write_snapshot(future, snap / "future.parquet")
    cut = batches.split_series(series["unique_id"], settings.forecast_batch_series)
    plan = batches.ForecastPlan(
        run_date=run_date.isoformat(),
        model_version=version,
        artifact_path=str(artifact),
        artifact_checksum=artifact_checksum(artifact),
        horizon_days=settings.horizon_days,
        history_path=str(snap / "history.parquet"),
        future_path=str(snap / "future.parquet"),
        batches=cut,
        shadow_version=shadow[0] if shadow else None,
        shadow_artifact_path=str(shadow[1]) if shadow else None,
        history_rows=len(history),
        trained=trained,
    )
    path = batches.plan_path(settings.lake, run_date)
    batches.write_plan(path, plan)
    stale = batches.remove_stale_parts(path.parent, len(cut))
    stale += batches.remove_stale_parts(
        batches.shadow_dir(settings.lake, run_date), len(cut) if shadow else 0
    )
    seconds = time.monotonic() - started
    summary = f"model {version}, {len(series)} series in {len(cut)} batch(es)"
    with warehouse(settings) as wh:
        record_task(
            wh,
            run_date,
            "forecast_plan",
            rows_in=len(history),
            rows_out=len(series),
            seconds=seconds,
            summary=summary,
        )
    log.info(
        "forecast_plan %s: %s%s, shadow %s, %d stale part(s) removed (%.1fs)",
        run_date,
        summary,
        " (newly trained)" if trained else "",
        plan.shadow_version or "off",
        len(stale),
        seconds,
    )
    return [
        {"batch": k, "batches": len(cut), "series": len(ids), "plan": str(path)}
        for k, ids in enumerate(cut)
    ]


def forecast_batch(settings: Settings, run_date: date, batch: int) -> dict[str, Any]:
    """Forecast the series of batch ``batch`` into its own part (a rerun rewrites only that part).

    Reads only the plan's input snapshot and model artifact, never the warehouse,
    so batches can run side by side on any worker of the forecasting queue.
    """
    started = time.monotonic()
    plan = batches.read_plan(batches.plan_path(settings.lake, run_date))
    if not 0 <= batch < len(plan.batches):
        raise IndexError(
            f"batch {batch} is not in the plan of {run_date} ({len(plan.batches)} batches): "
            "clear forecast_plan with downstream"
        )
    ids = plan.batches[batch]
    only = [("unique_id", "in", ids)]
    history = location(plan.history_path).read_parquet(filters=only).to_pandas()
    future = location(plan.future_path).read_parquet(filters=only).to_pandas()
    model = batches.load_pinned_model(
        plan.artifact_path, plan.artifact_checksum, plan.model_version
    )
    out = _forecast_rows(model, plan.model_version, history, future, run_date)
    path = batches.part_path(batches.forecast_dir(settings.lake, run_date), batch)
    seconds = time.monotonic() - started
    batches.write_part(pa.Table.from_pandas(out, preserve_index=False), path, seconds)
    if plan.shadow_version and plan.shadow_artifact_path:
        _shadow_batch(settings, plan, batch, history, future)
    log.info(
        "forecast_batch %s %d/%d: %d series x %d days with model %s, %d rows (%.1fs, %.0f series/s)",
        run_date,
        batch + 1,
        len(plan.batches),
        len(ids),
        plan.horizon_days,
        plan.model_version,
        len(out),
        seconds,
        len(ids) / max(seconds, 1e-9),
    )
    return {"batch": batch, "series": len(ids), "rows": len(out), "path": str(path)}


def _shadow_batch(
    settings: Settings,
    plan: batches.ForecastPlan,
    batch: int,
    history: pd.DataFrame,
    future: pd.DataFrame,
) -> None:
    """Best effort: the pinned challenger forecasts this batch aside; a failure only logs."""
    run_date = date.fromisoformat(plan.run_date)
    path = batches.part_path(batches.shadow_dir(settings.lake, run_date), batch)
    path.delete()
    try:
        assert plan.shadow_version and plan.shadow_artifact_path
        model = batches.load_pinned_model(plan.shadow_artifact_path, None, plan.shadow_version)
        out = _forecast_rows(model, plan.shadow_version, history, future, run_date)
        batches.write_part(pa.Table.from_pandas(out, preserve_index=False), path, 0.0)
    except Exception:
        log.warning(
            "shadow forecast of batch %d for %s failed; the nightly forecast goes on",
            batch,
            run_date,
            exc_info=True,
        )


def _load_shadow(settings: Settings, plan: batches.ForecastPlan, run_date: date) -> None:
    """Best effort: replace run D's shadow forecasts when every batch wrote its shadow part."""
    if not plan.shadow_version:
        return
    try:
        folder = batches.shadow_dir(settings.lake, run_date)
        data, _ = batches.read_parts(folder, plan, plan.shadow_version)
        with warehouse(settings) as wh, wh.transaction():
            wh.replace_partition("forecast.shadow_forecasts", "run_date", run_date, data)
        log.info(
            "shadow: %d rows from challenger %s for %s",
            data.num_rows,
            plan.shadow_version,
            run_date,
        )
    except Exception:
        log.warning(
            "shadow forecasts for %s not loaded; the nightly forecast goes on",
            run_date,
            exc_info=True,
        )


def forecast(settings: Settings, run_date: date) -> dict[str, Any]:
    """Plan and run every batch in this process (what the DAG does across mapped tasks)."""
    refs = forecast_plan(settings, run_date)
    rows = sum(forecast_batch(settings, run_date, ref["batch"])["rows"] for ref in refs)
    return {"batches": len(refs), "series": sum(r["series"] for r in refs), "rows": rows}


def load_forecasts(settings: Settings, run_date: date) -> dict[str, Any]:
    """Replace run D's forecasts with all batch parts in one transaction (a rerun leaves the same rows).

    Fails, naming the batch, unless every planned series is present exactly once
    with ``horizon_days`` rows.
    """
    started = time.monotonic()
    plan = batches.read_plan(batches.plan_path(settings.lake, run_date))
    folder = batches.forecast_dir(settings.lake, run_date)
    data, batch_seconds = batches.read_parts(folder, plan, plan.model_version)
    series = plan.series_count
    with warehouse(settings) as wh, wh.transaction():
        n = wh.replace_partition("forecast.forecasts", "run_date", run_date, data)
        wh.execute(
            "update forecast.runs set model_version = ?, series_count = ?, rows_forecast = ?, horizon_days = ?, "
            "status = case when status = 'published' then status else 'loaded' end where run_date = ?",
            [plan.model_version, series, n, plan.horizon_days, run_date],
        )
        record_task(
            wh,
            run_date,
            "forecast_batch",
            rows_in=plan.history_rows,
            rows_out=data.num_rows,
            seconds=batch_seconds,
            summary=f"{len(plan.batches)} batch(es)",
        )
        record_task(
            wh,
            run_date,
            "load_forecasts",
            rows_in=data.num_rows,
            rows_out=n,
            seconds=time.monotonic() - started,
        )
    _load_shadow(settings, plan, run_date)
    log.info(
        "load_forecasts %s: %d rows for %d series from %d batch(es)",
        run_date,
        n,
        series,
        len(plan.batches),
    )
    return {"rows": n, "series": series, "batches": len(plan.batches)}


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
        snapshot = batches.snapshot_inputs(settings.lake, run_date)
        record_publication(wh, run_date, "published", actor="pipeline", inputs=snapshot)
    log.info(
        "published run %s (%d forecast rows): marts.forecast_latest now shows it", run_date, row[1]
    )
    return {"run_date": run_date.isoformat(), "rows": int(row[1])}
