"""Extract one source table for one run date into immutable landing Parquet.

The landing types and partition (:mod:`nightcast.sources.landing`) are re-exported here.
Landing layout: ``<lake>/raw/<source>/<table>/date=<D>/`` (a local folder or an
S3 prefix), a partition of Parquet parts with every column as a string exactly
as the ERP returned it, so that parsing happens in one place (the cleaner)
whatever the source: a database or a CSV drop. A table lands as one part, or as
one part per stream when extracted in parallel (:mod:`nightcast.sources.streams`).
The parts of one attempt are named after it and made visible together by the
partition's ``_manifest.json`` (:func:`nightcast.storage.commit_partition`):
:func:`read_landed` reads exactly the parts it names, a rerun replaces them all,
and a writer killed mid-way leaves the previous landing readable.

Incremental tables read ``updated_at`` in ``[window_start, window_end)``:
``window_end`` is the end of business day D (never ``now()``), and
``window_start`` is the previous watermark minus a lookback for late edits. The
window is recorded in ``ops.extract_windows`` so a rerun of D reads exactly the
same window again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from nightcast.config import connection_path, connection_url
from nightcast.errors import DeterministicError
from nightcast.sources.landing import INPUTS_KEY as INPUTS_KEY
from nightcast.sources.landing import ExtractResult as ExtractResult
from nightcast.sources.landing import IntakeError as IntakeError
from nightcast.sources.landing import Window as Window
from nightcast.sources.landing import landed_parts as landed_parts
from nightcast.sources.landing import landing_path as landing_path
from nightcast.sources.landing import publish_parts as publish_parts
from nightcast.sources.landing import read_landed as read_landed
from nightcast.sources.mapping import AUTO_STREAMS as AUTO_STREAMS
from nightcast.sources.mapping import SourceMapping, TableMapping
from nightcast.sources.streams import AUTO_MIN_ROWS as AUTO_MIN_ROWS
from nightcast.sources.streams import (
    plan_streams,
    progress_reporters,
    run_streams,
)
from nightcast.sources.streams import split_bounds as split_bounds
from nightcast.sources.streams import stream_queries as stream_queries
from nightcast.sources.streams import stream_sql as stream_sql
from nightcast.storage import Location

log = logging.getLogger("nightcast.sources")

BATCH_ROWS = 50_000


def end_of_day(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), dtime.min)


def plan_window(
    table: TableMapping,
    run_date: date,
    *,
    recorded: Window | None,
    watermark: datetime | None,
    lookback_days: int,
) -> Window:
    """The window to read for ``run_date``: the recorded one on a rerun, else a new one."""
    if table.mode == "full":
        return Window("full", None, None)
    if recorded is not None:
        return recorded
    end = end_of_day(run_date)
    if watermark is None:
        return Window("incremental", None, end)
    start = min(watermark, end) - timedelta(days=lookback_days)
    return Window("incremental", start, end)


def window_sql(table: TableMapping, window: Window) -> tuple[str, dict[str, Any]]:
    """SQL predicate and parameters selecting rows whose watermark columns fall in the window."""
    if window.mode == "full":
        return "1 = 1", {}
    params: dict[str, Any] = {"hi": _bind(window.end)}
    parts = []
    for col in table.watermark_columns:
        if window.start is None:
            parts.append(f"{col} < :hi")
        else:
            parts.append(f"({col} >= :lo and {col} < :hi)")
    if window.start is not None:
        params["lo"] = _bind(window.start)
    return "(" + " or ".join(parts) + ")", params


def _bind(value: datetime | None) -> str | None:
    # ISO text compares correctly against both native timestamps and the ISO
    # strings that SQLite stores, so one parameter form serves every ERP.
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else None


def _to_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _bulk_reader(engine: sa.Engine, mapping: SourceMapping, table: TableMapping) -> Any:
    """The bulk reader for this ERP (``bulk.read_postgres``/``read_mysql``), or None."""
    from nightcast.sources import bulk, client_io

    dialect = engine.dialect.name
    if dialect == "postgresql" and engine.dialect.driver == "psycopg":
        return bulk.read_postgres
    if (
        dialect in ("mysql", "mariadb")
        and (bulk.mysql_client() is not None or client_io.has_connectorx())
        and bulk.mysql_fast_path_ok(mapping, table)
    ):
        return bulk.read_mysql
    return None


def extract_table(
    engine: sa.Engine,
    mapping: SourceMapping,
    table: TableMapping,
    run_date: date,
    window: Window,
    lake: Location | Path,
) -> ExtractResult:
    """Stream the table's rows in batches into its landing parts (replacing all of them).

    PostgreSQL and MySQL/MariaDB use the bulk readers of :mod:`nightcast.sources.bulk`
    (COPY / the batch client into Arrow), in parallel streams over key ranges when the
    table's ``parallel`` says so (:mod:`nightcast.sources.streams`; on PostgreSQL all
    streams read one exported snapshot); other engines the generic single-stream path.
    """
    from nightcast.sources import bulk

    started = time.monotonic()
    predicate, params = window_sql(table, window)
    query = table.query.replace("{window}", predicate)
    path = landing_path(lake, mapping.source, table.table, run_date)
    try:
        with path.scratch() as scratch:
            read = _bulk_reader(engine, mapping, table)
            if read is None:
                tmps = [scratch / "part-0.parquet"]
                report = progress_reporters(mapping, table, started, 1)[0]
                rows = _extract_generic(engine, query, params, tmps[0], report)
            else:
                with plan_streams(engine, mapping, table, query, params) as plan:
                    n = len(plan.queries)
                    tmps = [scratch / f"part-{i}.parquet" for i in range(n)]
                    progress = progress_reporters(mapping, table, started, n)
                    if n == 1:
                        rows = read(engine, plan.queries[0], params, tmps[0], progress[0])
                    else:
                        rows = run_streams(read, engine, plan, params, tmps, progress)
            landed = check_sql_landing(mapping, table, tmps, rows)
            publish_parts(path, tmps)  # readers never see a half-written landing
    except (sa.exc.SQLAlchemyError, bulk.BulkReadError) as exc:
        raise RuntimeError(
            f"source {mapping.source!r} table {table.table!r}: the ERP query failed "
            f"(mapping {mapping.path.name}): {str(exc).splitlines()[0]}"
        ) from exc
    return ExtractResult(
        mapping.source,
        table.table,
        run_date,
        window,
        landed,
        path,
        time.monotonic() - started,
        source_rows=rows,
        inputs=(f"query of {mapping.path.name} ({rows} rows returned)",),
    )


def check_sql_landing(
    mapping: SourceMapping, table: TableMapping, parts: list[Path], returned: int
) -> int:
    """Rows in the landed parts (Parquet footers); they must be the rows the query returned,
    under column names that are unique and not blank."""
    where = f"source {mapping.source!r} table {table.table!r}"
    landed = 0
    for part in parts:
        meta = pq.read_metadata(part)
        landed += meta.num_rows
        names = meta.schema.to_arrow_schema().names
        seen: set[str] = set()
        for i, name in enumerate(names, start=1):
            if not name.strip() or name in seen:
                what = "has no name" if not name.strip() else f"{name!r} appears twice"
                raise IntakeError(
                    f"{where}: the query of {mapping.path.name} returns columns {names}: column "
                    f"{i} {what}; give every selected column its own alias (nothing was loaded)",
                    mapping.source,
                )
            seen.add(name)
    if landed != returned:
        raise IntakeError(
            f"{where}: the query of {mapping.path.name} returned {returned} rows but {landed} "
            f"were landed; nothing was loaded, rerun the extract",
            mapping.source,
        )
    return landed


def _extract_generic(
    engine: sa.Engine,
    query: str,
    params: dict[str, Any],
    tmp: Path,
    progress: Callable[[int], None],
) -> int:
    """Any SQLAlchemy engine: ``fetchmany`` batches converted to text in Python."""
    rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(sa.text(query), params)
            names = list(result.keys())
            schema = pa.schema([(n, pa.string()) for n in names])
            writer = pq.ParquetWriter(tmp, schema, compression="zstd")
            while batch := result.fetchmany(BATCH_ROWS):
                cols = list(zip(*batch, strict=True))
                arrays = [pa.array([_to_text(v) for v in col], type=pa.string()) for col in cols]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                rows += len(batch)
                progress(rows)
        writer.close()
        writer = None
    finally:
        if writer is not None:
            writer.close()
    return rows


class LandedSchemaError(RuntimeError, DeterministicError):
    """The landed file lacks a column the mapping reads: the ERP schema changed."""

    rerun_from = "extract"

    def __init__(self, message: str, missing: list[str], present: list[str], source: str) -> None:
        super().__init__(message)
        self.missing = missing
        self.present = present
        self.sources = (source,)


@dataclass(frozen=True)
class HeaderDrift:
    """How a landed file's header differs from the mapping (and from the previous landing).

    ``unmapped``: columns the mapping does not read; ``added``: those of them that the
    previous landing of the table did not have (all of them when there is none), i.e.
    the columns the ERP started sending; ``missing``: mapped columns the file lacks.
    """

    missing: list[str]
    unmapped: list[str]
    added: list[str]
    present: list[str]


def _landed_schema(folder: Location) -> pa.Schema:
    parts = landed_parts(folder)
    if not parts:
        raise FileNotFoundError(f"no landing at {folder}: rerun the extract task first")
    with parts[0].open_input() as f:
        return pq.read_schema(f)


def compare_landed_header(
    mapping: SourceMapping, table: TableMapping, path: Location, previous: Location | None = None
) -> HeaderDrift:
    """Compare the landed Parquet header (schema only, no rows read) with the mapping."""
    present = list(_landed_schema(path).names)
    needed = [r.source_column for r in table.columns.values() if r.source_column]
    missing = sorted(set(needed) - set(present))
    unmapped = sorted(set(present) - set(needed))
    before: set[str] = set()
    if previous is not None and landed_parts(previous):
        before = set(_landed_schema(previous).names)
    added = [c for c in unmapped if c not in before]
    return HeaderDrift(missing, unmapped, added, present)


def check_landed_header(mapping: SourceMapping, table: TableMapping, path: Location) -> HeaderDrift:
    """Raise :class:`LandedSchemaError` if a mapped column is missing; return the drift."""
    drift = compare_landed_header(mapping, table, path)
    if drift.missing:
        origin = (_landed_schema(path).metadata or {}).get(INPUTS_KEY)
        read_from = f" (read from {origin.decode()})" if origin else ""
        raise LandedSchemaError(
            f"schema drift: source {mapping.source!r} table {table.table!r}: landing {path}"
            f"{read_from} has no column(s) {drift.missing} that mapping {mapping.path.name} reads "
            f"(columns present: {sorted(drift.present)}). The ERP schema changed (a column was "
            f"dropped or renamed): fix the query/columns in {mapping.path.name} (or the ERP), "
            "then clear the extract task to rerun; nothing was loaded.",
            drift.missing,
            drift.present,
            mapping.source,
        )
    return drift


Lander = Callable[[TableMapping, date, Window, Location], ExtractResult]


@contextmanager
def open_source(mapping: SourceMapping) -> Iterator[Lander]:
    """A function that lands one table of ``mapping``, with the source opened once."""
    if mapping.kind == "csv_folder":
        from nightcast.sources.csv_folder import land_csv_table

        folder = connection_path(mapping.connection)
        yield lambda table, day, window, lake: land_csv_table(
            folder, mapping, table, day, window, lake
        )
        return
    engine = sa.create_engine(connection_url(mapping.connection))
    try:
        yield lambda table, day, window, lake: extract_table(
            engine, mapping, table, day, window, lake
        )
    finally:
        engine.dispose()
