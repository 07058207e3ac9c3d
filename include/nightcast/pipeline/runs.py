"""Run bookkeeping: the warehouse of the run, ``forecast.runs`` (opened, failed) and the
reconciliation rows of ``ops.task_runs`` every stage writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from nightcast.config import Settings
from nightcast.monitoring.metrics import record_task_metrics
from nightcast.warehouse.base import Warehouse, open_warehouse


@contextmanager
def warehouse(settings: Settings) -> Iterator[Warehouse]:
    """The configured warehouse (DuckDB file or PostgreSQL), schemas ensured."""
    with open_warehouse(settings.warehouse_url) as wh:
        yield wh


def record_task(
    wh: Warehouse,
    run_date: date,
    task: str,
    *,
    source: str = "",
    table: str = "",
    rows_in: int | None = None,
    rows_out: int | None = None,
    rows_quarantined: int | None = None,
    seconds: float | None = None,
    summary: str = "",
) -> None:
    """Replace this task's reconciliation row for the run date (and its ``ops.metrics``)."""
    wh.execute(
        "delete from ops.task_runs where run_date = ? and task = ? and source = ? and table_name = ?",
        [run_date, task, source, table],
    )
    counters = {
        "rows_in": rows_in,
        "rows_out": rows_out,
        "rows_quarantined": rows_quarantined,
        "seconds": seconds,
    }
    record_task_metrics(wh, run_date, task, source=source, table=table, counters=counters)
    wh.execute(
        "insert into ops.task_runs values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_date,
            task,
            source,
            table,
            rows_in,
            rows_out,
            rows_quarantined,
            seconds,
            summary,
            datetime.now(),
        ],
    )


def start_run(settings: Settings, run_date: date) -> dict[str, Any]:
    """Open the run: BI's freshness view shows it as in progress until published."""
    with warehouse(settings) as wh, wh.transaction():
        wh.execute(
            "insert into forecast.runs as r (run_date, status, horizon_days) values (?, 'running', ?) "
            "on conflict (run_date) do update set status = case when r.status = 'published' "
            "then 'published' else 'running' end, message = null",
            [run_date, settings.horizon_days],
        )
    return {"run_date": run_date.isoformat()}


def fail_run(settings: Settings, run_date: date, message: str) -> None:
    """Mark an unpublished run failed; a published one keeps serving BI."""
    with warehouse(settings) as wh:
        wh.execute(
            "update forecast.runs set status = 'failed', message = ? where run_date = ? and status <> 'published'",
            [message[:2000], run_date],
        )
