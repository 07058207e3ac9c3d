"""Parallel extraction streams of one table: key ranges, the plan, one shared snapshot.

A table is read by one stream, or by k streams over disjoint ranges of an integer
``split`` column of the query's output (:func:`split_bounds`, :func:`stream_sql`),
each landing its own part. On PostgreSQL the streams of one table read ONE snapshot,
as ``pg_dump --jobs`` does: a coordinating connection opens a repeatable-read,
read-only transaction, exports its snapshot (``pg_export_snapshot()``), reads the key
range (min/max) in it and stays open until every stream has finished; each stream
imports the snapshot (``SET TRANSACTION SNAPSHOT``) before its COPY. So the ranges and
the rows agree, and a row written while the streams start is landed by none of them
(the next window reads it). MySQL/MariaDB streams each read their own snapshot.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from nightcast.sources.bulk import BulkReadError
from nightcast.sources.mapping import AUTO_STREAMS, SourceMapping, TableMapping

log = logging.getLogger("nightcast.sources")

# Parallel streams for large incremental PostgreSQL tables when the mapping leaves
# 'parallel' unset: three streams beat one binary COPY even on a 2-core worker that
# shares its cores with the ERP (measured, docs/benchmarks.md "Extraction"), for two more ERP
# connections; small windows are not worth the extra connections.
AUTO_MIN_ROWS = 1_000_000
_INTEGER_TYPES = {
    "postgresql": {20, 21, 23},  # int8, int2, int4 (type OIDs)
    "mysql": {1, 2, 3, 8, 9},  # TINY, SHORT, LONG, LONGLONG, INT24 (field types)
}


@dataclass(frozen=True)
class StreamPlan:
    """How one table is read: one query per stream, the key range each reads (empty for
    one stream), and the exported PostgreSQL snapshot every stream imports (or None)."""

    queries: list[str]
    ranges: list[str] = field(default_factory=list)
    snapshot: str | None = None


def split_bounds(lo: int, hi: int, streams: int) -> list[int]:
    """Interior bounds b1 < ... < b(k-1) that cut the keys ``lo..hi`` into k <= ``streams``
    ranges of equal width (fewer ranges when there are fewer keys than streams)."""
    span = hi - lo + 1
    k = max(1, min(streams, span))
    return [lo + span * i // k for i in range(1, k)]


def stream_ranges(column: str, bounds: list[int]) -> list[str]:
    """The predicate on ``column`` of each stream's key range (none for one stream)."""
    if not bounds:
        return []
    ranges = [f"{column} < {bounds[0]}"]
    ranges += [f"{column} >= {lo} and {column} < {hi}" for lo, hi in pairwise(bounds)]
    ranges.append(f"{column} >= {bounds[-1]}")
    return ranges


def stream_sql(inner: str, column: str, bounds: list[int]) -> list[str]:
    """One query per stream over ``inner`` split on the (quoted) ``column``; together they
    return every row exactly once, whatever the keys: the outer ranges are open, so keys
    outside the sampled min/max still land, and the first stream also returns the rows
    with a null key (as a ``union all`` branch, which keeps both branches indexable)."""
    if not bounds:
        return [inner]
    part = f"select * from ({inner}) as _nc_part where "
    queries = [part + r for r in stream_ranges(column, bounds)]
    queries[0] += f" union all {part}{column} is null"
    return queries


def quote_ident(engine: sa.Engine, name: str) -> str:
    """``name`` quoted as an identifier of the engine's dialect."""
    return engine.dialect.identifier_preparer.quote_identifier(name)


def _strip(query: str) -> str:
    return query.strip().rstrip(";").rstrip()


def column_kind(engine: sa.Engine, query: str, params: Mapping[str, Any], column: str) -> str:
    """The type of ``column`` in ``query``'s output: "integer", or which other type it is."""
    probe = f"select {quote_ident(engine, column)} from ({_strip(query)}) as _nc_probe limit 0"
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.text(probe), dict(params))
            description = result.cursor.description
    except sa.exc.DBAPIError as exc:
        raise BulkReadError(
            f"cannot read split column {column!r} from the query's output "
            f"({str(exc.orig).strip().splitlines()[0]}); set 'split' to one of its columns"
        ) from exc
    type_code = description[0][1] if description else None
    dialect = "mysql" if engine.dialect.name in ("mysql", "mariadb") else engine.dialect.name
    if type_code in _INTEGER_TYPES.get(dialect, set()):
        return "integer"
    return f"of type {_type_name(dialect, type_code)}, not an integer"


def _type_name(dialect: str, code: Any) -> str:
    if dialect == "postgresql":
        import psycopg

        info = psycopg.adapters.types.get(code) if isinstance(code, int) else None
        return info.name if info else f"code {code!r}"
    if dialect == "mysql":
        from pymysql.constants import FIELD_TYPE

        names = {v: k.lower() for k, v in vars(FIELD_TYPE).items() if isinstance(v, int)}
        return names.get(code, f"code {code!r}")
    return f"code {code!r}"


def estimate_rows(engine: sa.Engine, query: str, params: Mapping[str, Any]) -> int | None:
    """The ERP planner's estimate of ``query``'s rows (no scan), or None when unknown."""
    inner = _strip(query)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            plan: Any = conn.execute(
                sa.text(f"explain (format json) {inner}"), dict(params)
            ).scalar()
            if isinstance(plan, str):
                import json

                plan = json.loads(plan)
            return int(plan[0]["Plan"]["Plan Rows"])
        if engine.dialect.name in ("mysql", "mariadb"):
            rows = conn.execute(sa.text(f"explain {inner}"), dict(params)).mappings().all()
            return max((int(r.get("rows") or 0) for r in rows), default=0)
    return None


def wanted_streams(
    engine: sa.Engine,
    mapping: SourceMapping,
    table: TableMapping,
    query: str,
    params: dict[str, Any],
) -> int:
    """How many streams the table asks for (1: no split).

    ``parallel`` unset means one stream for full (dimension) tables and for MySQL/MariaDB,
    and for incremental PostgreSQL tables ``min(AUTO_STREAMS, cpu count + 1)`` streams when
    the ERP estimates at least ``AUTO_MIN_ROWS`` rows in the window and the split column
    is an integer.
    """
    auto = table.parallel is None
    wanted = table.parallel or (AUTO_STREAMS if table.mode == "incremental" else 1)
    if auto and engine.dialect.name != "postgresql":
        # MySQL/MariaDB through connectorx: one stream measured faster than two.
        wanted = 1
    if auto:
        wanted = min(wanted, (os.cpu_count() or 1) + 1)
    if wanted <= 1 or not table.split:
        return 1
    if auto and (estimate_rows(engine, query, params) or 0) < AUTO_MIN_ROWS:
        return 1
    where = f"source {mapping.source!r} table {table.table!r}"
    kind = column_kind(engine, query, params, table.split)
    if kind == "integer":
        return wanted
    if auto:
        log.info("%s: one stream (split column %r is %s)", where, table.split, kind)
        return 1
    raise RuntimeError(
        f"{where}: 'parallel: {table.parallel}' splits on column {table.split!r}, which "
        f"is {kind}; parallel extraction needs an integer column. Set 'split' to an "
        f"integer column of the query's output or 'parallel: 1' in {mapping.path.name}"
    )


@contextmanager
def plan_streams(
    engine: sa.Engine,
    mapping: SourceMapping,
    table: TableMapping,
    query: str,
    params: dict[str, Any],
) -> Iterator[StreamPlan]:
    """The streams that read ``query``; run them inside the ``with`` block, because on
    PostgreSQL the coordinating transaction holding their snapshot lives only that long."""
    wanted = wanted_streams(engine, mapping, table, query, params)
    if wanted <= 1:
        yield StreamPlan([query])
    elif engine.dialect.name != "postgresql":
        with engine.connect() as conn:
            plan = _split(conn, mapping, table, query, params, wanted, None)
        yield plan
    else:
        with engine.connect() as conn:
            # Read only: the streams must not write; repeatable read: the min/max below
            # and every stream see the snapshot exported here, not a newer one.
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            snapshot = str(conn.execute(sa.text("select pg_export_snapshot()")).scalar_one())
            yield _split(conn, mapping, table, query, params, wanted, snapshot)


def _split(
    conn: sa.Connection,
    mapping: SourceMapping,
    table: TableMapping,
    query: str,
    params: dict[str, Any],
    wanted: int,
    snapshot: str | None,
) -> StreamPlan:
    """Cut the split column's min..max in the window into ``wanted`` ranges."""
    assert table.split is not None
    column = conn.dialect.identifier_preparer.quote_identifier(table.split)
    inner = _strip(query)
    agg = f"select min({column}), max({column}) from ({inner}) as _nc_span"
    lo, hi = conn.execute(sa.text(agg), params).one()
    if not isinstance(lo, int) or not isinstance(hi, int):
        return StreamPlan([query])  # nothing (or only null keys) in the window
    bounds = split_bounds(lo, hi, wanted)
    ranges = stream_ranges(table.split, bounds)
    if ranges:
        ranges[0] += f" or {table.split} is null"
    queries = stream_sql(inner, column, bounds)
    where = f"source {mapping.source!r} table {table.table!r}"
    log.info("%s: %d streams over %s in %s..%s", where, len(queries), table.split, lo, hi)
    return StreamPlan(queries, ranges, snapshot)


def stream_queries(
    engine: sa.Engine,
    mapping: SourceMapping,
    table: TableMapping,
    query: str,
    params: dict[str, Any],
) -> list[str]:
    """The query each extraction stream runs: ``query`` itself, or one per key range."""
    with plan_streams(engine, mapping, table, query, params) as plan:
        return plan.queries


def progress_reporters(
    mapping: SourceMapping, table: TableMapping, started: float, streams: int
) -> list[Callable[[int], None]]:
    """One progress callback per stream, each logging the table's total rows so far."""
    counts = [0] * streams
    lock = threading.Lock()

    def report(i: int, rows: int) -> None:
        with lock:
            counts[i] = rows
            total = sum(counts)
        elapsed = time.monotonic() - started
        log.info(
            "%s.%s: %d rows read (%.1fs, %.0f rows/s)",
            mapping.source,
            table.table,
            total,
            elapsed,
            total / max(elapsed, 1e-6),
        )

    return [partial(report, i) for i in range(streams)]


def run_streams(
    read: Callable[..., int],
    engine: sa.Engine,
    plan: StreamPlan,
    params: dict[str, Any],
    tmps: list[Path],
    progress: list[Callable[[int], None]],
) -> int:
    """Run one bulk reader per stream side by side; returns the rows of all streams.

    A failing stream raises :class:`BulkReadError` naming the stream and its key range.
    """
    extra = {"snapshot": plan.snapshot} if plan.snapshot else {}
    n = len(plan.queries)
    with ThreadPoolExecutor(n, thread_name_prefix="extract") as pool:
        futures = [
            pool.submit(read, engine, q, params, tmp, report, threads=False, **extra)
            for q, tmp, report in zip(plan.queries, tmps, progress, strict=True)
        ]
        rows = 0
        for i, future in enumerate(futures):
            try:
                rows += future.result()
            except (sa.exc.SQLAlchemyError, BulkReadError) as exc:
                raise BulkReadError(
                    f"stream {i + 1} of {n} (rows with {plan.ranges[i]}): "
                    f"{str(exc).strip().splitlines()[0]}"
                ) from exc
    return rows
