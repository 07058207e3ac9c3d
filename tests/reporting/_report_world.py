"""A hand-built DuckDB warehouse with known numbers for the nightly report tests.

Two published runs (D-1 and D), four series in two categories, 56 days of actuals,
three scored runs in ``marts.forecast_accuracy``, DQ results, quarantined rows,
schema drift and (optionally) feature drift. The marts the report reads are plain
tables here with the columns it uses; the DAG-built ones are covered by the
end-to-end test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from html import unescape
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from nightcast.config import Settings, get_settings
from nightcast.warehouse.base import Warehouse, open_warehouse

D = date(2025, 5, 1)
PREVIOUS = D - timedelta(days=1)
# series -> (category, P50 per day of run D, P50 per day of run D-1, actual per day)
SERIES = {
    ("shop:A", "shop:L1"): ("bakery", 10.0, 8.0, 9.0),
    ("shop:B", "shop:L1"): ("bakery", 5.0, 5.0, 4.0),
    ("shop:C", "shop:L1"): ("dairy", 2.0, 2.0, 2.0),
    ("shop:C", "shop:L2"): ("dairy", 3.0, 3.5, 3.0),
}
HORIZON = 28
# The dimensions' names; shop:L2 has a row without one (the report falls back to the id).
NAMES = {
    "shop:A": "Sourdough loaf",
    "shop:B": "Rye bread",
    "shop:C": "Whole milk",
    "shop:L1": "Main Street",
}


@dataclass(frozen=True)
class Known:
    """The warehouse's data as frames, for tests to compute expectations independently."""

    forecasts: pd.DataFrame  # run D only
    actuals: pd.DataFrame
    settings: Settings


def _forecasts(run: date, p50_of: int) -> pd.DataFrame:
    rows = []
    for (item, loc), spec in SERIES.items():
        for h in range(1, HORIZON + 1):
            p50 = spec[p50_of]
            rows.append(
                (run, item, loc, run + timedelta(days=h), h, 0.5 * p50, p50, 1.5 * p50, "m1")
            )
    cols = ["run_date", "item_id", "location_id", "forecast_date", "horizon"]
    return pd.DataFrame(rows, columns=[*cols, "p10", "p50", "p90", "model_version"])


def _actuals() -> pd.DataFrame:
    rows = [
        (item, loc, D - timedelta(days=k), spec[3])
        for (item, loc), spec in SERIES.items()
        for k in range(70)
    ]
    return pd.DataFrame(rows, columns=["item_id", "location_id", "sales_date", "quantity"])


def _insert(wh: Warehouse, qualified: str, df: pd.DataFrame) -> None:
    wh.insert_arrow(qualified, pa.Table.from_pandas(df, preserve_index=False))


def build_marts(wh: Warehouse, actuals: pd.DataFrame) -> None:
    wh.execute("create schema if not exists marts")
    wh.execute(
        "create table marts.fct_sales_daily (item_id varchar, location_id varchar, "
        "sales_date date, quantity double precision)"
    )
    _insert(wh, "marts.fct_sales_daily", actuals)
    wh.execute("create table marts.dim_item (item_id varchar, item_name varchar, category varchar)")
    for item, cat in {(i, s[0]) for (i, _), s in SERIES.items()}:
        wh.execute("insert into marts.dim_item values (?, ?, ?)", [item, NAMES[item], cat])
    wh.execute("create table marts.dim_location (location_id varchar, location_name varchar)")
    for loc in sorted({loc for _, loc in SERIES}):
        wh.execute("insert into marts.dim_location values (?, ?)", [loc, NAMES.get(loc)])
    wh.execute(
        "create table marts.forecast_accuracy (run_date date, horizon integer, "
        "abs_error double precision, actual_quantity double precision)"
    )
    # Runs old enough for all 28 horizons to have been scored by night D.
    for k, wape in ((40, 0.30), (39, 0.25), (38, 0.20)):
        for h in range(1, HORIZON + 1):
            wh.execute(
                "insert into marts.forecast_accuracy values (?, ?, ?, 100)",
                [D - timedelta(days=k), h, wape * 100 * (1 + (h > 7))],
            )
    # The live view answers for the wall clock: long after these nights, stale. A report of
    # night D says what was true once D had run, whenever it is rendered.
    wh.execute("create table marts.forecast_freshness (is_stale boolean, stale_reason varchar)")
    wh.execute(
        "insert into marts.forecast_freshness values (true, ?)",
        [f"no run for {date.today() - timedelta(days=1)} was published by 06:30; BI shows run {D}"],
    )


def build_ops(wh: Warehouse, feature_drift: bool) -> None:
    for severity, ok, name in (
        ("critical", True, "not_null"),
        ("critical", True, "unique"),
        ("warning", False, "row_count_within_band"),
    ):
        wh.execute(
            "insert into ops.dq_results values (?, 'order_lines', ?, 'quantity', ?, ?, '3', '')",
            [D, name, severity, ok],
        )
    for row, reason in ((1, "unparseable date"), (2, "unparseable date"), (3, "negative price")):
        wh.execute(
            "insert into ops.quarantine (run_date, source, table_name, row_number, natural_key, "
            "column_name, reason, raw_value, raw_row) "
            "values (?, 'shop', 'order_lines', ?, null, 'c', ?, 'x', '{}')",
            [D, row, reason],
        )
    wh.execute(
        "insert into ops.schema_drift values (?, 'shop', 'order_lines', 'loyalty_tier', 'added', 'p')",
        [D],
    )
    if feature_drift:
        # No table check: ops.feature_drift is created by ensure_schema.
        for feature, psi, ks, status in (
            ("ewm_0.3", 0.31, 0.2, "drift"),
            ("country", 0.02, None, "ok"),
        ):
            wh.execute(
                "insert into ops.feature_drift (run_date, model_version, feature, feature_kind, "
                "psi, ks, status, threshold, rows_compared) values (?, 'm1', ?, 'numeric', ?, ?, ?, 0.2, 4)",
                [D, feature, psi, ks, status],
            )


def build_warehouse(tmp: Path, *, feature_drift: bool = True, url: str | None = None) -> Known:
    """A warehouse holding the known data (DuckDB in ``tmp``, or ``url``); Settings point at it."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NIGHTCAST_DATA_DIR", str(tmp))
    mp.setenv("NIGHTCAST_WAREHOUSE_PATH", str(tmp / "wh.duckdb"))
    mp.delenv("NIGHTCAST_WAREHOUSE_URL", raising=False)
    if url:
        mp.setenv("NIGHTCAST_WAREHOUSE_URL", url)
    mp.delenv("NIGHTCAST_STATSD_HOST", raising=False)
    settings = get_settings()
    mp.undo()
    fc, actuals = _forecasts(D, 1), _actuals()
    with open_warehouse(settings.warehouse_url) as wh:
        for run, frame in ((D, fc), (PREVIOUS, _forecasts(PREVIOUS, 2))):
            with wh.transaction():  # PostgreSQL: a partition per run date
                data = pa.Table.from_pandas(frame, preserve_index=False)
                wh.replace_partition("forecast.forecasts", "run_date", run, data)
        for run in (PREVIOUS, D):
            wh.execute(
                "insert into forecast.runs values (?, 'm1', 'published', 4, 28, 112, null, null)",
                [run],
            )
        build_marts(wh, actuals)
        build_ops(wh, feature_drift)
    return Known(forecasts=fc, actuals=actuals, settings=settings)


def text_of(page: str, element_id: str) -> str:
    """The text of the element with ``element_id`` in a report page, tags stripped."""
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</(p|div)>', page, re.S)
    assert found, element_id
    return unescape(re.sub(r"<[^>]+>", "", found.group(1)))
