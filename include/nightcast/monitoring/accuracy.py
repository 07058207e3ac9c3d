"""Accuracy of published forecasts by horizon bucket and segment (``ops.forecast_accuracy``).

Grain of the output: one row per evaluation date (the night the scoring ran),
forecast run date, horizon bucket (``1-7``, ``8-14``, ... days ahead),
segment_type ('all' | 'category' | 'location') and segment.

What is scored on evaluation date D: every *published* run with at least one
forecast date in ``(D - lookback_days, D]`` is rescored in full, i.e. all of its
forecast dates up to D. Late and revised actuals are therefore picked up on each
later night while the run is in the lookback, and the last scoring of a run (the
one BI reads) covers every one of its forecast dates. Actuals come from
``marts.fct_sales_daily``, which is sparse: a series-day without a row is zero
demand. Stock-out days are left out (demand is censored there), as in the
weekly backtest, so the numbers compare with the registry's backtest WAPE.

Metrics over the forecasts of a group (p50 = the point forecast, a = actual):

- wape = sum(|p50 - a|) / sum(a) (null when there was no demand);
- bias = sum(p50 - a) / sum(a) (relative; positive = over-forecast);
- p10_p90_coverage = share of forecasts with p10 <= a <= p90;
- mase = sum(|p50 - a|) / sum(scale), where a forecast's scale is its series'
  in-sample mean absolute *seasonal-naive* error (lag 7 days) over the
  ``SCALE_WINDOW_DAYS`` days up to and including the forecast run date (days
  before the series' first row and stock-out days left out). The ratio of sums
  is the group MAE over the mean naive MAE, so a series that never sold does not
  divide by zero; forecasts of a series without such history are left out of
  the MASE only.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from nightcast.warehouse.base import Warehouse

log = logging.getLogger("nightcast.monitoring")

BUCKET_DAYS = 7
SEASON_DAYS = 7
SCALE_WINDOW_DAYS = 91
TABLE = "ops.forecast_accuracy"
GROUP = ["run_date", "horizon_bucket", "horizon_min", "horizon_max", "segment_type", "segment"]

_RUNS_SQL = """
select distinct f.run_date
from forecast.forecasts as f
join forecast.runs as r on r.run_date = f.run_date
where r.status = 'published' and f.forecast_date > ? and f.forecast_date <= ?
order by f.run_date
"""

_FORECASTS_SQL = """
select
    f.run_date, f.item_id, f.location_id, f.forecast_date, f.horizon,
    f.p10, f.p50, f.p90, f.model_version,
    coalesce(i.category, 'UNKNOWN') as category
from forecast.forecasts as f
left join marts.dim_item as i on i.item_id = f.item_id
where f.run_date = ? and f.forecast_date <= ?
"""


def runs_to_score(wh: Warehouse, evaluation_date: date, lookback_days: int) -> list[date]:
    """Published runs with a forecast date in ``(evaluation_date - lookback_days, evaluation_date]``."""
    start = evaluation_date - timedelta(days=lookback_days)
    rows = wh.fetchall(_RUNS_SQL, [start, evaluation_date])
    return [pd.Timestamp(r[0]).date() for r in rows]


def run_forecasts(wh: Warehouse, run_date: date, evaluation_date: date) -> pd.DataFrame:
    """One run's forecasts up to ``evaluation_date``: one row per series and forecast date."""
    df = wh.df(_FORECASTS_SQL, [run_date, evaluation_date])
    for col in ("run_date", "forecast_date"):
        df[col] = pd.to_datetime(df[col]).dt.normalize()
    return df


def sales_window(wh: Warehouse, first: date, last: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sales rows in ``[first, last]`` and each series' first date in ``marts.fct_sales_daily``."""
    sales = wh.df(
        "select item_id, location_id, sales_date, cast(quantity as double precision) as quantity, "
        "is_stockout from marts.fct_sales_daily where sales_date >= ? and sales_date <= ?",
        [first, last],
    )
    starts = wh.df(
        "select item_id, location_id, min(sales_date) as first_date "
        "from marts.fct_sales_daily group by item_id, location_id"
    )
    sales["sales_date"] = pd.to_datetime(sales["sales_date"]).dt.normalize()
    sales["is_stockout"] = sales["is_stockout"].fillna(False).astype(bool)
    starts["first_date"] = pd.to_datetime(starts["first_date"]).dt.normalize()
    return sales, starts


def naive_scales(
    keys: pd.DataFrame,
    sales: pd.DataFrame,
    starts: pd.DataFrame,
    runs: pd.DatetimeIndex,
    first: pd.Timestamp,
) -> np.ndarray:
    """``[len(keys), len(runs)]`` in-sample seasonal-naive MAE of each series at each run date.

    ``keys`` (item_id, location_id) index the rows; days run from ``first`` to the
    last run date; NaN where a series has no pair of known days in the window.
    """
    days = pd.date_range(first, runs.max(), freq="D")
    pos = pd.Series(np.arange(len(keys)), index=pd.MultiIndex.from_frame(keys))
    y = np.zeros((len(keys), len(days)))
    begin = keys.merge(starts, on=["item_id", "location_id"], how="left")["first_date"]
    begin_idx = np.searchsorted(days.values, begin.fillna(days[-1] + pd.Timedelta(days=1)).values)
    y[np.arange(len(days))[None, :] < begin_idx[:, None]] = np.nan
    rows = sales[sales["sales_date"].between(days[0], days[-1])]
    at = pd.MultiIndex.from_frame(rows[["item_id", "location_id"]])
    hit = at.isin(pos.index)
    s_idx = pos.reindex(at[hit]).to_numpy()
    t_idx = ((rows["sales_date"][hit] - days[0]).dt.days).to_numpy()
    y[s_idx, t_idx] = np.where(rows["is_stockout"][hit], np.nan, rows["quantity"][hit])
    err = np.full_like(y, np.nan)
    err[:, SEASON_DAYS:] = np.abs(y[:, SEASON_DAYS:] - y[:, :-SEASON_DAYS])
    known = ~np.isnan(err)
    csum = np.concatenate([np.zeros((len(keys), 1)), np.cumsum(np.where(known, err, 0), 1)], 1)
    ccnt = np.concatenate([np.zeros((len(keys), 1)), np.cumsum(known, 1)], 1)
    hi = ((runs - days[0]).days + 1).to_numpy()
    lo = np.maximum(hi - SCALE_WINDOW_DAYS, 0)
    total, cnt = csum[:, hi] - csum[:, lo], ccnt[:, hi] - ccnt[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, total / np.maximum(cnt, 1), np.nan)


def scored_rows(forecasts: pd.DataFrame, sales: pd.DataFrame, starts: pd.DataFrame) -> pd.DataFrame:
    """Forecasts joined to their actual (0 when no sales row) and series scale; stock-outs dropped."""
    keyed = ["item_id", "location_id"]
    act = sales.rename(columns={"sales_date": "forecast_date", "quantity": "actual"})
    out = forecasts.merge(act, on=[*keyed, "forecast_date"], how="left")
    out = out[~out["is_stockout"].fillna(False).astype(bool)].copy()
    out["actual"] = out["actual"].fillna(0.0)
    keys = out[keyed].drop_duplicates().reset_index(drop=True)
    runs = pd.DatetimeIndex(sorted(out["run_date"].unique()))
    if out.empty:
        out["scale"] = pd.Series(dtype="float64")
        return out
    first = runs.min() - pd.Timedelta(days=SCALE_WINDOW_DAYS + SEASON_DAYS)
    scales = naive_scales(keys, sales, starts, runs, first)
    s_idx = out[keyed].merge(keys.reset_index(), on=keyed, how="left")["index"].to_numpy()
    r_idx = runs.get_indexer(pd.DatetimeIndex(out["run_date"]))
    out["scale"] = scales[s_idx, r_idx]
    return out


def _segments(scored: pd.DataFrame) -> pd.DataFrame:
    """Each scored row once per segment type: all, its category, its location."""
    lo = (scored["horizon"] - 1) // BUCKET_DAYS * BUCKET_DAYS + 1
    base = scored.assign(horizon_min=lo, horizon_max=lo + BUCKET_DAYS - 1)
    base["horizon_bucket"] = base["horizon_min"].astype(str) + "-" + base["horizon_max"].astype(str)
    return pd.concat(
        [
            base.assign(segment_type="all", segment="all"),
            base.assign(segment_type="category", segment=base["category"]),
            base.assign(segment_type="location", segment=base["location_id"]),
        ],
        ignore_index=True,
    )


def aggregate(scored: pd.DataFrame, evaluation_date: date) -> pd.DataFrame:
    """``ops.forecast_accuracy`` rows from scored forecasts (see the module docstring)."""
    long = _segments(scored)
    err = long["p50"] - long["actual"]
    has_scale = long["scale"].notna()
    long = long.assign(
        abs_error=err.abs(),
        signed_error=err,
        covered=((long["actual"] >= long["p10"]) & (long["actual"] <= long["p90"])).astype(float),
        mase_num=err.abs().where(has_scale, 0.0),
        mase_den=long["scale"].fillna(0.0),
    )
    g = long.groupby(GROUP, sort=True).agg(
        model_version=("model_version", "max"),
        n_forecasts=("p50", "size"),
        actual_quantity=("actual", "sum"),
        forecast_quantity=("p50", "sum"),
        abs_error=("abs_error", "sum"),
        signed_error=("signed_error", "sum"),
        p10_p90_coverage=("covered", "mean"),
        mase_num=("mase_num", "sum"),
        mase_den=("mase_den", "sum"),
        last_forecast_date=("forecast_date", "max"),
    )
    g = g.reset_index()
    demand = g["actual_quantity"].where(g["actual_quantity"] > 0)
    g["wape"] = g["abs_error"] / demand
    g["bias"] = g["signed_error"] / demand
    g["mase"] = g["mase_num"] / g["mase_den"].where(g["mase_den"] > 0)
    g.insert(0, "evaluation_date", pd.Timestamp(evaluation_date))
    return g.drop(columns=["signed_error", "mase_num", "mase_den"])


def score_accuracy(wh: Warehouse, evaluation_date: date, lookback_days: int) -> pd.DataFrame:
    """Score the published runs on ``evaluation_date``; replace its rows in ``ops.forecast_accuracy``.

    One run at a time, so memory is bounded by one run's forecasts. Returns the rows
    written (the table's grain).
    """
    runs = runs_to_score(wh, evaluation_date, lookback_days)
    parts: list[pd.DataFrame] = []
    if runs:
        first = min(runs) - timedelta(days=SCALE_WINDOW_DAYS + SEASON_DAYS)
        sales, starts = sales_window(wh, first, evaluation_date)
        for run in runs:
            scored = scored_rows(run_forecasts(wh, run, evaluation_date), sales, starts)
            if not scored.empty:
                parts.append(aggregate(scored, evaluation_date))
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    with wh.transaction():
        wh.execute(f"delete from {TABLE} where evaluation_date = ?", [evaluation_date])
        if not rows.empty:
            wh.insert_arrow(TABLE, _as_arrow(rows))
    log.info(
        "accuracy %s: %d published runs scored (lookback %d days), %d forecasts, %d rows",
        evaluation_date,
        len(runs),
        lookback_days,
        forecasts_scored(rows),
        len(rows),
    )
    return rows


def stored_accuracy(wh: Warehouse, evaluation_date: date) -> pd.DataFrame:
    """The ``ops.forecast_accuracy`` rows that the monitor of ``evaluation_date`` wrote."""
    return wh.df(f"select * from {TABLE} where evaluation_date = ?", [evaluation_date])


def _as_arrow(rows: pd.DataFrame) -> pa.Table:
    out = rows.copy()
    for col in ("evaluation_date", "run_date", "last_forecast_date"):
        out[col] = pd.to_datetime(out[col]).dt.date
    for col in ("horizon_min", "horizon_max"):
        out[col] = out[col].astype("int32")
    out["n_forecasts"] = out["n_forecasts"].astype("int64")
    return pa.Table.from_pandas(out, preserve_index=False)


def _overall(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["segment_type"] == "all"] if len(rows) else rows


def forecasts_scored(rows: pd.DataFrame) -> int:
    """Forecasts behind ``ops.forecast_accuracy`` rows (each counted once, in segment 'all')."""
    return int(_overall(rows)["n_forecasts"].sum()) if len(rows) else 0


def pooled_wape(
    rows: pd.DataFrame, max_horizon: int | None = None, model_version: str | None = None
) -> float | None:
    """WAPE pooled over every scored forecast of ``ops.forecast_accuracy`` rows.

    Optionally only buckets that end at or before ``max_horizon`` days ahead, and
    only runs of ``model_version``. None when there was no demand.
    """
    part = _overall(rows)
    if len(part) and max_horizon is not None:
        part = part[part["horizon_max"] <= max_horizon]
    if len(part) and model_version is not None:
        part = part[part["model_version"] == model_version]
    demand = float(part["actual_quantity"].sum()) if len(part) else 0.0
    if demand <= 0:
        return None
    return float(part["abs_error"].sum() / demand)
