"""The nightly stages, as plain functions of a run date.

Each stage reads and writes the run date's partition only, overwrites what a
previous attempt wrote, and returns a small JSON-able summary (what Airflow
keeps in XCom). The DAG is wiring around these functions; tests call them
directly.
"""

from __future__ import annotations

import logging
import time
from datetime import date
from typing import Any

import pandas as pd

from nightcast.cleaning.clean import QUARANTINE_COLUMNS, CleanSummary, clean_landed
from nightcast.config import Settings
from nightcast.pipeline.intake import check_full_refresh, extract_inputs, reconcile
from nightcast.pipeline.runs import record_task, warehouse
from nightcast.sources.extract import (
    HeaderDrift,
    Window,
    check_landed_header,
    compare_landed_header,
    landed_parts,
    landing_path,
    open_source,
    plan_window,
)
from nightcast.sources.mapping import SourceMapping, load_mappings
from nightcast.sources.simulated import catch_up_source
from nightcast.storage import Location, location
from nightcast.warehouse.base import Warehouse
from nightcast.warehouse.schema import NATURAL_KEYS

log = logging.getLogger("nightcast.pipeline")


def get_mapping(settings: Settings, source: str) -> SourceMapping:
    for m in load_mappings(settings.sources_dir):
        if m.source == source:
            return m
    raise LookupError(f"no source mapping named {source!r} in {settings.sources_dir}")


def _recorded_window(wh: Warehouse, source: str, table: str, run_date: date) -> Window | None:
    row = wh.fetchone(
        "select mode, window_start, window_end from ops.extract_windows "
        "where source = ? and table_name = ? and run_date = ?",
        [source, table, run_date],
    )
    return Window(row[0], row[1], row[2]) if row else None


def record_drift(
    wh: Warehouse, run_date: date, source: str, table: str, drift: HeaderDrift, path: Location
) -> None:
    """Replace the run date's ``ops.schema_drift`` rows of one source table."""
    wh.execute(
        "delete from ops.schema_drift where run_date = ? and source = ? and table_name = ?",
        [run_date, source, table],
    )
    for change, columns in (("added", drift.added), ("missing", drift.missing)):
        for column in columns:
            wh.execute(
                "insert into ops.schema_drift values (?, ?, ?, ?, ?, ?)",
                [run_date, source, table, column, change, str(path)],
            )


def extract(settings: Settings, source: str, run_date: date) -> dict[str, Any]:
    """Land every mapped table of ``source`` for ``run_date``; record each window."""
    mapping = get_mapping(settings, source)
    # Demo ERPs only (NIGHTCAST_SIMULATED_SOURCES): simulate the business days up to run_date.
    catch_up_source(settings, mapping, run_date)
    out: dict[str, Any] = {}
    with open_source(mapping) as land:
        for name, table in mapping.tables.items():
            with warehouse(settings) as wh:
                recorded = _recorded_window(wh, source, name, run_date)
                wm = wh.fetchone(
                    "select high_watermark from ops.watermarks where source = ? and table_name = ?",
                    [source, name],
                )
                before = wh.fetchone(
                    "select landed_path from ops.extract_windows where source = ? "
                    "and table_name = ? and run_date < ? order by run_date desc limit 1",
                    [source, name, run_date],
                )
                previous = location(before[0]) if before else None
            window = plan_window(
                table,
                run_date,
                recorded=recorded,
                watermark=wm[0] if wm else None,
                lookback_days=settings.lookback_days,
            )
            res = land(table, run_date, window, settings.lake)
            drift = compare_landed_header(mapping, table, res.path, previous)
            with warehouse(settings) as wh, wh.transaction():
                record_drift(wh, run_date, source, name, drift, res.path)
                wh.execute(
                    "delete from ops.extract_windows where source = ? and table_name = ? and run_date = ?",
                    [source, name, run_date],
                )
                wh.execute(
                    "insert into ops.extract_windows values (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        source,
                        name,
                        run_date,
                        window.mode,
                        window.start,
                        window.end,
                        res.rows,
                        str(res.path),
                    ],
                )
                record_task(
                    wh,
                    run_date,
                    "extract",
                    source=source,
                    table=name,
                    rows_in=res.offered,  # the source's own count: where the books start
                    rows_out=res.rows,
                    seconds=res.seconds,
                    summary="; ".join(res.inputs),
                )
            if drift.added:
                log.warning(
                    "schema drift: source %r table %r: landed file %s has new column(s) %s that "
                    "mapping %s does not use (recorded in ops.schema_drift; map them to use them)",
                    source,
                    name,
                    res.path,
                    drift.added,
                    mapping.path.name,
                )
            check_landed_header(mapping, table, res.path)  # raises on a missing mapped column
            with warehouse(settings) as wh:  # an empty or thin full export stops here
                check_full_refresh(wh, mapping, table, run_date, res.rows, res.inputs)
            log.info(
                "extract %s.%s for %s: %d rows, window %s → %s (%.1fs)",
                source,
                name,
                run_date,
                res.rows,
                window.start or "beginning",
                window.end or "now (full)",
                res.seconds,
            )
            out[name] = res.rows
    return {"source": source, "rows": out}


def clean_path(lake: Location, kind: str, table: str, run_date: date, source: str) -> Location:
    """One source's clean (or quarantined) rows of one table and night: a single file,
    written whole; a table's partition is the folder of its sources' files."""
    return lake / kind / table / f"date={run_date.isoformat()}" / f"{source}.parquet"


def clean(settings: Settings, source: str, run_date: date) -> dict[str, Any]:
    """Map tonight's landed tables onto the canonical model; quarantine the rest."""
    mapping = get_mapping(settings, source)
    summary: dict[str, Any] = {}
    for name, table in mapping.tables.items():
        started = time.monotonic()
        path = landing_path(settings.lake, source, name, run_date)
        parts = landed_parts(path)
        if not parts:
            raise FileNotFoundError(
                f"source {source!r} table {name!r}: no landing {path} for {run_date}; rerun the extract task first"
            )
        # In batches: memory stays bounded whatever the size of the landing.
        res: CleanSummary = clean_landed(
            parts,
            table,
            source,
            run_date,
            clean_path(settings.lake, "clean", name, run_date, source),
            clean_path(settings.lake, "quarantine", name, run_date, source),
            landed_path=path,
        )
        if res.unexpected_columns:
            # New ones were already reported as drift by extract; this is the standing list.
            log.info(
                "source %r table %r: columns the mapping does not use: %s (map them in %s to use them)",
                source,
                name,
                res.unexpected_columns,
                mapping.path.name,
            )
        if res.rows_quarantined:
            log.warning(
                "source %r table %r: %d rows quarantined: %s",
                source,
                name,
                res.rows_quarantined,
                res.reasons,
            )
        log.info(
            "clean %s.%s: %d in, %d clean, %d quarantined (%.1fs)",
            source,
            name,
            res.rows_in,
            res.rows_clean,
            res.rows_quarantined,
            time.monotonic() - started,
        )
        with warehouse(settings) as wh:
            record_task(
                wh,
                run_date,
                "clean",
                source=source,
                table=name,
                rows_in=res.rows_in,
                rows_out=res.rows_clean,
                rows_quarantined=res.rows_quarantined,
                seconds=time.monotonic() - started,
            )
        summary[name] = {
            "rows_in": res.rows_in,
            "clean": res.rows_clean,
            "quarantined": res.rows_quarantined,
            "unexpected_columns": res.unexpected_columns,
            "seconds": round(time.monotonic() - started, 3),
        }
    return {"source": source, "tables": summary}


def read_clean(settings: Settings, table: str, run_date: date, kind: str = "clean") -> pd.DataFrame:
    """Tonight's clean (or quarantined) rows of one canonical table, all sources together."""
    folder = settings.lake / kind / table / f"date={run_date.isoformat()}"
    files = folder.files("*.parquet")
    if not files:
        return pd.DataFrame()
    return pd.concat([f.read_parquet().to_pandas() for f in files], ignore_index=True)


def load(
    settings: Settings, run_date: date, clean_summaries: list[dict[str, Any]]
) -> dict[str, Any]:
    """Publish tonight's clean rows into ``raw`` in ONE transaction, with quarantine and watermarks.

    Full-refresh tables replace the source's rows; incremental tables upsert by
    key. The watermark only moves here, together with the data it covers.
    """
    started = time.monotonic()
    loaded: dict[str, int] = {}
    with warehouse(settings) as wh, wh.transaction():
        for summary in clean_summaries:
            source = summary["source"]
            mapping = get_mapping(settings, source)
            for name, counts in summary["tables"].items():
                table_started = time.monotonic()
                path = clean_path(settings.lake, "clean", name, run_date, source)
                data = path.read_parquet()
                table = mapping.tables[name]
                if table.mode == "full":
                    inputs = extract_inputs(wh, run_date, source, name)
                    check_full_refresh(
                        wh, mapping, table, run_date, data.num_rows, inputs, counts["quarantined"]
                    )
                    wh.execute(f"delete from raw.{name} where source = ?", [source])
                    n = wh.insert_arrow(f"raw.{name}", data)
                else:
                    n = wh.upsert_arrow(f"raw.{name}", data, NATURAL_KEYS[name])
                    window = _recorded_window(wh, source, name, run_date)
                    if window and window.end:
                        wh.execute(
                            "insert into ops.watermarks as w values (?, ?, ?, ?) on conflict (source, table_name) "
                            "do update set high_watermark = greatest(w.high_watermark, excluded.high_watermark), "
                            "run_date = excluded.run_date",
                            [source, name, window.end, run_date],
                        )
                q = clean_path(settings.lake, "quarantine", name, run_date, source).read_parquet()
                wh.execute(
                    "delete from ops.quarantine where run_date = ? and source = ? and table_name = ?",
                    [run_date, source, name],
                )
                if q.num_rows:
                    wh.insert_arrow("ops.quarantine", q.select(QUARANTINE_COLUMNS))
                offered = reconcile(
                    wh,
                    run_date,
                    source,
                    name,
                    landed=counts["rows_in"],
                    loaded=n,
                    quarantined=counts["quarantined"],
                )
                record_task(
                    wh,
                    run_date,
                    "load",
                    source=source,
                    table=name,
                    rows_in=offered,
                    rows_out=n,
                    rows_quarantined=counts["quarantined"],
                    seconds=time.monotonic() - table_started,
                )
                loaded[f"{source}.{name}"] = n
    log.info(
        "load %s: %s rows in one transaction (%.1fs)", run_date, loaded, time.monotonic() - started
    )
    return {"loaded": loaded}


def transform(settings: Settings, run_date: date) -> dict[str, Any]:
    """``dbt build`` (staging → marts, with tests), timed in ``ops.task_runs``."""
    from nightcast.transform.dbt import dbt_build

    result = dbt_build(settings)
    with warehouse(settings) as wh:
        record_task(
            wh, run_date, "dbt_build", seconds=result["seconds"], summary=str(result["statuses"])
        )
    return result
