"""End to end: the real erp_forecast_nightly DAG, run by Airflow (dag.test) on a tiny demo ERP.

Every test runs three times: with the embedded DuckDB warehouse and with PostgreSQL
(dbt-postgres, ADBC loads, partition swap), the same code with another URL; and
with the lake, models and reports on S3 (a real SeaweedFS store on loopback, the
deployment's ``AWS_*`` environment), where nothing may land on the local disk.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from _deployment import (
    LOCAL_STORES,
    ROOT,
    demo_deployment,
    postgres_warehouse_env,
    query,
    run_dag,
    s3_storage_env,
)
from _deployment import checksums as deployment_checksums
from _services import fresh_postgres_database

from nightcast import demo_erp
from nightcast.config import connection_url, get_settings

pytestmark = pytest.mark.e2e

NIGHT1 = date(2025, 5, 1)
NIGHT2 = date(2025, 5, 2)
# Columns that record wall-clock time, not data: they legitimately differ between attempts.
WALL_CLOCK = ("seconds", "finished_at", "published_at", "registered_at")
COMPARED_SCHEMAS = ("raw", "staging", "marts", "forecast", "ops")
# Tables whose every row measures wall-clock time (task durations), not data.
TIMING_TABLES = ("ops.metrics",)


@pytest.fixture(scope="module", params=["duckdb", "postgres", "s3-lake"])
def nightly(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    extra: dict[str, str] = {}
    if request.param == "postgres":
        extra = postgres_warehouse_env(fresh_postgres_database("nightcast_e2e_warehouse"))
    if request.param == "s3-lake":
        extra = s3_storage_env(request.getfixturevalue("s3_server"), "nightly")
    data = tmp_path_factory.mktemp(f"nightly-{request.param}")
    with demo_deployment(data, extra) as dags:
        yield dags["erp_forecast_nightly"]
    if request.param == "s3-lake":  # no code path fell back to the local disk
        assert sorted(p.name for p in data.iterdir() if p.name in LOCAL_STORES) == []


def run_night(dag: Any, day: date) -> None:
    state = run_dag(dag, day)
    assert state == "success", f"night {day}: {state}"


def checksums() -> dict[str, str]:
    sums = deployment_checksums(COMPARED_SCHEMAS, exclude_columns=WALL_CLOCK)
    return {t: c for t, c in sums.items() if t not in TIMING_TABLES}


def test_first_night_publishes_forecasts_for_every_active_series(nightly: Any) -> None:
    demo_erp.advance(connection_url("nightcast_demo_erp"), NIGHT1)
    run_night(nightly, NIGHT1)

    (status,) = query("select status from forecast.runs where run_date = ?", [NIGHT1])[0]
    assert status == "published"
    rows = query(
        "select item_id, location_id, count(*), min(forecast_date), max(forecast_date), "
        "bool_and(p10 <= p50 and p50 <= p90 and p10 >= 0), count(distinct run_date) "
        "from marts.forecast_latest group by 1, 2"
    )
    assert rows, "marts.forecast_latest is empty after a published run"
    for item, loc, n, first, last, ordered, runs in rows:
        assert (
            n == 28 and first == NIGHT1 + timedelta(days=1) and last == NIGHT1 + timedelta(days=28)
        ), (item, loc)
        assert ordered and runs == 1, (item, loc)
    # Every series that sold in the last 91 days and is not discontinued is forecast.
    active = query(
        "select count(*) from (select f.item_id, f.location_id from marts.fct_sales_daily f "
        "join marts.dim_item i using (item_id) where f.quantity > 0 and f.sales_date <= ? "
        "and (i.discontinue_date is null or i.discontinue_date > ?) group by 1, 2 "
        "having max(f.sales_date) > cast(? as date) - 91) as active",
        [NIGHT1, NIGHT1, NIGHT1],
    )[0][0]
    assert len(rows) == active > 0
    # The BI contract columns.
    cols = [
        r[0]
        for r in query(
            "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name = 'forecast_latest' order by ordinal_position"
        )
    ]
    assert cols[:10] == [
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


def test_extracted_equals_loaded_plus_quarantined(nightly: Any) -> None:
    rows = query(
        "select source, table_name, rows_in, rows_out, rows_quarantined from ops.task_runs "
        "where run_date = ? and task = 'load'",
        [NIGHT1],
    )
    assert {r[1] for r in rows} == {"order_lines", "items", "locations", "promotions", "stockouts"}
    extracted = dict(
        ((s, t), n)
        for s, t, n in query(
            "select source, table_name, rows_extracted from ops.extract_windows where run_date = ?",
            [NIGHT1],
        )
    )
    for source, table, rows_in, rows_out, quarantined in rows:
        assert rows_in == extracted[(source, table)] == rows_out + quarantined, (source, table)
    raw_lines = query("select count(*) from raw.order_lines")[0][0]
    assert (
        raw_lines
        == extracted[("demo", "order_lines")]
        - query(
            "select count(distinct row_number) from ops.quarantine where run_date = ? and table_name = 'order_lines'",
            [NIGHT1],
        )[0][0]
    )


TASK_RUNS = (
    "select run_date, task, source, table_name, rows_in, rows_out, rows_quarantined, summary "
    "from ops.task_runs order by 1, 2, 3, 4"
)


def test_rerunning_the_same_night_leaves_every_table_identical(nightly: Any) -> None:
    before, tasks_before = checksums(), set(query(TASK_RUNS))
    run_night(nightly, NIGHT1)
    after, tasks_after = checksums(), set(query(TASK_RUNS))
    assert before.keys() == after.keys()
    changed = {t for t in before if before[t] != after[t]}
    assert changed == set(), (
        f"tables changed by a rerun of {NIGHT1}: {sorted(changed)}; ops.task_runs rows only "
        f"before: {sorted(tasks_before - tasks_after)}, only after: {sorted(tasks_after - tasks_before)}"
    )


def mapped_instances(dag_id: str, run_id: str, task_id: str) -> list[int]:
    """Map indexes of ``task_id`` that Airflow created in one DAG run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return sorted(
            session.scalars(
                select(TaskInstance.map_index).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.run_id == run_id,
                    TaskInstance.task_id == task_id,
                )
            )
        )


def test_forecasting_in_three_or_more_batches_publishes_the_same_forecasts(
    nightly: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_batch = deployment_checksums(("forecast",), exclude_columns=WALL_CLOCK)
    (series,) = query(
        "select count(distinct item_id || '|' || location_id) from forecast.forecasts "
        "where run_date = ?",
        [NIGHT1],
    )[0]
    assert series >= 3, "the tiny demo needs at least 3 active series for this test"
    size = series // 3
    monkeypatch.setenv("NIGHTCAST_FORECAST_BATCH_SERIES", str(size))

    dr = nightly.test(logical_date=datetime(NIGHT1.year, NIGHT1.month, NIGHT1.day, 2, tzinfo=UTC))
    assert str(dr.state).rsplit(".", 1)[-1].lower() == "success"

    batches = -(-series // size)
    assert batches >= 3
    assert mapped_instances(nightly.dag_id, dr.run_id, "forecast_batch") == list(range(batches))
    parts = sorted(
        p.name for p in (get_settings().lake / "forecast" / f"date={NIGHT1}").files("part-*")
    )
    assert len(parts) == batches
    assert deployment_checksums(("forecast",), exclude_columns=WALL_CLOCK) == one_batch
    # The audit trail names the forecast's input snapshot, with a checksum to verify it.
    (snapshot,) = query(
        "select input_snapshot from audit.publications where run_date = ? "
        "order by decided_at desc limit 1",
        [NIGHT1],
    )[0]
    inputs = {f["table"]: f for f in json.loads(snapshot) if f["source"] == "forecast_input"}
    assert sorted(inputs) == ["future", "history"]
    assert all(f["sha256"] and f["rows"] > 0 for f in inputs.values())


def test_next_night_reads_only_new_and_edited_rows(nightly: Any) -> None:
    url = connection_url("nightcast_demo_erp")
    demo_erp.advance(url, NIGHT2)
    lines_before = query("select count(*) from raw.order_lines")[0][0]
    run_night(nightly, NIGHT2)

    (start, end, n) = query(
        "select window_start, window_end, rows_extracted from ops.extract_windows "
        "where run_date = ? and table_name = 'order_lines'",
        [NIGHT2],
    )[0]
    lookback = get_settings().lookback_days
    assert end == datetime(2025, 5, 3) and start == datetime(2025, 5, 2) - timedelta(days=lookback)
    total = query("select count(*) from raw.order_lines")[0][0]
    assert 0 < n < total / 5, "night 2 re-read far more than the window"
    # Rows edited on night 2 (late edits of older orders) now carry their new state.
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        edited = conn.execute(
            sa.text(
                "select line_id, line_status from sales_order_line where updated_at >= '2025-05-02' "
                "and created_at < '2025-05-02'"
            )
        ).fetchall()
    engine.dispose()
    assert edited, "the simulator made no late edits on night 2"
    for line_id, _ in edited[:20]:
        got = query(
            "select updated_at from raw.order_lines where order_line_id = ?", [f"demo:{line_id}"]
        )
        assert got and got[0][0] >= datetime(2025, 5, 2), line_id
    assert total >= lines_before
    assert (
        query("select status from forecast.runs where run_date = ?", [NIGHT2])[0][0] == "published"
    )
    assert query("select distinct run_date from marts.forecast_latest") == [(NIGHT2,)]


def test_weekly_retrain_registers_a_new_champion_and_keeps_a_fallback(
    nightly: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    # The first champion was trained on all data up to night 1, so it has seen the
    # retrain's holdout: let any sane challenger win (tests/e2e/test_retrain_lifecycle.py
    # covers rejections).
    monkeypatch.setenv("NIGHTCAST_PROMOTION_MARGIN", "-1")
    monkeypatch.setenv("NIGHTCAST_BASELINE_MARGIN", "-1")  # the tiny demo is noisy

    retrain = DagBag(dag_folder=str(ROOT / "dags")).dags["forecast_retrain_weekly"]
    for t in retrain.tasks:
        t.retries = 0
    (first_champion,) = query(
        "select model_version from forecast.model_registry where status = 'champion'"
    )[0]
    dr = retrain.test(logical_date=datetime(2025, 5, 4, 3, tzinfo=UTC))
    assert str(dr.state) in ("success", "DagRunState.SUCCESS")

    registry = dict(query("select model_version, status from forecast.model_registry"))
    champions = [v for v, s in registry.items() if s == "champion"]
    reasons = query("select model_version, status, status_reason from forecast.model_registry")
    assert len(champions) == 1 and champions[0] != first_champion, reasons
    assert registry[first_champion] == "fallback"
    (metrics, artifact, checksum) = query(
        "select metrics, artifact_path, checksum from forecast.model_registry where status = 'champion'"
    )[0]
    assert "backtest" in metrics and "wape" in metrics
    from nightcast.forecasting.registry import artifact_checksum

    assert artifact_checksum(artifact) == checksum
