"""``nightcast summary`` and the end of ``make demo``: the runs in the warehouse, in a few lines.

The per-night numbers (:func:`nights`, :func:`intake`, :func:`checks`,
:func:`stage_seconds`) are read here once, for the summary and for the Nightcast
page of the Airflow UI (``nightcast.reporting.overview``).

Portable SQL: sums are cast to ``bigint`` because PostgreSQL widens ``sum(bigint)`` to
``numeric``, which its Arrow driver hands back as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from nightcast.config import Settings
from nightcast.warehouse.base import Warehouse, describe_url, is_postgres_url, open_warehouse


@dataclass(frozen=True)
class Night:
    """One row of ``forecast.runs``: how night D ended."""

    run_date: date
    status: str  # 'running' | 'published' | 'failed'
    model_version: str | None
    series_count: int
    rows_forecast: int
    published_at: datetime | None
    message: str | None


@dataclass(frozen=True)
class Intake:
    """Input rows of night D at the load: extracted = loaded + quarantined."""

    extracted: int
    loaded: int
    quarantined: int


@dataclass(frozen=True)
class Checks:
    """Data-quality checks of night D (``ops.dq_results``)."""

    total: int
    failed: int
    critical: int

    @property
    def passed(self) -> int:
        return self.total - self.failed


def nights(wh: Warehouse) -> list[Night] | None:
    """Every night in ``forecast.runs``, oldest first; None when no night has run yet."""
    if ("forecast", "runs") not in wh.tables(["forecast"]):
        return None
    rows = wh.fetchall(
        "select run_date, status, model_version, series_count, rows_forecast, published_at, message "
        "from forecast.runs order by run_date"
    )
    return [Night(r[0], str(r[1]), r[2], int(r[3] or 0), int(r[4] or 0), r[5], r[6]) for r in rows]


def intake(wh: Warehouse, day: date) -> Intake:
    """Rows extracted, loaded and quarantined by night ``day``'s load (zeros: nothing loaded)."""
    row = wh.fetchone(
        "select cast(coalesce(sum(rows_in), 0) as bigint), "
        "cast(coalesce(sum(rows_out), 0) as bigint), "
        "cast(coalesce(sum(rows_quarantined), 0) as bigint) "
        "from ops.task_runs where run_date = ? and task = 'load'",
        [day],
    ) or (0, 0, 0)
    return Intake(int(row[0]), int(row[1]), int(row[2]))


def checks(wh: Warehouse, day: date) -> Checks:
    """How many of night ``day``'s data-quality checks ran, failed, and failed critically."""
    row = wh.fetchone(
        "select count(*), count(*) filter (where not success), "
        "count(*) filter (where not success and severity = 'critical') "
        "from ops.dq_results where run_date = ?",
        [day],
    ) or (0, 0, 0)
    return Checks(int(row[0]), int(row[1]), int(row[2]))


def stage_seconds(wh: Warehouse, day: date) -> list[tuple[str, float]]:
    """(task, seconds) of night ``day``, in the order the tasks finished."""
    rows = wh.fetchall(
        "select task, sum(seconds) from ops.task_runs where run_date = ? group by task "
        "order by min(finished_at)",
        [day],
    )
    return [(str(t), float(s)) for t, s in rows if s is not None]


def render_summary(
    settings: Settings,
    run_date: date | None,
    timings: dict[str, float] | None = None,
    *,
    latest_only: bool = False,
) -> str:
    """A short, human summary of the runs in the warehouse: of ``run_date`` if given, else
    of the latest run (``latest_only``) or of every run (the end of ``make demo``)."""
    where = describe_url(settings.warehouse_url)
    with open_warehouse(settings.warehouse_url, ensure=False) as wh:
        runs = nights(wh)
        if runs is None:
            return f"Nightcast — no night has run yet in {where} (`make demo`, or the nightly DAG)"
        total = len(runs)
        if run_date is not None:
            runs = [r for r in runs if r.run_date == run_date]
        elif latest_only:
            runs = runs[-1:]
        shown = "" if len(runs) == total else f" (showing {len(runs)}; --all for every night)"
        lines = [f"Nightcast — {total} night(s) in {where}{shown}"]
        for r in runs:
            ext, dq = intake(wh, r.run_date), checks(wh, r.run_date)
            stages = stage_seconds(wh, r.run_date)
            lines.append(
                f"  {r.run_date}: {r.status:<9} extracted {ext.extracted:,} rows, "
                f"loaded {ext.loaded:,}, quarantined {ext.quarantined:,}; "
                f"DQ {dq.passed}/{dq.total} checks passed ({dq.critical} critical failures); "
                f"{r.series_count:,} series, {r.rows_forecast:,} forecast rows, "
                f"model {r.model_version or '-'}"
                + (f"\n      message: {r.message}" if r.message else "")
            )
            if stages:
                lines.append("      stages: " + ", ".join(f"{t} {s:.1f}s" for t, s in stages))
    if timings:
        lines.append("Wall time: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    if is_postgres_url(settings.warehouse_url):
        lines.append(
            f"Forecasts: `select * from marts.forecast_latest` on {where} (p10/p50/p90 per "
            "item, location and day); BI tools log in as the role `nightcast bi-role` creates."
        )
    else:
        lines.append(
            f"Forecasts: open {where} with any DuckDB client and "
            "`select * from marts.forecast_latest` (p10/p50/p90 per item, location and day)."
        )
    report = settings.reports / "latest.html"
    if report.exists():
        lines.append(f"Report: open {report} in a browser (the latest night's HTML report).")
    return "\n".join(lines)
