"""Stage: write the nightly HTML report of run date D (``nightcast report``; a DAG task).

``<data dir>/reports/date=D/nightly_report.html`` and ``<data dir>/reports/latest.html``,
each written to a temporary file and renamed, so a browser or a file server never
sees half a page. Rerunning replaces both.
"""

from __future__ import annotations

import logging
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

from nightcast.config import Settings
from nightcast.reporting import load_report_data, render
from nightcast.warehouse.base import open_warehouse

log = logging.getLogger("nightcast.report")


def report_path(settings: Settings, run_date: date) -> Path:
    return settings.data_dir / "reports" / f"date={run_date.isoformat()}" / "nightly_report.html"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def report(settings: Settings, run_date: date) -> dict[str, Any]:
    """Render run D's report from the warehouse; returns its path and headline numbers."""
    with open_warehouse(settings.warehouse_url) as wh:
        data = load_report_data(wh, run_date)
    page = render(data, datetime.now())
    path = report_path(settings, run_date)
    write_atomic(path, page)
    latest = settings.data_dir / "reports" / "latest.html"
    # A backfill or rerun of an older date must not replace the newest night's page.
    dates = [p.name.removeprefix("date=") for p in path.parent.parent.glob("date=*")]
    if run_date.isoformat() >= max(dates, default=""):
        write_atomic(latest, page)
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
