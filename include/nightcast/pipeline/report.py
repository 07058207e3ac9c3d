"""Stage: write the nightly HTML report of run date D (``nightcast report``; a DAG task).

``<reports>/date=D/nightly_report.html`` and ``<reports>/latest.html``, where
``<reports>`` is ``NIGHTCAST_REPORTS_URL`` (default ``<data dir>/reports``; a
local folder or s3://bucket/prefix). Each is written whole (a temporary file
moved over it), so a browser or a file server never sees half a page. Rerunning
replaces both.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from nightcast.config import Settings
from nightcast.reporting import load_report_data, render, report_path
from nightcast.warehouse.base import open_warehouse

log = logging.getLogger("nightcast.report")


def report(settings: Settings, run_date: date) -> dict[str, Any]:
    """Render run D's report from the warehouse; returns its path and headline numbers."""
    with open_warehouse(settings.warehouse_url) as wh:
        data = load_report_data(wh, run_date)
    page = render(data, datetime.now())
    path = report_path(settings, run_date)
    path.write_text(page)
    latest = settings.reports / "latest.html"
    # A backfill or rerun of an older date must not replace the newest night's page.
    dates = [
        p.parent.name.removeprefix("date=")
        for p in settings.reports.files("date=*/nightly_report.html", recursive=True)
    ]
    if run_date.isoformat() >= max(dates, default=""):
        latest.write_text(page)
    h = data.headline
    if h.published:
        what = f"{h.series_forecast} series, P50 next 28 days {h.p50_next_28:.0f}"
    else:
        what = f"{h.run_status}: nothing published; BI shows run {h.bi_run or 'none'}"
    log.info(
        "nightly report %s: %s (%s, %s); latest: %s",
        run_date,
        path,
        what,
        "stale" if h.is_stale else "fresh",
        latest,
    )
    return {
        "run_date": run_date.isoformat(),
        "path": str(path),
        "latest": str(latest),
        "published": h.published,
        "bi_run": h.bi_run.isoformat() if h.bi_run else None,
        "series_forecast": h.series_forecast,
        "p50_next_28": h.p50_next_28,
        "is_stale": h.is_stale,
    }
