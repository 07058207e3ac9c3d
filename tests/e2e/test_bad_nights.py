"""End to end: bad nights through the real erp_forecast_nightly DAG (dag.test) on a tiny ERP.

Night 1 is clean and publishes. Each following night injects one problem straight into
the demo ERP's SQLite tables (negative quantities, a renamed column, a null spike, a
stale source); the run must fail in the right task with a message naming the problem,
nothing may reach ``raw``, BI keeps night 1's forecast and the freshness view says
stale and why. The injection is then undone (the ERP file is restored) and the last,
clean night publishes again. DuckDB warehouse; the tests run in order and share state.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from _deployment import HISTORY, checksums, demo_deployment, query, run_dag

from nightcast import demo_erp
from nightcast.config import connection_url

pytestmark = pytest.mark.e2e

NIGHT1 = date(2025, 5, 1)


class Nights:
    """The DAG plus the demo ERP it reads; remembers the last simulated day."""

    def __init__(self, dag: Any, erp: Path) -> None:
        self.dag = dag
        self.erp = erp
        self.simulated = HISTORY[1]

    def advance_to(self, day: date) -> None:
        while self.simulated < day:
            self.simulated += timedelta(days=1)
            demo_erp.advance(connection_url("nightcast_demo_erp"), self.simulated)

    def run(self, day: date) -> str:
        return run_dag(self.dag, day)


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nights]:
    data = tmp_path_factory.mktemp("bad-nights")
    with demo_deployment(data) as dags:
        yield Nights(dags["erp_forecast_nightly"], data / "erp.sqlite")


def raw_checksums() -> dict[str, str]:
    return checksums(("raw",))


def erp_sql(nights: Nights, *statements: str) -> None:
    engine = sa.create_engine(f"sqlite:///{nights.erp}")
    with engine.begin() as conn:
        for stmt in statements:
            conn.execute(sa.text(stmt))
    engine.dispose()


def bad_night(nights: Nights, day: date, inject: Callable[[], None]) -> str:
    """Run ``day`` with ``inject`` applied to the ERP, then undo it; returns the run state."""
    backup = nights.erp.with_suffix(".clean")
    shutil.copyfile(nights.erp, backup)
    try:
        inject()
        return nights.run(day)
    finally:
        shutil.copyfile(backup, nights.erp)
        backup.unlink()


def assert_bi_still_on_night1(day: date, message_part: str) -> None:
    status, message = query("select status, message from forecast.runs where run_date = ?", [day])[
        0
    ]
    assert status == "failed", (day, status, message)
    assert message and message_part in message, message
    assert query("select distinct run_date from marts.forecast_latest") == [(NIGHT1,)]
    stale, reason, attempted = query(
        "select is_stale, stale_reason, latest_attempted_run_date from marts.forecast_freshness"
    )[0]
    assert stale is True and attempted == day
    assert reason and "failed" in reason and message_part in reason, reason
    assert NIGHT1.isoformat() in reason  # 'BI shows run <night 1>'
    assert not query("select 1 from ops.task_runs where run_date = ? and task = 'load'", [day])


def test_clean_first_night_publishes(nights: Nights) -> None:
    nights.advance_to(NIGHT1)
    assert nights.run(NIGHT1) == "success"
    assert query("select status from forecast.runs where run_date = ?", [NIGHT1]) == [
        ("published",)
    ]
    assert query("select is_stale from marts.forecast_freshness") == [(False,)]
    assert query("select decision from audit.publications where run_date = ?", [NIGHT1]) == [
        ("published",)
    ]


def test_negative_quantities_stop_the_run_at_the_gate(nights: Nights) -> None:
    day = NIGHT1 + timedelta(days=1)
    nights.advance_to(day)
    before = raw_checksums()
    state = bad_night(
        nights,
        day,
        lambda: erp_sql(
            nights,
            f"update sales_order_line set qty = -5 where updated_at >= '{day}' "
            "and line_status <> 'returned'",
        ),
    )
    assert state == "failed"
    assert raw_checksums() == before
    assert_bi_still_on_night1(day, "validate failed: Data-quality gate failed")
    failed = query(
        "select suite, expectation, column_name, severity from ops.dq_results "
        "where run_date = ? and not success",
        [day],
    )
    assert ("order_lines", "expect_column_values_to_be_between", "quantity", "critical") in failed
    # The gate's decision is audited, append-only.
    held = query("select decision, reason from audit.publications where run_date = ?", [day])
    assert [d for d, _ in held] == ["held_back"] and "Data-quality gate failed" in held[0][1]


def test_renamed_column_fails_the_extract_and_records_drift(nights: Nights) -> None:
    day = NIGHT1 + timedelta(days=2)
    nights.advance_to(day)
    before = raw_checksums()
    state = bad_night(
        nights,
        day,
        lambda: erp_sql(
            nights,
            "alter table product rename column list_price to price_eur",
            "alter table product add column shelf_life_days integer",
        ),
    )
    assert state == "failed"
    assert raw_checksums() == before
    assert_bi_still_on_night1(day, "extract_demo failed: schema drift")
    (message,) = query("select message from forecast.runs where run_date = ?", [day])[0]
    assert "'demo'" in message and "'items'" in message and "list_price" in message
    drift = query(
        "select source, table_name, column_name, change, landed_path from ops.schema_drift "
        "where run_date = ? order by change, column_name",
        [day],
    )
    assert [(s, t, c, ch) for s, t, c, ch, _ in drift] == [
        ("demo", "items", "price_eur", "added"),
        ("demo", "items", "shelf_life_days", "added"),
        ("demo", "items", "list_price", "missing"),
    ]
    assert all(p.endswith("part-0.parquet") for *_, p in drift)


def test_null_spike_in_a_required_column_trips_the_quarantine_rate(nights: Nights) -> None:
    # qty is NOT NULL in the ERP, so the spike is empty strings: null tokens once landed.
    day = NIGHT1 + timedelta(days=3)
    nights.advance_to(day)
    before = raw_checksums()
    state = bad_night(
        nights,
        day,
        lambda: erp_sql(
            nights, f"update sales_order_line set qty = '' where updated_at >= '{day}'"
        ),
    )
    assert state == "failed"
    assert raw_checksums() == before
    assert_bi_still_on_night1(day, "validate failed")
    failed = query(
        "select expectation, severity, observed_value from ops.dq_results "
        "where run_date = ? and suite = 'order_lines' and not success",
        [day],
    )
    assert any(e == "nightcast_quarantine_rate" and s == "critical" for e, s, _ in failed), failed


def test_stale_source_fails_freshness(nights: Nights) -> None:
    # The ERP stops changing after night 4; the run for a week later sees only old rows.
    day = NIGHT1 + timedelta(days=8)
    before = raw_checksums()
    assert nights.run(day) == "failed"
    assert raw_checksums() == before
    assert_bi_still_on_night1(day, "validate failed")
    failed = query(
        "select expectation, details from ops.dq_results where run_date = ? and not success",
        [day],
    )
    assert any(e == "nightcast_freshness" and "stale" in d for e, d in failed), failed


def test_next_clean_night_recovers(nights: Nights) -> None:
    day = NIGHT1 + timedelta(days=9)
    nights.advance_to(day)
    before = raw_checksums()
    assert nights.run(day) == "success"
    assert raw_checksums() != before
    assert query("select status from forecast.runs where run_date = ?", [day]) == [("published",)]
    assert query("select distinct run_date from marts.forecast_latest") == [(day,)]
    assert query("select is_stale, stale_reason from marts.forecast_freshness") == [(False, None)]
