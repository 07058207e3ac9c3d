"""``nightcast summary`` and the end of ``make demo``: the runs in the warehouse, in a few lines.

Portable SQL: sums are cast to ``bigint`` because PostgreSQL widens ``sum(bigint)`` to
``numeric``, which its Arrow driver hands back as text.
"""

from __future__ import annotations

from datetime import date

from nightcast.config import Settings
from nightcast.warehouse.base import describe_url, is_postgres_url, open_warehouse


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
        if ("forecast", "runs") not in wh.tables(["forecast"]):
            return f"Nightcast — no night has run yet in {where} (`make demo`, or the nightly DAG)"
        runs = wh.fetchall(
            "select run_date, status, model_version, series_count, rows_forecast, published_at, message "
            "from forecast.runs order by run_date"
        )
        total = len(runs)
        if run_date is not None:
            runs = [r for r in runs if r[0] == run_date]
        elif latest_only:
            runs = runs[-1:]
        shown = "" if len(runs) == total else f" (showing {len(runs)}; --all for every night)"
        lines = [f"Nightcast — {total} night(s) in {where}{shown}"]
        for r in runs:
            day = r[0]
            ext = wh.fetchone(
                "select cast(coalesce(sum(rows_in), 0) as bigint), "
                "cast(coalesce(sum(rows_out), 0) as bigint), "
                "cast(coalesce(sum(rows_quarantined), 0) as bigint) "
                "from ops.task_runs where run_date = ? and task = 'load'",
                [day],
            ) or (0, 0, 0)
            dq = wh.fetchone(
                "select count(*), count(*) filter (where not success), "
                "count(*) filter (where not success and severity = 'critical') from ops.dq_results where run_date = ?",
                [day],
            ) or (0, 0, 0)
            stages = wh.fetchall(
                "select task, sum(seconds) from ops.task_runs where run_date = ? group by task order by min(finished_at)",
                [day],
            )
            lines.append(
                f"  {day}: {r[1]:<9} extracted {int(ext[0]):,} rows, loaded {int(ext[1]):,}, "
                f"quarantined {int(ext[2]):,}; "
                f"DQ {dq[0] - dq[1]}/{dq[0]} checks passed ({dq[2]} critical failures); "
                f"{int(r[3] or 0):,} series, {int(r[4] or 0):,} forecast rows, model {r[2] or '-'}"
                + (f"\n      message: {r[6]}" if r[6] else "")
            )
            if stages:
                lines.append(
                    "      stages: "
                    + ", ".join(f"{t} {float(s):.1f}s" for t, s in stages if s is not None)
                )
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
