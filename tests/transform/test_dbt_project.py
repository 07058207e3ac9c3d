"""Builds the dbt project on a tiny hand-made DuckDB warehouse and checks the marts.

One ``dbt build`` on good data (asserted on below), then one after corrupting a
published forecast (p10 > p50), which must fail on the expression test. The
demand numbers are hand-computed from the rows inserted here.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import pytest
from dbt.cli.main import dbtRunner, dbtRunnerResult

from nightcast.transform.dbt import DbtBuildError, DbtTestFailed, build_error
from nightcast.warehouse.schema import ALL_TABLES

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

D = dt.date.fromisoformat
TS = dt.datetime.fromisoformat

CONTRACT_COLUMNS = [
    "item_id",
    "location_id",
    "forecast_date",
    "horizon",
    "p10",
    "p50",
    "p90",
    "model_version",
    "run_date",
    "published_at",
]
CONVENIENCE_COLUMNS = ["item_name", "category", "location_name"]


# --------------------------------------------------------------------------- data

ITEMS = [
    # source, item_id, sku, name, department, category, subcategory, list_price,
    # launch_date, discontinue_date, updated_at, _run_date
    (
        "demo",
        "demo:A",
        "SKU-A",
        "Widget",
        "Hardware",
        "Tools",
        "Hand tools",
        2.0,
        D("2023-01-01"),
        None,
        TS("2024-03-01 10:00"),
        D("2024-03-04"),
    ),
    (
        "demo",
        "demo:B",
        "SKU-B",
        "Gadget",
        "Hardware",
        "Gizmos",
        "Small gizmos",
        3.0,
        None,
        None,
        TS("2024-03-01 10:00"),
        D("2024-03-04"),
    ),
]

LOCATIONS = [
    (
        "demo",
        "demo:L1",
        "Main street",
        "store",
        "DE",
        "North",
        TS("2024-03-01 10:00"),
        D("2024-03-04"),
    ),
    ("demo", "demo:L2", "Online", "online", "DE", "All", TS("2024-03-01 10:00"), D("2024-03-04")),
]


def _line(
    n: int,
    item: str,
    loc: str,
    day: str,
    qty: float,
    price: float | None,
    amount: float | None,
    status: str,
) -> tuple[Any, ...]:
    return (
        "demo",
        f"demo:OL{n}",
        f"demo:O{n}",
        D(day),
        item,
        loc,
        qty,
        price,
        amount,
        "EUR",
        status,
        TS(f"{day} 12:00"),
        D("2024-03-04"),
    )


ORDER_LINES = [
    _line(1, "demo:A", "demo:L1", "2024-03-01", 5, 2.0, 10.0, "shipped"),
    _line(2, "demo:A", "demo:L1", "2024-03-01", 3, 2.0, None, "open"),  # revenue from price
    _line(3, "demo:A", "demo:L1", "2024-03-01", 4, 2.0, 8.0, "cancelled"),
    _line(4, "demo:A", "demo:L1", "2024-03-02", -2, 2.0, -4.0, "returned"),  # return-only day
    _line(5, "demo:A", "demo:L2", "2024-03-01", 1, 2.0, 2.0, "shipped"),
    _line(6, "demo:B", "demo:L1", "2024-03-02", 7, 3.0, 21.0, "cancelled"),  # cancelled-only day
    _line(7, "demo:B", "demo:L2", "2024-03-03", 2, 3.0, 6.0, "shipped"),
]

PROMOTIONS = [
    # all locations, one day
    (
        "demo",
        "demo:P1",
        "demo:A",
        None,
        D("2024-03-01"),
        D("2024-03-01"),
        10.0,
        None,
        D("2024-03-04"),
    ),
    # one location only
    (
        "demo",
        "demo:P2",
        "demo:B",
        "demo:L2",
        D("2024-03-03"),
        D("2024-03-05"),
        20.0,
        None,
        D("2024-03-04"),
    ),
    # outside every sales day
    (
        "demo",
        "demo:P3",
        "demo:B",
        "demo:L1",
        D("2024-02-01"),
        D("2024-02-05"),
        5.0,
        None,
        D("2024-03-04"),
    ),
]

STOCKOUTS = [
    (
        "demo",
        "demo:S1",
        "demo:B",
        "demo:L1",
        D("2024-03-04"),
        None,
        D("2024-03-04"),
    ),  # stockout-only day
    (
        "demo",
        "demo:S2",
        "demo:A",
        "demo:L2",
        D("2024-03-01"),
        None,
        D("2024-03-04"),
    ),  # day with sales
]

RUNS = [
    # run_date, model_version, status, series_count, horizon_days, rows_forecast, message,
    # published_at
    (D("2024-03-01"), "v1", "published", 1, 2, 2, None, TS("2024-03-02 03:00")),
    (D("2024-03-02"), "v2", "published", 2, 2, 4, None, TS("2024-03-03 03:00")),
    (D("2024-03-03"), "v3", "failed", 1, 2, 2, "forecast stage crashed", None),  # newest failed
]


def _fc(
    run: str,
    item: str,
    loc: str,
    day: str,
    h: int,
    p10: float,
    p50: float,
    p90: float,
    version: str,
) -> tuple[Any, ...]:
    return (D(run), item, loc, D(day), h, p10, p50, p90, version)


FORECASTS = [
    _fc("2024-03-01", "demo:A", "demo:L1", "2024-03-02", 1, 1.0, 2.0, 3.0, "v1"),
    _fc("2024-03-01", "demo:A", "demo:L1", "2024-03-03", 2, 1.0, 2.0, 3.0, "v1"),
    _fc("2024-03-02", "demo:A", "demo:L1", "2024-03-03", 1, 0.0, 1.0, 2.0, "v2"),
    _fc("2024-03-02", "demo:A", "demo:L1", "2024-03-04", 2, 0.0, 1.5, 2.5, "v2"),
    _fc("2024-03-02", "demo:B", "demo:L2", "2024-03-03", 1, 1.0, 3.0, 4.0, "v2"),
    _fc("2024-03-02", "demo:B", "demo:L2", "2024-03-04", 2, 1.0, 3.0, 4.0, "v2"),
    _fc("2024-03-03", "demo:A", "demo:L1", "2024-03-04", 1, 9.0, 9.0, 9.0, "v3"),
    _fc("2024-03-03", "demo:A", "demo:L1", "2024-03-05", 2, 9.0, 9.0, 9.0, "v3"),
]

# (item, location, day) -> quantity, revenue, order_line_count, demand_line_count,
#                          returned_quantity, cancelled_quantity, on_promo, is_stockout
EXPECTED_SALES = {
    ("demo:A", "demo:L1", D("2024-03-01")): (8.0, 16.0, 3, 2, 0.0, 4.0, True, False),
    ("demo:A", "demo:L1", D("2024-03-02")): (0.0, 0.0, 1, 0, 2.0, 0.0, False, False),
    ("demo:A", "demo:L2", D("2024-03-01")): (1.0, 2.0, 1, 1, 0.0, 0.0, True, True),
    ("demo:B", "demo:L1", D("2024-03-02")): (0.0, 0.0, 1, 0, 0.0, 7.0, False, False),
    ("demo:B", "demo:L1", D("2024-03-04")): (0.0, 0.0, 0, 0, 0.0, 0.0, False, True),
    ("demo:B", "demo:L2", D("2024-03-03")): (2.0, 6.0, 1, 1, 0.0, 0.0, True, False),
}


# Explicit column lists, so columns the pipeline adds later (nullable) don't break this.
ROWS: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {
    "raw.items": (
        [
            "source",
            "item_id",
            "sku",
            "name",
            "department",
            "category",
            "subcategory",
            "list_price",
            "launch_date",
            "discontinue_date",
            "updated_at",
            "_run_date",
        ],
        ITEMS,
    ),
    "raw.locations": (
        [
            "source",
            "location_id",
            "name",
            "location_type",
            "country",
            "region",
            "updated_at",
            "_run_date",
        ],
        LOCATIONS,
    ),
    "raw.order_lines": (
        [
            "source",
            "order_line_id",
            "order_id",
            "order_date",
            "item_id",
            "location_id",
            "quantity",
            "unit_price",
            "amount",
            "currency",
            "status",
            "updated_at",
            "_run_date",
        ],
        ORDER_LINES,
    ),
    "raw.promotions": (
        [
            "source",
            "promotion_id",
            "item_id",
            "location_id",
            "start_date",
            "end_date",
            "discount_pct",
            "updated_at",
            "_run_date",
        ],
        PROMOTIONS,
    ),
    "raw.stockouts": (
        [
            "source",
            "stockout_id",
            "item_id",
            "location_id",
            "stockout_date",
            "updated_at",
            "_run_date",
        ],
        STOCKOUTS,
    ),
    "forecast.runs": (
        [
            "run_date",
            "model_version",
            "status",
            "series_count",
            "horizon_days",
            "rows_forecast",
            "message",
            "published_at",
        ],
        RUNS,
    ),
    "forecast.forecasts": (
        [
            "run_date",
            "item_id",
            "location_id",
            "forecast_date",
            "horizon",
            "p10",
            "p50",
            "p90",
            "model_version",
        ],
        FORECASTS,
    ),
}


def _create_warehouse(path: Path) -> None:
    con = duckdb.connect(str(path))
    try:
        for schema, tables in ALL_TABLES.items():
            con.execute(f"create schema if not exists {schema}")
            for table, ddl in tables.items():
                con.execute(f"create table {schema}.{table} ({ddl})")
        for table, (columns, values) in ROWS.items():
            marks = ", ".join("?" * len(columns))
            con.executemany(f"insert into {table} ({', '.join(columns)}) values ({marks})", values)
    finally:
        con.close()


# ------------------------------------------------------------------------- dbt run


@dataclass
class Build:
    result: dbtRunnerResult
    seconds: float

    def failed_nodes(self) -> list[str]:
        assert self.result.result is not None, self.result.exception
        return [
            r.node.unique_id
            for r in self.result.result.results
            if str(r.status) in ("error", "fail")
        ]


def _dbt(tmp: Path, *args: str) -> Build:
    started = time.perf_counter()
    result = dbtRunner().invoke(
        [
            *args,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(tmp / "target"),
            "--log-path",
            str(tmp / "logs"),
            "--no-use-colors",
        ]
    )
    return Build(result=result, seconds=time.perf_counter() - started)


@dataclass
class Warehouse:
    path: Path
    tmp: Path
    first: Build
    broken: Build
    # snapshots of the marts after the good build
    sales: list[tuple[Any, ...]]
    latest_columns: list[str]
    latest: list[tuple[Any, ...]]
    freshness: dict[str, Any]
    accuracy: list[tuple[Any, ...]]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    tmp = tmp_path_factory.mktemp("dbt")
    path = tmp / "warehouse.duckdb"
    _create_warehouse(path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NIGHTCAST_WAREHOUSE_PATH", str(path))
        mp.setenv("DBT_LOG_PATH", str(tmp / "logs"))
        mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        mp.delenv("NIGHTCAST_DBT_TARGET", raising=False)
        for var in ("HOST", "PORT", "USER", "PASSWORD", "DBNAME"):
            mp.delenv(f"NIGHTCAST_PG_{var}", raising=False)

        first = _dbt(tmp, "build", "--target", "duckdb")
        print(f"\ndbt build on the tiny warehouse took {first.seconds:.1f}s")

        # plain (read-write) config: dbt-duckdb may still hold this file open in-process,
        # and DuckDB refuses a second connection with a different configuration
        con = duckdb.connect(str(path))
        try:
            sales = con.execute(
                """
                select item_id, location_id, sales_date, quantity, revenue, order_line_count,
                       demand_line_count, returned_quantity, cancelled_quantity, on_promo,
                       is_stockout
                from marts.fct_sales_daily
                order by item_id, location_id, sales_date
                """
            ).fetchall()
            cur = con.execute(
                "select * from marts.forecast_latest order by item_id, location_id, forecast_date"
            )
            latest_columns = [d[0] for d in cur.description]
            latest = cur.fetchall()
            cur = con.execute("select * from marts.forecast_freshness")
            freshness_rows = cur.fetchall()
            assert len(freshness_rows) == 1
            freshness = dict(zip([d[0] for d in cur.description], freshness_rows[0], strict=True))
            accuracy = con.execute(
                """
                select run_date, horizon, model_version, forecast_count, actual_quantity,
                       abs_error, bias
                from marts.forecast_accuracy
                order by run_date, horizon
                """
            ).fetchall()
        finally:
            con.close()

        # A published forecast with p10 > p50 must fail the build.
        con = duckdb.connect(str(path))
        try:
            con.execute(
                """
                update forecast.forecasts set p10 = 99
                where run_date = date '2024-03-02' and item_id = 'demo:A'
                  and forecast_date = date '2024-03-03'
                """
            )
        finally:
            con.close()
        broken = _dbt(tmp, "build", "--target", "duckdb")

        yield Warehouse(
            path=path,
            tmp=tmp,
            first=first,
            broken=broken,
            sales=sales,
            latest_columns=latest_columns,
            latest=latest,
            freshness=freshness,
            accuracy=accuracy,
        )


# --------------------------------------------------------------------------- tests


def test_build_succeeds(warehouse: Warehouse) -> None:
    assert warehouse.first.result.success, (
        warehouse.first.result.exception,
        warehouse.first.failed_nodes(),
    )
    # well under a minute on the tiny data (typically ~3-6 s including parse)
    assert warehouse.first.seconds < 60


def test_fct_sales_daily_demand_and_flags(warehouse: Warehouse) -> None:
    got = {
        (item, loc, day): (qty, rev, lines, demand_lines, returned, cancelled, promo, stockout)
        for item, loc, day, qty, rev, lines, demand_lines, returned, cancelled, promo, stockout in warehouse.sales
    }
    assert got == EXPECTED_SALES


def test_forecast_latest_shows_only_latest_published_run(warehouse: Warehouse) -> None:
    assert warehouse.latest_columns == CONTRACT_COLUMNS + CONVENIENCE_COLUMNS
    rows = [dict(zip(warehouse.latest_columns, row, strict=True)) for row in warehouse.latest]
    assert len(rows) == 4
    assert {r["run_date"] for r in rows} == {D("2024-03-02")}  # not the newer failed run
    assert {r["model_version"] for r in rows} == {"v2"}
    assert {r["published_at"] for r in rows} == {TS("2024-03-03 03:00")}
    first = rows[0]
    assert (first["item_id"], first["location_id"], first["forecast_date"]) == (
        "demo:A",
        "demo:L1",
        D("2024-03-03"),
    )
    assert (first["horizon"], first["p10"], first["p50"], first["p90"]) == (1, 0.0, 1.0, 2.0)
    assert (first["item_name"], first["category"], first["location_name"]) == (
        "Widget",
        "Tools",
        "Main street",
    )


def test_forecast_freshness_is_stale_after_failed_run(warehouse: Warehouse) -> None:
    f = warehouse.freshness
    assert f["latest_published_run_date"] == D("2024-03-02")
    assert f["published_at"] == TS("2024-03-03 03:00")
    assert f["latest_attempted_run_date"] == D("2024-03-03")
    assert f["latest_attempted_status"] == "failed"
    assert f["latest_attempted_message"] == "forecast stage crashed"
    assert f["is_stale"] is True
    reason = f["stale_reason"]
    assert "2024-03-03" in reason and "failed" in reason and "forecast stage crashed" in reason


def test_forecast_accuracy_scores_published_runs_only(warehouse: Warehouse) -> None:
    # last sales date is 2024-03-04; the failed run v3 is not scored
    assert [(r[0], r[1], r[2], r[3]) for r in warehouse.accuracy] == [
        (D("2024-03-01"), 1, "v1", 1),
        (D("2024-03-01"), 2, "v1", 1),
        (D("2024-03-02"), 1, "v2", 2),
        (D("2024-03-02"), 2, "v2", 2),
    ]
    run2_h1 = warehouse.accuracy[2]
    # A/L1 on 03-03: actual 0 (no row), p50 1; B/L2 on 03-03: actual 2, p50 3
    assert run2_h1[4] == 2.0  # actual_quantity
    assert run2_h1[5] == pytest.approx(2.0)  # abs_error = 1 + 1
    assert run2_h1[6] == pytest.approx(1.0)  # bias = mean(+1, +1)


def test_quantile_violation_fails_build(warehouse: Warehouse) -> None:
    assert not warehouse.broken.result.success
    failed = warehouse.broken.failed_nodes()
    assert failed, "expected a failing test"
    assert all("expression_is_true_forecast_latest" in node for node in failed), failed
    # A test that found rows fails the same way on a retry: the task must not retry it.
    assert isinstance(build_error(warehouse.broken.result.result.results), DbtTestFailed)


def test_a_node_that_errored_is_retried() -> None:
    # 'error' (a node that could not run, e.g. the warehouse connection dropped) may pass
    # on a retry; only 'fail' (a test that found rows) is deterministic.
    node = SimpleNamespace(resource_type="model", name="stg_demo__items")
    errored = [SimpleNamespace(status="error", node=node, message="could not connect")]
    err = build_error(errored)
    assert type(err) is DbtBuildError and "model stg_demo__items: could not connect" in str(err)


def test_missing_warehouse_path_names_the_variable(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NIGHTCAST_WAREHOUSE_PATH", raising=False)
    monkeypatch.setenv("DBT_LOG_PATH", str(warehouse.tmp / "logs"))
    result = _dbt(warehouse.tmp, "parse", "--target", "duckdb").result
    assert not result.success
    assert "NIGHTCAST_WAREHOUSE_PATH" in str(result.exception)
