"""What the nightly report shows, read through the ``Warehouse`` interface.

Portable SQL (DuckDB and PostgreSQL): ``?`` placeholders, date bounds computed in
Python. A table that does not exist yet (marts before the first ``dbt build``,
``ops.feature_drift`` before the monitor stage) yields an empty frame or None, so
the report of a half-built warehouse still renders and says what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd

from nightcast.warehouse.base import Warehouse
from nightcast.warehouse.names import names

ACTUALS_DAYS = 56
RECENT_DAYS = 28
ACCURACY_RUNS_DAYS = 90
MOVERS = 10
MAX_CATEGORIES = 12
HORIZON_BUCKETS = ((1, 7, "1-7 days"), (8, 14, "8-14 days"), (15, 28, "15-28 days"))


@dataclass(frozen=True)
class Headline:
    """The numbers at the top of the report, for run date D."""

    run_date: date
    run_status: str
    model_version: str
    series_forecast: int
    p50_next_7: float
    p50_next_28: float
    actual_last_28: float
    is_stale: bool  # as of D: run D was not published
    stale_reason: str
    bi_run: date | None = None  # the run BI showed as of D (latest published); None: none yet

    @property
    def published(self) -> bool:
        """Whether run D itself was published; otherwise it has no forecast to headline."""
        return self.run_status == "published"


@dataclass(frozen=True)
class ReportData:
    """Everything one report renders; frames are small (aggregates, top-N)."""

    headline: Headline
    previous_run: date | None
    totals: pd.DataFrame  # one row per forecast date: p10, p50, p90 summed over series
    actuals: pd.DataFrame  # one row per sales date: quantity summed over series
    category_forecast: pd.DataFrame  # one row per category and forecast date
    category_actuals: pd.DataFrame  # one row per category and sales date
    accuracy: pd.DataFrame  # one row per run date and horizon bucket: wape
    movers: pd.DataFrame  # one row per series (top movers), with item and location names
    dq: pd.DataFrame  # ops.dq_results rows of D
    quarantine: pd.DataFrame  # one row per source, table and held_back: rows, top reasons
    schema_drift: pd.DataFrame  # ops.schema_drift rows of D
    feature_drift: pd.DataFrame | None  # ops.feature_drift rows of D; None: no table


def exists(wh: Warehouse, qualified: str) -> bool:
    """Whether table or view ``schema.name`` exists in the warehouse."""
    schema, name = qualified.split(".")
    return bool(wh.tables([schema]).count((schema, name)))


def _frame(
    wh: Warehouse, needs: str, sql: str, params: list[Any], columns: list[str]
) -> pd.DataFrame:
    """``sql``'s result, or an empty frame with ``columns`` when table ``needs`` is missing."""
    if not exists(wh, needs):
        return pd.DataFrame(columns=columns)
    df = wh.df(sql, params)
    df.columns = columns
    return df


def _dates(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    for col in cols:
        df[col] = pd.to_datetime(df[col]).dt.date
    return df


def _run(wh: Warehouse, run_date: date) -> tuple[str, str]:
    row = wh.fetchone(
        "select status, model_version from forecast.runs where run_date = ?", [run_date]
    )
    return (str(row[0]), str(row[1] or "none")) if row else ("not started", "none")


def freshness(wh: Warehouse) -> tuple[bool | None, str]:
    """(is_stale, stale_reason) as BI reads them now in ``marts.forecast_freshness``;
    None when the view is missing or empty, the reason then says why."""
    if not exists(wh, "marts.forecast_freshness"):
        return None, "marts.forecast_freshness does not exist yet (run dbt build)"
    row = wh.fetchone("select is_stale, stale_reason from marts.forecast_freshness")
    if row is None:
        return None, "marts.forecast_freshness has no row"
    return bool(row[0]), str(row[1] or "")


def published_as_of(wh: Warehouse, run_date: date) -> date | None:
    """The run BI showed once night D had run: the latest published run up to D."""
    row = wh.fetchone(
        "select max(run_date) from forecast.runs where status = 'published' and run_date <= ?",
        [run_date],
    )
    return row[0] if row and row[0] is not None else None


def freshness_as_of(wh: Warehouse, run_date: date, shown: date | None) -> tuple[bool, str]:
    """(stale, why) once night D had run: stale unless run D was published.

    As of D, not of today: the live view ``marts.forecast_freshness`` answers for the
    wall clock, so a report of an older night read from it changed with the day it was
    rendered. ``shown``: the run BI showed (:func:`published_as_of`).
    """
    row = wh.fetchone("select status, message from forecast.runs where run_date = ?", [run_date])
    shows = f"BI shows run {shown}" if shown else "BI shows no forecast"
    if row is None:
        return True, f"no run for {run_date} was recorded; {shows}"
    status, message = str(row[0]), str(row[1] or "").strip().split("\n")[0]
    if status == "published":
        return False, ""
    detail = f": {message}" if message else ""
    return True, f"run {run_date} is {status}{detail}; {shows}"


def served_run(wh: Warehouse) -> date | None:
    """The run BI serves: the latest published one (``marts.forecast_latest`` shows it)."""
    row = wh.fetchone("select max(run_date) from forecast.runs where status = 'published'")
    return row[0] if row and row[0] is not None else None


def previous_published(wh: Warehouse, run_date: date) -> date | None:
    """The latest published run before ``run_date``."""
    row = wh.fetchone(
        "select max(run_date) from forecast.runs where status = 'published' and run_date < ?",
        [run_date],
    )
    return row[0] if row and row[0] is not None else None


def forecast_totals(wh: Warehouse, run_date: date) -> pd.DataFrame:
    """One row per forecast date of run D: P10, P50 and P90 summed over every series."""
    df = wh.df(
        "select forecast_date, sum(p10), sum(p50), sum(p90), count(*) from forecast.forecasts "
        "where run_date = ? group by forecast_date order by forecast_date",
        [run_date],
    )
    df.columns = ["forecast_date", "p10", "p50", "p90", "series"]
    return _dates(df, "forecast_date")


def actual_totals(wh: Warehouse, run_date: date, days: int = ACTUALS_DAYS) -> pd.DataFrame:
    """One row per sales date in the ``days`` days up to D: quantity summed over series."""
    df = _frame(
        wh,
        "marts.fct_sales_daily",
        "select sales_date, sum(quantity) from marts.fct_sales_daily "
        "where sales_date > ? and sales_date <= ? group by sales_date order by sales_date",
        [run_date - timedelta(days=days), run_date],
        ["sales_date", "quantity"],
    )
    return _dates(df, "sales_date")


def category_forecast(wh: Warehouse, run_date: date) -> pd.DataFrame:
    """One row per item category and forecast date of run D (P10/P50/P90 summed)."""
    if not exists(wh, "marts.dim_item"):
        df = forecast_totals(wh, run_date).drop(columns="series")
        return df.assign(category="all items")
    df = wh.df(
        "select coalesce(i.category, 'unknown'), f.forecast_date, sum(f.p10), sum(f.p50), "
        "sum(f.p90) from forecast.forecasts as f left join marts.dim_item as i "
        "on i.item_id = f.item_id where f.run_date = ? group by 1, 2 order by 1, 2",
        [run_date],
    )
    df.columns = ["category", "forecast_date", "p10", "p50", "p90"]
    return _dates(df, "forecast_date")


def category_actuals(wh: Warehouse, run_date: date, days: int = ACTUALS_DAYS) -> pd.DataFrame:
    """One row per item category and sales date in the ``days`` days up to D."""
    if not exists(wh, "marts.dim_item"):
        return actual_totals(wh, run_date, days).assign(category="all items")
    df = _frame(
        wh,
        "marts.fct_sales_daily",
        "select coalesce(i.category, 'unknown'), s.sales_date, sum(s.quantity) "
        "from marts.fct_sales_daily as s left join marts.dim_item as i on i.item_id = s.item_id "
        "where s.sales_date > ? and s.sales_date <= ? group by 1, 2 order by 1, 2",
        [run_date - timedelta(days=days), run_date],
        ["category", "sales_date", "quantity"],
    )
    return _dates(df, "sales_date")


def accuracy_trend(wh: Warehouse, run_date: date, days: int = ACCURACY_RUNS_DAYS) -> pd.DataFrame:
    """One row per scored run date and horizon bucket: WAPE of P50 (sum |error| / sum actual),
    as known on D: forecast dates after D are left out (the mart scores them once their
    actuals arrive, so a report of an older night would otherwise change with later nights)."""
    df = _frame(
        wh,
        "marts.forecast_accuracy",
        "select run_date, horizon, abs_error, actual_quantity from marts.forecast_accuracy "
        "where run_date <= ? and run_date > ?",
        [run_date, run_date - timedelta(days=days)],
        ["run_date", "horizon", "abs_error", "actual_quantity"],
    )
    days_to_d = (pd.Timestamp(run_date) - pd.to_datetime(df["run_date"])).dt.days
    df = df[days_to_d >= df["horizon"].astype(int)]
    rows = []
    for lo, hi, label in HORIZON_BUCKETS:
        part = df[(df["horizon"] >= lo) & (df["horizon"] <= hi)]
        sums = part.groupby("run_date")[["abs_error", "actual_quantity"]].sum()
        for day, r in sums.iterrows():
            if r["actual_quantity"] > 0:
                rows.append((day, label, r["abs_error"] / r["actual_quantity"]))
    out = pd.DataFrame(rows, columns=["run_date", "bucket", "wape"])
    return _dates(out, "run_date").sort_values(["bucket", "run_date"], ignore_index=True)


def _series_p50(wh: Warehouse, run: date, days: int) -> pd.DataFrame:
    df = wh.df(
        "select item_id, location_id, sum(p50) from forecast.forecasts "
        "where run_date = ? and forecast_date > ? and forecast_date <= ? group by 1, 2",
        [run, run, run + timedelta(days=days)],
    )
    df.columns = ["item_id", "location_id", "p50"]
    return df


def movers(wh: Warehouse, run_date: date, previous: date | None, n: int = MOVERS) -> pd.DataFrame:
    """The ``n`` series whose 28-day P50 total moved most: vs the previous published run
    (when there is one, else vs the last 28 days of actuals). One row per series."""
    cur = _series_p50(wh, run_date, RECENT_DAYS).rename(columns={"p50": "p50_28"})
    if previous is not None:
        prev = _series_p50(wh, previous, RECENT_DAYS).rename(columns={"p50": "previous_p50_28"})
        cur = cur.merge(prev, on=["item_id", "location_id"], how="left")
    else:
        cur["previous_p50_28"] = float("nan")
    actual = _frame(
        wh,
        "marts.fct_sales_daily",
        "select item_id, location_id, sum(quantity) from marts.fct_sales_daily "
        "where sales_date > ? and sales_date <= ? group by 1, 2",
        [run_date - timedelta(days=RECENT_DAYS), run_date],
        ["item_id", "location_id", "actual_28"],
    )
    cur = cur.merge(actual, on=["item_id", "location_id"], how="left")
    cur["actual_28"] = cur["actual_28"].astype(float).fillna(0.0)
    cur["change_vs_previous"] = cur["p50_28"] - cur["previous_p50_28"]
    cur["change_vs_actual"] = cur["p50_28"] - cur["actual_28"]
    key = "change_vs_previous" if previous is not None else "change_vs_actual"
    cur = cur.assign(_size=cur[key].abs()).sort_values(
        ["_size", "item_id", "location_id"], ascending=[False, True, True]
    )
    top = cur.drop(columns="_size").head(n).reset_index(drop=True)
    # People know items and locations by name (the ERP's, in the dbt dimensions); the id
    # stands in where a dimension has none.
    for kind in ("item", "location"):
        ids = top[f"{kind}_id"].astype(str)
        found = names(wh, kind, ids)
        top[f"{kind}_name"] = [found.get(i, i) for i in ids]
    return top


def dq_results(wh: Warehouse, run_date: date) -> pd.DataFrame:
    df = wh.df(
        "select suite, expectation, column_name, severity, success, observed_value "
        "from ops.dq_results where run_date = ? order by success, severity, suite, expectation",
        [run_date],
    )
    df.columns = ["suite", "expectation", "column_name", "severity", "success", "observed_value"]
    return df


def quarantine_counts(wh: Warehouse, run_date: date) -> pd.DataFrame:
    """One row per source, table and ``held_back``: rejected input rows of D and their reasons.

    ``held_back``: the gate stopped the night, so none of its rows was loaded.
    """
    df = wh.df(
        "select source, table_name, held_back, reason, row_number from ops.quarantine "
        "where run_date = ?",
        [run_date],
    )
    df.columns = ["source", "table_name", "held_back", "reason", "row_number"]
    df["held_back"] = df["held_back"].fillna(False).astype(bool)
    rows = []
    for (source, table, held), part in df.groupby(["source", "table_name", "held_back"], sort=True):
        reasons = part.groupby("reason")["row_number"].nunique().sort_values(ascending=False)
        text = "; ".join(f"{reason} ({n:,})" for reason, n in reasons.head(3).items())
        rows.append((source, table, part["row_number"].nunique(), text, bool(held)))
    return pd.DataFrame(rows, columns=["source", "table_name", "rows", "reasons", "held_back"])


def schema_drift(wh: Warehouse, run_date: date) -> pd.DataFrame:
    df = wh.df(
        "select source, table_name, column_name, change from ops.schema_drift "
        "where run_date = ? order by 1, 2, 3",
        [run_date],
    )
    df.columns = ["source", "table_name", "column_name", "change"]
    return df


def feature_drift(wh: Warehouse, run_date: date) -> pd.DataFrame | None:
    """``ops.feature_drift`` rows of D, worst first; None when the table does not exist."""
    if not exists(wh, "ops.feature_drift"):
        return None
    df = wh.df(
        "select model_version, feature, psi, ks, status from ops.feature_drift "
        "where run_date = ? order by psi desc, feature",
        [run_date],
    )
    df.columns = ["model_version", "feature", "psi", "ks", "status"]
    return df


def headline(
    wh: Warehouse, run_date: date, totals: pd.DataFrame, actuals: pd.DataFrame
) -> Headline:
    status, version = _run(wh, run_date)
    series = wh.fetchone(
        "select count(*) from (select distinct item_id, location_id from forecast.forecasts "
        "where run_date = ?) as s",
        [run_date],
    )
    served = published_as_of(wh, run_date)
    stale, reason = freshness_as_of(wh, run_date, served)
    ahead = totals["forecast_date"].map(lambda d: (d - run_date).days) if len(totals) else None
    return Headline(
        run_date=run_date,
        run_status=status,
        model_version=version,
        series_forecast=int(series[0]) if series else 0,
        p50_next_7=float(totals.loc[ahead <= 7, "p50"].sum()) if ahead is not None else 0.0,
        p50_next_28=float(totals.loc[ahead <= 28, "p50"].sum()) if ahead is not None else 0.0,
        actual_last_28=float(
            actuals.loc[
                actuals["sales_date"] > run_date - timedelta(days=RECENT_DAYS), "quantity"
            ].sum()
        ),
        is_stale=stale,
        stale_reason=reason,
        bi_run=served,
    )


def load_report_data(wh: Warehouse, run_date: date) -> ReportData:
    """Read everything the report of run date D shows."""
    totals = forecast_totals(wh, run_date)
    actuals = actual_totals(wh, run_date)
    previous = previous_published(wh, run_date)
    return ReportData(
        headline=headline(wh, run_date, totals, actuals),
        previous_run=previous,
        totals=totals,
        actuals=actuals,
        category_forecast=category_forecast(wh, run_date),
        category_actuals=category_actuals(wh, run_date),
        accuracy=accuracy_trend(wh, run_date),
        movers=movers(wh, run_date, previous),
        dq=dq_results(wh, run_date),
        quarantine=quarantine_counts(wh, run_date),
        schema_drift=schema_drift(wh, run_date),
        feature_drift=feature_drift(wh, run_date),
    )
