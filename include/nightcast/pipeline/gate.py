"""The write-audit-publish gate: validate tonight's clean rows before any load."""

from __future__ import annotations

import logging
import time
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from nightcast.config import Settings
from nightcast.pipeline.stages import read_clean, record_task, warehouse
from nightcast.quality import GateReport, results_frame, validate_table, write_html_report
from nightcast.quality.docs import write_gx_data_docs
from nightcast.quality.gate import load_suite, suite_settings
from nightcast.quality.results import CheckResult
from nightcast.quality.volume import VolumeRule, check_volume
from nightcast.warehouse.base import Warehouse
from nightcast.warehouse.schema import CANONICAL_TABLES

log = logging.getLogger("nightcast.pipeline")

REFERENCED = {"items": "item_id", "locations": "location_id"}


def volume_history(wh: Warehouse, source: str, table: str, run_date: date) -> list[int]:
    """Rows extracted for ``source.table`` on earlier published nights, newest first."""
    rows = wh.fetchall(
        "select w.rows_extracted from ops.extract_windows w "
        "join forecast.runs r on r.run_date = w.run_date "
        "where w.source = ? and w.table_name = ? and w.run_date < ? and r.status = 'published' "
        "order by w.run_date desc",
        [source, table, run_date],
    )
    return [int(r[0]) for r in rows]


def volume_checks(
    settings: Settings,
    wh: Warehouse,
    run_date: date,
    clean_summaries: list[dict[str, Any]],
) -> list[CheckResult]:
    """One ``nightcast_volume`` result per source table of tonight's batch."""
    results: list[CheckResult] = []
    for summary in clean_summaries:
        source = summary["source"]
        for table, counts in summary["tables"].items():
            path = settings.expectations_dir / f"{table}.json"
            meta = suite_settings(load_suite(path)).get("volume")
            rule = VolumeRule.from_meta(meta, where=path.name)
            history = volume_history(wh, source, table, run_date)[: rule.runs]
            results.append(
                check_volume(
                    int(counts["rows_in"]),
                    history,
                    rule,
                    table=table,
                    source=source,
                    run_date=run_date,
                )
            )
    return results


def sources_by_table(clean_summaries: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Canonical table -> the sources that cleaned it tonight; a silent one (0 rows) is a suspect too."""
    feeds: dict[str, list[str]] = {}
    for summary in clean_summaries:
        for table in summary["tables"]:
            feeds.setdefault(table, []).append(summary["source"])
    return feeds


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
        volumes = volume_checks(settings, wh, run_date, clean_summaries)
    report = GateReport([])
    validations: list[Any] = []
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
                validations=validations,
            )
        )
    report.extend(volumes)
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
    docs = settings.lake_dir / "dq_docs" / f"date={run_date.isoformat()}"
    page = write_html_report(report.results, docs, run_date)
    gx_page: Path | None = None
    try:
        gx_page = write_gx_data_docs(validations, docs / "gx", run_date)
    except Exception:  # the docs are a convenience: never let them decide the gate
        log.warning("could not build the GX Data Docs for %s", run_date, exc_info=True)
    log.info(
        "data-quality gate %s: %s; report %s, GX Data Docs %s",
        run_date,
        report.summary(),
        page,
        gx_page,
    )
    report.raise_if_critical(sources_by_table(clean_summaries))
    return {
        "checks": len(report.results),
        "critical_failures": len(report.critical_failures),
        "warnings": len(report.warnings),
        "report": str(page),
        "data_docs": str(gx_page) if gx_page else None,
    }
