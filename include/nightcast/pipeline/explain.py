"""Explain stage: top-k SHAP contributions of run D's forecasts, and on-demand look-ups.

Grain of ``forecast.explanations``: one row per run date, item, location,
forecast date, quantile (``p50``) and rank (1 = largest |contribution|).
Contributions are in units of demand (see :mod:`nightcast.forecasting.explain`).

Cost: LightGBM's ``pred_contrib`` is ~300x a plain predict, about 40 CPU-seconds
per 1,000 series x 28 days for the nightly model on one thread, so only the
P50 is explained, and for at most ``NIGHTCAST_EXPLAIN_MAX_SERIES`` series; above
that, a deterministic sample (:func:`select_series`). ``nightcast explain``
computes any other forecast on demand.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa

from nightcast.config import Settings, get_settings
from nightcast.forecasting.explain import EXPLANATION_COLUMNS
from nightcast.forecasting.explain import explain as explain_forecasts
from nightcast.forecasting.labels import feature_label
from nightcast.forecasting.model import ForecastModel
from nightcast.forecasting.registry import load_version
from nightcast.pipeline import batches
from nightcast.pipeline.forecast import future_frame, history_frame
from nightcast.pipeline.runs import record_task, warehouse
from nightcast.warehouse.base import Warehouse

log = logging.getLogger("nightcast.pipeline")

TABLE = "forecast.explanations"
# Series explained per batch: bounds memory and gives a progress line per batch.
BATCH_SERIES = 500


def _hash(unique_id: str) -> str:
    return hashlib.blake2b(unique_id.encode(), digest_size=8).hexdigest()


def select_series(volume: pd.DataFrame, max_series: int) -> tuple[list[str], bool]:
    """Series to explain, and whether that is a sample.

    ``volume`` has one row per series: ``unique_id, volume`` (the run's total P50).
    Up to ``max_series`` series: all of them. Above: the ``max_series // 2`` series
    with the largest forecast volume (ties by id), plus the remaining series with
    the smallest BLAKE2b hash of their id up to ``max_series`` in all. The hash half
    is the same series every night, so their explanations can be compared over time.
    """
    ids = volume.sort_values(["volume", "unique_id"], ascending=[False, True])["unique_id"]
    if len(ids) <= max_series:
        return sorted(ids), False
    top = list(ids.iloc[: max_series // 2])
    rest = sorted(ids.iloc[max_series // 2 :], key=_hash)
    return sorted(top + rest[: max_series - len(top)]), True


def _forecast_series(wh: Warehouse, run_date: date) -> pd.DataFrame:
    """Run D's forecast series: ``unique_id, item_id, location_id, model_version, volume``."""
    out = wh.df(
        "select item_id, location_id, model_version, sum(p50) as volume "
        "from forecast.forecasts where run_date = ? group by item_id, location_id, model_version",
        [run_date],
    )
    out["unique_id"] = out["item_id"] + "|" + out["location_id"]
    return out


def _run_dates(wh: Warehouse) -> list[str]:
    rows = wh.fetchall("select distinct run_date from forecast.forecasts order by 1 desc")
    return [str(r[0]) for r in rows[:10]]


def _rows(
    model_version: str, explained: pd.DataFrame, keys: pd.DataFrame, run_date: date
) -> pd.DataFrame:
    out = explained.merge(keys[["unique_id", "item_id", "location_id"]], on="unique_id")
    out = out.drop(columns="unique_id").rename(columns={"ds": "forecast_date"})
    out.insert(0, "run_date", pd.Timestamp(run_date))
    out["forecast_date"] = pd.to_datetime(out["forecast_date"]).dt.normalize()
    out["model_version"] = model_version
    return out


def _explain_version(
    settings: Settings,
    model: ForecastModel,
    version: str,
    inputs: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    run_date: date,
) -> pd.DataFrame:
    """Explain the series of ``inputs`` (history, future, keys) in batches, logging progress."""
    history, future, series = inputs
    ids = sorted(series["unique_id"])
    # The thread budget the forecast task gets (LIGHTGBM_NUM_THREADS).
    threads = get_settings().lightgbm_num_threads
    started, parts = time.monotonic(), []
    for i in range(0, len(ids), BATCH_SERIES):
        batch = set(ids[i : i + BATCH_SERIES])
        parts.append(
            explain_forecasts(
                model,
                history[history["unique_id"].isin(batch)],
                future[future["unique_id"].isin(batch)],
                pd.Timestamp(run_date),
                top_k=settings.explain_top_k,
                num_threads=threads,
            )
        )
        done, elapsed = min(i + BATCH_SERIES, len(ids)), time.monotonic() - started
        log.info(
            "explain %s: %d/%d series with %s, %.0fs, %.1f series/s",
            run_date,
            done,
            len(ids),
            version,
            elapsed,
            done / max(elapsed, 1e-9),
        )
    return _rows(version, pd.concat(parts, ignore_index=True), series, run_date)


def _inputs(
    settings: Settings, wh: Warehouse, keys: pd.DataFrame, run_date: date
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """D's history and future of the ``keys`` series: the forecast's own input snapshot."""
    snapshot = _snapshot(settings, run_date)
    history = snapshot[0] if snapshot else history_frame(wh, run_date)
    history = history[history["unique_id"].isin(keys["unique_id"])]
    series = history[["unique_id", "item_id", "location_id"]].drop_duplicates()
    missing = sorted(set(keys["unique_id"]) - set(series["unique_id"]))
    if missing:
        raise ValueError(
            f"{len(missing)} series forecast for {run_date} have no history up to {run_date} "
            f"in marts.fct_sales_daily any more (e.g. {missing[:3]}): the warehouse changed "
            "since the forecast; rerun the forecast tasks for this date, then explain"
        )
    if snapshot:
        return history, snapshot[1][snapshot[1]["unique_id"].isin(keys["unique_id"])], series
    return history, future_frame(wh, series, run_date, settings.horizon_days), series


def _snapshot(settings: Settings, run_date: date) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The history and future ``forecast_plan`` froze for run D, when they are still in the lake.

    They are exactly what the forecast saw, even after late edits changed the
    warehouse; without them the inputs are rebuilt from the warehouse.
    """
    folder = batches.input_dir(settings.lake, run_date)
    history, future = folder / "history.parquet", folder / "future.parquet"
    if not (history.exists() and future.exists()):
        log.info(
            "explain %s: no input snapshot in %s; rebuilding from the warehouse", run_date, folder
        )
        return None
    return history.read_parquet().to_pandas(), future.read_parquet().to_pandas()


def explain(settings: Settings, run_date: date) -> dict[str, Any]:
    """Write run D's ``forecast.explanations`` partition in one transaction (rerun-safe)."""
    started = time.monotonic()
    with warehouse(settings) as wh:
        keys = _forecast_series(wh, run_date)
        if keys.empty:
            raise ValueError(
                f"no forecasts for run date {run_date} in forecast.forecasts to explain; "
                f"run dates with forecasts: {_run_dates(wh) or 'none'}. "
                "Rerun the forecast and load_forecasts tasks for this date first."
            )
        chosen, sampled = select_series(
            keys.groupby("unique_id", as_index=False)["volume"].sum(), settings.explain_max_series
        )
        keys = keys[keys["unique_id"].isin(chosen)]
        history, future, series = _inputs(settings, wh, keys, run_date)
        models = {v: load_version(wh, v) for v in sorted(set(keys["model_version"]))}
    # The warehouse is closed while SHAP runs (minutes): other tasks can open it.
    frames = []
    for version, model in models.items():
        ids = keys.loc[keys["model_version"] == version, "unique_id"]
        part = (
            history[history["unique_id"].isin(ids)],
            future[future["unique_id"].isin(ids)],
            series[series["unique_id"].isin(ids)],
        )
        frames.append(_explain_version(settings, model, version, part, run_date))
    table = pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)
    seconds = time.monotonic() - started
    summary = (
        f"{len(chosen)} series ({'sample' if sampled else 'all'}), top {settings.explain_top_k}"
    )
    with warehouse(settings) as wh, wh.transaction():
        n = wh.replace_partition(TABLE, "run_date", run_date, table)
        record_task(
            wh,
            run_date,
            "explain",
            rows_in=len(chosen),
            rows_out=n,
            seconds=seconds,
            summary=summary,
        )
    log.info("explain %s: %d rows for %s (%.1fs)", run_date, n, summary, seconds)
    return {"rows": n, "series": len(chosen), "sampled": sampled, "seconds": round(seconds, 1)}


# ------------------------------------------------------------------ on demand (CLI)
class ExplainLookupError(LookupError):
    """The item, location, forecast date or run asked for has no forecast."""


@dataclass(frozen=True)
class Explanation:
    """The top-k contributions behind one published P50 (one item, location and date)."""

    run_date: date
    item_id: str
    location_id: str
    forecast_date: date
    horizon: int
    model_version: str
    p50: float
    prediction: float
    base_value: float
    contributions: pd.DataFrame  # rank, feature, feature_value, category_value, contribution, share
    source: str  # 'stored' (forecast.explanations) or 'computed' on demand

    def as_dict(self) -> dict[str, Any]:
        rows = self.contributions.astype(object).where(self.contributions.notna(), None)
        return {
            "run_date": self.run_date.isoformat(),
            "item_id": self.item_id,
            "location_id": self.location_id,
            "forecast_date": self.forecast_date.isoformat(),
            "horizon": self.horizon,
            "model_version": self.model_version,
            "p50": self.p50,
            "prediction": self.prediction,
            "base_value": self.base_value,
            "source": self.source,
            "contributions": rows.to_dict(orient="records"),
        }


def _default_run(wh: Warehouse, forecast_date: date) -> date | None:
    """The latest run forecasting ``forecast_date``, published runs first."""
    row = wh.fetchone(
        "select f.run_date from forecast.forecasts as f "
        "left join forecast.runs as r on r.run_date = f.run_date "
        "where f.forecast_date = ? group by f.run_date, r.status "
        "order by case when r.status = 'published' then 0 else 1 end, f.run_date desc limit 1",
        [forecast_date],
    )
    return None if row is None else pd.Timestamp(row[0]).date()


def _not_found(wh: Warehouse, run: date, item: str, location: str, day: date) -> str:
    """Say which of run, item, location or date is unknown, and what exists instead."""
    where = "from forecast.forecasts where run_date = ?"
    span = wh.fetchone(f"select min(forecast_date), max(forecast_date) {where}", [run])
    if span is None or span[0] is None:
        return f"no forecasts for run date {run}; run dates available: {_run_dates(wh) or 'none'}"
    for column, value in (("item_id", item), ("location_id", location)):
        if not wh.fetchone(f"select 1 {where} and {column} = ? limit 1", [run, value]):
            some = wh.fetchall(f"select distinct {column} {where} order by 1 limit 5", [run])
            return (
                f"{column.removesuffix('_id')} {value!r} has no forecast in run {run} "
                f"(e.g. {', '.join(str(r[0]) for r in some)}); check the namespaced id "
                "('<source>:<native id>')"
            )
    return (
        f"no forecast for item {item!r} at location {location!r} on {day} in run {run}: "
        f"that run forecasts {span[0]} to {span[1]}; run dates available: {_run_dates(wh)}"
    )


def _compute(
    settings: Settings, wh: Warehouse, version: str, run: date, uid: str, top_k: int
) -> pd.DataFrame:
    """Recompute one series' contributions from the registered model and D's history."""
    model = load_version(wh, version)
    snapshot = _snapshot(settings, run)
    history = snapshot[0] if snapshot else history_frame(wh, run)
    history = history[history["unique_id"] == uid]
    if history.empty:
        raise ExplainLookupError(
            f"series {uid!r} has no sales history up to {run} in marts.fct_sales_daily any "
            "more, so its forecast cannot be recomputed; rerun dbt build for that date"
        )
    series = history[["unique_id", "item_id", "location_id"]].drop_duplicates()
    if snapshot:
        future = snapshot[1][snapshot[1]["unique_id"] == uid]
    else:
        future = future_frame(wh, series, run, settings.horizon_days)
    return explain_forecasts(model, history, future, pd.Timestamp(run), top_k=top_k)


def explain_one(
    settings: Settings,
    item_id: str,
    location_id: str,
    forecast_date: date,
    run_date: date | None = None,
    top_k: int | None = None,
) -> Explanation:
    """Stored contributions of one forecast if there are enough, else computed now."""
    k = top_k or settings.explain_top_k
    with warehouse(settings) as wh:
        run = run_date or _default_run(wh, forecast_date)
        if run is None:
            raise ExplainLookupError(
                f"no run forecasts {forecast_date}; run dates available: {_run_dates(wh) or 'none'}"
            )
        key = [run, item_id, location_id, forecast_date]
        found = wh.fetchone(
            "select horizon, p50, model_version from forecast.forecasts where run_date = ? "
            "and item_id = ? and location_id = ? and forecast_date = ?",
            key,
        )
        if found is None:
            raise ExplainLookupError(_not_found(wh, run, item_id, location_id, forecast_date))
        rows = wh.df(
            f"select {', '.join(EXPLANATION_COLUMNS[3:])} from {TABLE} where run_date = ? "
            "and item_id = ? and location_id = ? and forecast_date = ? and quantile = 'p50' "
            "order by rank",
            key,
        )
        source = "stored"
        if len(rows) < k:
            uid = f"{item_id}|{location_id}"
            rows = _compute(settings, wh, str(found[2]), run, uid, k)
            rows = rows[pd.to_datetime(rows["ds"]) == pd.Timestamp(forecast_date)]
            source = "computed"
    rows = rows.head(k).reset_index(drop=True)
    first = rows.iloc[0]
    return Explanation(
        run_date=run,
        item_id=item_id,
        location_id=location_id,
        forecast_date=forecast_date,
        horizon=int(found[0]),
        model_version=str(found[2]),
        p50=float(found[1]),
        prediction=float(first["prediction"]),
        base_value=float(first["base_value"]),
        contributions=rows[
            ["rank", "feature", "feature_value", "category_value", "contribution", "share"]
        ],
        source=source,
    )


def format_explanation(e: Explanation) -> str:
    """A readable table: feature, value, contribution (units) and share of the total."""
    labels = [f"{feature_label(str(f))} ({f})" for f in e.contributions["feature"]]
    width = max([len("all other features"), *map(len, labels)])
    clipped = (
        "" if abs(e.p50 - e.prediction) < 1e-6 else " (published after clipping at 0 / sorting)"
    )
    lines = [
        f"item {e.item_id} at {e.location_id} on {e.forecast_date} (run {e.run_date}, "
        f"horizon {e.horizon}, model {e.model_version}, {e.source})",
        f"P50 forecast {e.p50:,.2f}{clipped}: model output {e.prediction:,.2f} = base "
        f"{e.base_value:,.2f} + the contributions below",
        "  (base: the series' recent level times the model's average ratio; units of demand)",
        f"  {'feature':<{width}} {'value':>12} {'contribution':>13} {'share':>6}",
    ]
    for label, r in zip(labels, e.contributions.itertuples(index=False), strict=True):
        value = r.category_value if pd.notna(r.category_value) else f"{r.feature_value:,.2f}"
        lines.append(f"  {label:<{width}} {value:>12} {r.contribution:>+13.2f} {r.share:>6.0%}")
    other = e.prediction - e.base_value - float(e.contributions["contribution"].sum())
    lines.append(f"  {'all other features':<{width}} {'':>12} {other:>+13.2f}")
    return "\n".join(lines)
