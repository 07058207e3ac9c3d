"""The write-audit-publish gate: validate tonight's clean rows before any load."""

from __future__ import annotations

import logging
import time
from datetime import date
from typing import Any

import pyarrow as pa

from nightcast.config import Settings
from nightcast.pipeline.stages import read_clean, record_task, warehouse
from nightcast.quality import GateReport, results_frame, validate_table, write_html_report
from nightcast.warehouse.schema import CANONICAL_TABLES

log = logging.getLogger("nightcast.pipeline")

REFERENCED = {"items": "item_id", "locations": "location_id"}


def validate(
    settings: Settings, run_date: date, clean_summaries: list[dict[str, Any]]
) -> dict[str, Any]:
    """Run every canonical table's suite; record results; raise on a critical failure.

    Results are written to ``ops.dq_results`` (replacing this run date's) and to
    an HTML page under ``<lake>/dq_docs/date=D/`` whether or not the gate passes.
    """
    started = time.monotonic()
    counts: dict[str, list[int]] = {}
    for summary in clean_summaries:
        for table, c in summary["tables"].items():
            acc = counts.setdefault(table, [0, 0])
            acc[0] += c["rows_in"]
            acc[1] += c["quarantined"]
    frames = {t: read_clean(settings, t, run_date) for t in CANONICAL_TABLES if t in counts}
    with warehouse(settings) as wh:
        # An order line may reference an item that arrives tonight or one loaded before.
        known: dict[str, set[str]] = {}
        for ref, col in REFERENCED.items():
            rows = wh.fetchall(f"select {col} from raw.{ref}")
            known[ref] = {r[0] for r in rows}
            if ref in frames and col in frames[ref]:
                known[ref] |= set(frames[ref][col].dropna().astype(str))
    report = GateReport([])
    for table, frame in frames.items():
        report.extend(
            validate_table(
                table,
                frame,
                run_date,
                expectations_dir=settings.expectations_dir,
                known_ids=known,
                rows_in=counts[table][0],
                rows_quarantined=counts[table][1],
            )
        )
    results = results_frame(report.results, run_date)
    with warehouse(settings) as wh, wh.transaction():
        wh.execute("delete from ops.dq_results where run_date = ?", [run_date])
        wh.insert_arrow("ops.dq_results", pa.Table.from_pandas(results, preserve_index=False))
        record_task(
            wh,
            run_date,
            "validate",
            rows_in=sum(len(f) for f in frames.values()),
            seconds=time.monotonic() - started,
            summary=report.summary(),
        )
    page = write_html_report(
        report.results, settings.lake_dir / "dq_docs" / f"date={run_date.isoformat()}", run_date
    )
    log.info("data-quality gate %s: %s; report %s", run_date, report.summary(), page)
    report.raise_if_critical()
    return {
        "checks": len(report.results),
        "critical_failures": len(report.critical_failures),
        "warnings": len(report.warnings),
        "report": str(page),
    }
