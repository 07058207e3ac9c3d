"""The write-audit-publish gate: validate tonight's clean rows before any load."""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nightcast.cleaning.clean import QUARANTINE_COLUMNS
from nightcast.config import GX_DOCS, Settings
from nightcast.pipeline.runs import record_task, warehouse
from nightcast.pipeline.stages import clean_path, read_clean
from nightcast.quality import GateReport, results_frame, validate_table, write_html_report
from nightcast.quality.checks import MAX_EXAMPLES
from nightcast.quality.docs import write_gx_data_docs
from nightcast.quality.gate import load_suite, suite_settings
from nightcast.quality.results import CheckResult, Offending
from nightcast.quality.volume import VolumeRule, check_volume
from nightcast.storage import Location
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


def rejected_rows(
    settings: Settings, run_date: date, clean_summaries: list[dict[str, Any]]
) -> dict[tuple[str, str], pa.Table]:
    """(source, table) -> the rows its cleaner quarantined tonight (the lake's quarantine file)."""
    out: dict[tuple[str, str], pa.Table] = {}
    for summary in clean_summaries:
        source = summary["source"]
        for table, counts in summary["tables"].items():
            path = clean_path(settings.lake, "quarantine", table, run_date, source)
            if counts.get("quarantined") and path.exists():
                out[(source, table)] = path.read_parquet(columns=QUARANTINE_COLUMNS)
    return out


def held_back_rows(rows: pa.Table, source: str, table: str, run_date: date) -> pa.Table:
    """``ops.quarantine`` rows of a night the gate stopped (``held_back`` true)."""
    # The lake file's own run_date, source and table are tonight's; set them anyway, so a
    # file a rerun left behind cannot be filed under another night.
    n = rows.num_rows
    return (
        rows.drop_columns(["run_date", "source", "table_name"])
        .append_column("run_date", pa.array([run_date] * n, pa.date32()))
        .append_column("source", pa.array([source] * n, pa.string()))
        .append_column("table_name", pa.array([table] * n, pa.string()))
        .append_column("held_back", pa.array([True] * n, pa.bool_()))
    )


def with_offending(result: CheckResult, rejected: dict[tuple[str, str], pa.Table]) -> CheckResult:
    """A failed quarantine-rate check, with the values its table's cleaner rejected most."""
    if result.success or result.expectation != "nightcast_quarantine_rate":
        return result
    frames = [
        rows.select(["column_name", "reason", "raw_value", "row_number"]).to_pandas()
        for (_, table), rows in rejected.items()
        if table == result.suite
    ]
    if not frames:
        return result
    rows = pd.concat(frames, ignore_index=True)
    # A null (or a null token) prints as null, any other raw value quoted: '' is not null.
    rows["shown"] = [
        "null" if v is None or (isinstance(v, float) and pd.isna(v)) else repr(str(v))
        for v in rows["raw_value"]
    ]
    top = (
        rows.groupby(["column_name", "reason", "shown"], dropna=False)["row_number"]
        .count()
        .sort_values(ascending=False, kind="stable")
        .head(MAX_EXAMPLES)
    )
    offending = tuple(
        Offending(None if pd.isna(c) else str(c), f"{v} ({r})", int(n))
        for (c, r, v), n in top.items()
    )
    return dataclasses.replace(result, offending=offending)


def where_rejected(
    settings: Settings,
    run_date: date,
    rejected: dict[tuple[str, str], pa.Table],
    landed: dict[tuple[str, str], str],
    failed_tables: set[str],
) -> str:
    """Where to look after a held-back night: the landed files of the failed tables, and
    the rejected rows (the query, and the lake files)."""
    files = ", ".join(p for (_, t), p in sorted(landed.items()) if t in failed_tables)
    lines = [f"Landed file(s) of the failed table(s): {files or 'none recorded'}."]
    if not rejected:
        lines.append(
            "The cleaner rejected no row tonight: the failing rows are the cleaned ones the "
            "checks above name (ops.dq_results has every result)."
        )
        return "\n".join(lines)
    counts = ", ".join(
        f"{s}.{t} {pc.count_distinct(rows['row_number']).as_py()} rows"
        for (s, t), rows in sorted(rejected.items())
    )
    quarantined = ", ".join(
        str(clean_path(settings.lake, "quarantine", t, run_date, s)) for s, t in sorted(rejected)
    )
    lines.append(
        f"Rejected rows ({counts}), with reasons and raw values: select * from ops.quarantine "
        f"where run_date = '{run_date}' and held_back (lake: {quarantined})."
    )
    return "\n".join(lines)


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
        landed = {
            (str(r[0]), str(r[1])): str(r[2])
            for r in wh.fetchall(
                "select source, table_name, landed_path from ops.extract_windows "
                "where run_date = ?",
                [run_date],
            )
        }
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
    rejected = rejected_rows(settings, run_date, clean_summaries)
    report.results = [with_offending(r, rejected) for r in report.results]
    results = results_frame(report.results, run_date)
    with warehouse(settings) as wh, wh.transaction():
        wh.execute("delete from ops.dq_results where run_date = ?", [run_date])
        wh.insert_arrow("ops.dq_results", pa.Table.from_pandas(results, preserve_index=False))
        # A held-back night loads nothing, so load never writes its quarantine: the gate does,
        # marked held_back, so the rows that stopped the night can be queried with reasons.
        wh.execute("delete from ops.quarantine where run_date = ? and held_back", [run_date])
        if not report.passed:
            for (source, table), rows in rejected.items():
                wh.insert_arrow("ops.quarantine", held_back_rows(rows, source, table, run_date))
        record_task(
            wh,
            run_date,
            "validate",
            rows_in=sum(len(f) for f in frames.values()),
            seconds=time.monotonic() - started,
            summary=report.summary(),
        )
    docs = settings.gate_docs(run_date)
    page = write_html_report(report.results, docs, run_date)
    gx_page: Location | None = None
    try:
        gx_page = write_gx_data_docs(validations, docs / GX_DOCS, run_date)
    except Exception:  # the docs are a convenience: never let them decide the gate
        log.warning("could not build the GX Data Docs for %s", run_date, exc_info=True)
    log.info(
        "data-quality gate %s: %s; report %s, GX Data Docs %s",
        run_date,
        report.summary(),
        page,
        gx_page,
    )
    failed_tables = {r.suite for r in report.critical_failures}
    report.raise_if_critical(
        sources_by_table(clean_summaries),
        where_rejected(settings, run_date, rejected, landed, failed_tables),
    )
    return {
        "checks": len(report.results),
        "critical_failures": len(report.critical_failures),
        "warnings": len(report.warnings),
        "report": str(page),
        "data_docs": str(gx_page) if gx_page else None,
    }
