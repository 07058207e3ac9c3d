"""The PostgreSQL warehouse against the real server: transactions, partition swap, BI role."""

from __future__ import annotations

import os
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

import psycopg
import pyarrow as pa
import pytest
from _services import fresh_postgres_database

from nightcast.warehouse.base import open_warehouse
from nightcast.warehouse.bi_role import grant_bi_role
from nightcast.warehouse.postgres import PostgresWarehouse

D1, D2 = date(2025, 5, 1), date(2025, 5, 2)


def forecasts(run_date: date, n: int, p50: float = 1.0) -> pa.Table:
    return pa.table(
        {
            "run_date": [run_date] * n,
            "item_id": [f"demo:{i}" for i in range(n)],
            "location_id": ["demo:1"] * n,
            "forecast_date": [date(2025, 6, 1)] * n,
            "horizon": [1] * n,
            "p10": [0.0] * n,
            "p50": [p50] * n,
            "p90": [2.0] * n,
            "model_version": ["m1"] * n,
        }
    )


@pytest.fixture(scope="module")
def url() -> str:
    return fresh_postgres_database("nightcast_test_warehouse")


@pytest.fixture
def wh(url: str) -> Any:
    with open_warehouse(url) as w:
        yield w


def test_partition_swap_replaces_one_run_and_keeps_the_others(wh: PostgresWarehouse) -> None:
    with wh.transaction():
        wh.replace_partition("forecast.forecasts", "run_date", D1, forecasts(D1, 5))
        wh.replace_partition("forecast.forecasts", "run_date", D2, forecasts(D2, 3))
    with wh.transaction():
        wh.replace_partition("forecast.forecasts", "run_date", D1, forecasts(D1, 2, p50=1.5))
    rows = dict(wh.fetchall("select run_date, count(*) from forecast.forecasts group by 1"))
    assert rows == {D1: 2, D2: 3}
    assert wh.fetchall("select distinct p50 from forecast.forecasts where run_date = ?", [D1]) == [
        (1.5,)
    ]
    parts = {
        r[0]
        for r in wh.fetchall(
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid"
        )
    }
    assert {"forecasts_p20250501", "forecasts_p20250502"} <= parts


def test_a_load_that_dies_half_way_leaves_the_previous_partition(wh: PostgresWarehouse) -> None:
    with wh.transaction():
        wh.replace_partition("forecast.forecasts", "run_date", D1, forecasts(D1, 4))
    before = wh.checksums(["forecast"])
    with pytest.raises(RuntimeError, match="killed"), wh.transaction():
        wh.replace_partition("forecast.forecasts", "run_date", D1, forecasts(D1, 1000, p50=9.0))
        wh.execute("update forecast.runs set status = 'published'")
        raise RuntimeError("worker killed mid-load")
    assert wh.checksums(["forecast"]) == before
    assert wh.fetchall("select count(*) from forecast.forecasts where run_date = ?", [D1]) == [(4,)]


def test_upsert_replaces_by_key_and_casts_to_the_table_types(wh: PostgresWarehouse) -> None:
    def line(qty: float) -> pa.Table:
        return pa.table(
            {
                "source": ["demo"], "order_line_id": ["demo:1"], "order_id": ["demo:9"], "order_date": [D1],
                "item_id": ["demo:1"], "location_id": ["demo:1"], "quantity": [qty], "unit_price": [2.0],
                "amount": [2.0 * qty], "currency": ["EUR"], "status": ["shipped"],
                "updated_at": [datetime(2025, 5, 1, 10)], "_run_date": [datetime(2025, 5, 1)],
            }
        )  # fmt: skip

    wh.upsert_arrow("raw.order_lines", line(1.0), "order_line_id")
    wh.upsert_arrow("raw.order_lines", line(3.0), "order_line_id")
    assert wh.fetchall("select quantity, _run_date from raw.order_lines") == [(3.0, D1)]
    with pytest.raises(ValueError, match="nope"):
        wh.insert_arrow("raw.order_lines", pa.table({"nope": [1]}))


def test_bi_role_reads_the_marts_and_nothing_else(wh: PostgresWarehouse, url: str) -> None:
    wh.execute("create schema if not exists marts")
    wh.execute("drop view if exists marts.forecast_latest")
    wh.execute("create view marts.forecast_latest as select * from forecast.forecasts")
    password = "s3cret'pw"  # a quote must not break the DDL
    grant_bi_role(wh, "nightcast_bi_test", password)
    wh.execute(
        "create table if not exists marts.dim_later (x int)"
    )  # made after the grant, like a dbt rebuild
    host_db = url.split("@", 1)[1]
    with psycopg.connect(f"postgresql://nightcast_bi_test:{quote(password)}@{host_db}") as conn:
        assert conn.execute("select count(*) from marts.forecast_latest").fetchone() is not None
        conn.execute("select count(*) from marts.dim_later")
        for sql in (
            "select * from raw.order_lines",
            "select * from forecast.forecasts",
            "select * from ops.quarantine",
            "delete from marts.dim_later",
            "create table marts.evil (x int)",
            "create table public.evil (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
            conn.rollback()


def test_cli_refuses_a_duckdb_warehouse(monkeypatch: pytest.MonkeyPatch) -> None:
    from nightcast.cli import main

    monkeypatch.delenv("NIGHTCAST_WAREHOUSE_URL", raising=False)
    with pytest.raises(SystemExit, match="PostgreSQL warehouse"):
        main(["bi-role"])
    assert "NIGHTCAST_WAREHOUSE_URL" not in os.environ
