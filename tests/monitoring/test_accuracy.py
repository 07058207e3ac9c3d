"""Accuracy scoring of published forecasts: exact metrics, late and revised actuals, reruns.

Each test runs on DuckDB and on PostgreSQL (same code, another URL).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from _services import fresh_postgres_database

from nightcast.monitoring.accuracy import score_accuracy
from nightcast.warehouse.base import Warehouse, open_warehouse

RUN = date(2025, 3, 20)
A = ("demo:A", "demo:L1")  # category toys
B = ("demo:B", "demo:L2")  # category food


@pytest.fixture(params=["duckdb", "postgres"])
def wh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    url = (
        fresh_postgres_database("nightcast_accuracy_test")
        if request.param == "postgres"
        else f"duckdb:///{tmp_path / 'wh.duckdb'}"
    )
    with open_warehouse(url) as w:
        w.execute("create schema if not exists marts")
        w.execute(
            "create table marts.fct_sales_daily (item_id varchar, location_id varchar, "
            "sales_date date, quantity double precision, is_stockout boolean)"
        )
        w.execute("create table marts.dim_item (item_id varchar, category varchar)")
        w.execute("insert into marts.dim_item values ('demo:A', 'toys'), ('demo:B', 'food')")
        # History for the MASE scale. A: 10 a day for a week, 4 the next, 10 again up to
        # the run date: every lag-7 error is 6, scale 6. B: sold 2 on 03-10 only (sparse:
        # other days are zero); lag-7 errors 2, 0, 0, 0 from 03-17 -> scale 0.5.
        for i in range(20):
            day = date(2025, 3, 1) + timedelta(days=i)
            sell(w, A, day, 4.0 if 7 <= i < 14 else 10.0)
        sell(w, B, date(2025, 3, 10), 2.0)
        publish(w, RUN, "published")
        # Horizons 1 and 2: (p10, p50, p90).
        forecast(w, RUN, {A: [(5, 8, 12), (5, 9, 11)], B: [(0, 1, 2), (0, 1, 3)]})
        # A run that was never published is not scored.
        publish(w, date(2025, 3, 21), "loaded")
        forecast(w, date(2025, 3, 21), {A: [(0, 100, 200)]})
        yield w


def sell(w: Warehouse, series: tuple[str, str], day: date, qty: float) -> None:
    w.execute(
        "delete from marts.fct_sales_daily where item_id = ? and location_id = ? and sales_date = ?",
        [*series, day],
    )
    w.execute("insert into marts.fct_sales_daily values (?, ?, ?, ?, false)", [*series, day, qty])


def publish(w: Warehouse, run: date, status: str) -> None:
    w.execute("insert into forecast.runs (run_date, status) values (?, ?)", [run, status])


def forecast(
    w: Warehouse, run: date, quantiles: dict[tuple[str, str], list[tuple[int, int, int]]]
) -> None:
    """Load run ``run``'s forecasts: (p10, p50, p90) per series for horizons 1, 2, ..."""
    rows = [
        {
            "run_date": run,
            "item_id": item,
            "location_id": loc,
            "forecast_date": run + timedelta(days=h),
            "horizon": h,
            "p10": float(p10),
            "p50": float(p50),
            "p90": float(p90),
            "model_version": "m1",
        }
        for (item, loc), qs in quantiles.items()
        for h, (p10, p50, p90) in enumerate(qs, start=1)
    ]
    w.replace_partition("forecast.forecasts", "run_date", run, pa.Table.from_pylist(rows))


def scores(w: Warehouse, night: date) -> dict[tuple[str, str], dict[str, Any]]:
    df = w.df(
        "select * from ops.forecast_accuracy where evaluation_date = ? and run_date = ?",
        [night, RUN],
    )
    return {(r["segment_type"], r["segment"]): r for r in df.to_dict("records")}


def test_exact_metrics_by_segment(wh: Warehouse) -> None:
    sell(wh, A, date(2025, 3, 21), 10.0)
    sell(wh, A, date(2025, 3, 22), 12.0)
    sell(wh, B, date(2025, 3, 22), 3.0)  # B on 03-21: no row, i.e. zero demand
    score_accuracy(wh, date(2025, 3, 22), lookback_days=56)
    got = scores(wh, date(2025, 3, 22))
    assert set(got) == {
        ("all", "all"), ("category", "toys"), ("category", "food"),
        ("location", "demo:L1"), ("location", "demo:L2"),
    }  # fmt: skip
    every = got[("all", "all")]
    # errors p50 - actual: A -2, -3; B +1, -2; actual total 25
    assert every["horizon_bucket"] == "1-7" and every["n_forecasts"] == 4
    assert every["actual_quantity"] == 25.0
    assert every["wape"] == pytest.approx(8 / 25)
    assert every["bias"] == pytest.approx(-6 / 25)
    assert every["p10_p90_coverage"] == pytest.approx(0.75)  # A's 12 > p90 11
    assert every["mase"] == pytest.approx(8 / (6 + 6 + 0.5 + 0.5))
    toys = got[("category", "toys")]
    assert (toys["wape"], toys["bias"], toys["mase"]) == pytest.approx((5 / 22, -5 / 22, 5 / 12))
    l2 = got[("location", "demo:L2")]
    assert (l2["wape"], l2["bias"], l2["p10_p90_coverage"], l2["mase"]) == pytest.approx(
        (1.0, -1 / 3, 1.0, 3.0)
    )
    assert wh.fetchone(
        "select count(*) from ops.forecast_accuracy where run_date = ?", [date(2025, 3, 21)]
    ) == (0,)


def test_late_and_revised_actuals_change_the_score_and_reruns_replace(wh: Warehouse) -> None:
    sell(wh, A, date(2025, 3, 21), 10.0)
    sell(wh, B, date(2025, 3, 22), 3.0)
    score_accuracy(wh, date(2025, 3, 22), lookback_days=56)
    # A's 03-22 sales are not loaded yet: scored as zero demand (err 9).
    assert scores(wh, date(2025, 3, 22))[("all", "all")]["wape"] == pytest.approx(14 / 13)

    sell(wh, A, date(2025, 3, 22), 12.0)  # the late actual arrives the next night
    score_accuracy(wh, date(2025, 3, 23), lookback_days=56)
    assert scores(wh, date(2025, 3, 23))[("all", "all")]["wape"] == pytest.approx(8 / 25)
    # The previous night's scoring is kept as it was.
    assert scores(wh, date(2025, 3, 22))[("all", "all")]["wape"] == pytest.approx(14 / 13)

    sell(wh, A, date(2025, 3, 21), 14.0)  # revised in the ERP: 10 -> 14
    # A lookback of 3 days still rescores the whole run (03-22 is in the window).
    score_accuracy(wh, date(2025, 3, 24), lookback_days=3)
    revised = scores(wh, date(2025, 3, 24))
    assert revised[("all", "all")]["wape"] == pytest.approx(12 / 29)
    assert revised[("all", "all")]["bias"] == pytest.approx(-10 / 29)

    score_accuracy(wh, date(2025, 3, 24), lookback_days=3)  # rerun of the same night
    assert scores(wh, date(2025, 3, 24)) == revised
    assert wh.fetchone(
        "select count(*) from ops.forecast_accuracy where evaluation_date = ?", [date(2025, 3, 24)]
    ) == (5,)

    # Out of the lookback: nothing to score, and a rerun clears that night's rows.
    scored = score_accuracy(wh, date(2025, 4, 30), lookback_days=3)
    assert scored.empty and scores(wh, date(2025, 4, 30)) == {}
