"""Writers (INSERT only) and queries of the ``audit`` schema."""

from __future__ import annotations

import getpass
import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from nightcast import __version__
from nightcast.config import get_settings
from nightcast.sources.extract import landed_parts
from nightcast.storage import Location, location
from nightcast.warehouse.audit_chain import (
    GENESIS,
    hashed_columns,
    lock_key,
    row_hash,
    stored_value,
)
from nightcast.warehouse.base import Warehouse

AUDIT_TABLE_NAMES = ("audit.publications", "audit.overrides")
DECISIONS = ("published", "held_back", "rolled_back")
PUBLICATION_COLUMNS = (
    "event_id",
    "run_date",
    "decided_at",
    "decision",
    "model_version",
    "model_params",
    "code_version",
    "input_snapshot",
    "forecast_rows",
    "forecast_checksum",
    "actor",
    "reason",
)
_FORECAST_COLUMNS = (
    "item_id",
    "location_id",
    "forecast_date",
    "horizon",
    "p10",
    "p50",
    "p90",
    "model_version",
)


def default_actor() -> str:
    """Who acts: ``NIGHTCAST_ACTOR`` if set, else the OS user."""
    actor = get_settings().actor
    if actor:
        return actor
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def code_version() -> str:
    """``nightcast <version>`` plus the git commit when running from a checkout.

    ``NIGHTCAST_CODE_VERSION`` overrides it (set it in images built without ``.git``).
    """
    override = get_settings().code_version
    if override:
        return override
    text = f"nightcast {__version__}"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{text} ({sha})" if sha else text


def file_sha256(path: Location | Path, *more: Location | Path) -> str | None:
    """sha256 over the bytes of ``path`` then ``more`` (streamed, on the local disk or the
    object store), or None when one is gone."""
    h = hashlib.sha256()
    for part in (path, *more):
        loc = location(part)
        if not loc.is_file():
            return None
        with loc.open_input() as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def landing_sha256(folder: Location) -> tuple[str | None, int]:
    """(sha256 over every part of a landing in part order, number of parts)."""
    parts = landed_parts(folder)
    if not parts:
        return None, 0
    return file_sha256(*parts), len(parts)


def input_snapshot(wh: Warehouse, run_date: date) -> list[dict[str, Any]]:
    """The files landed for ``run_date`` (``ops.extract_windows``) with their sha256."""
    rows = wh.fetchall(
        "select source, table_name, landed_path, rows_extracted from ops.extract_windows "
        "where run_date = ? order by source, table_name",
        [run_date],
    )
    out = []
    for source, table, path, n in rows:
        digest, parts = landing_sha256(location(path))
        out.append(
            {
                "source": source,
                "table": table,
                "path": path,
                "parts": parts,
                "rows": int(n),
                "sha256": digest,
            }
        )
    return out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def forecast_checksum(wh: Warehouse, run_date: date) -> tuple[int, str]:
    """Row count and order-independent checksum of run ``run_date``'s forecast rows.

    sha256 over the sorted sha256 of each row's ``|``-joined text (item, location,
    forecast date, horizon, p10, p50, p90, model version); the same rows give the
    same checksum on DuckDB and PostgreSQL, whatever their order.
    """
    cols = ", ".join(_FORECAST_COLUMNS)
    table = wh.arrow(f"select {cols} from forecast.forecasts where run_date = ?", [run_date])
    columns = [table.column(c).to_pylist() for c in _FORECAST_COLUMNS]
    digests = sorted(
        hashlib.sha256("|".join(_text(v) for v in row).encode()).hexdigest()
        for row in zip(*columns, strict=True)
    )
    return len(digests), hashlib.sha256("".join(digests).encode()).hexdigest()


def _model_params(wh: Warehouse, versions: list[str]) -> str | None:
    if not versions:
        return None
    marks = ", ".join("?" for _ in versions)
    rows = wh.fetchall(
        f"select model_version, params from forecast.model_registry where model_version in ({marks})",
        versions,
    )
    found = {v: json.loads(p) if p else None for v, p in rows}
    return json.dumps({v: found.get(v) for v in versions}, sort_keys=True, default=str)


def record_publication(
    wh: Warehouse,
    run_date: date,
    decision: str,
    *,
    actor: str = "pipeline",
    reason: str | None = None,
    now: datetime | None = None,
    inputs: list[dict[str, Any]] | None = None,
) -> str:
    """Append one ``audit.publications`` row for run ``run_date``; returns its event id.

    ``inputs`` adds files beyond the landed ones (the forecast's input snapshot).

    Reads the run's model version (``forecast.runs``), the models' parameters (registry),
    the landed input files and the forecast rows. One INSERT: call it inside the
    transaction that makes the decision so both commit together.
    """
    if decision not in DECISIONS:
        raise ValueError(f"unknown audit decision {decision!r}; one of {DECISIONS}")
    run = wh.fetchone("select model_version from forecast.runs where run_date = ?", [run_date])
    versions = sorted(v for v in (run[0] or "").split(",") if v) if run else []
    rows, checksum = forecast_checksum(wh, run_date)
    event_id = uuid.uuid4().hex
    values = [
        event_id,
        run_date,
        now or datetime.now(),
        decision,
        ",".join(versions) or None,
        _model_params(wh, versions),
        code_version(),
        json.dumps(input_snapshot(wh, run_date) + (inputs or []), sort_keys=True),
        rows,
        checksum,
        actor,
        reason,
    ]
    append_chained(wh, "audit.publications", dict(zip(PUBLICATION_COLUMNS, values, strict=True)))
    return event_id


def record_held_back(wh: Warehouse, run_date: date, reason: str, *, actor: str = "pipeline") -> str:
    """The quality gate held run ``run_date`` back: append a 'held_back' publication row."""
    return record_publication(wh, run_date, "held_back", actor=actor, reason=reason)


def record_override(
    wh: Warehouse,
    action: str,
    *,
    actor: str | None = None,
    model_version: str | None = None,
    run_date: date | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> str:
    """Append one ``audit.overrides`` row (a human override: who, what, why)."""
    event_id = uuid.uuid4().hex
    append_chained(
        wh,
        "audit.overrides",
        {
            "event_id": event_id,
            "recorded_at": now or datetime.now(),
            "actor": actor or default_actor(),
            "action": action,
            "model_version": model_version,
            "run_date": run_date,
            "reason": reason,
        },
    )
    return event_id


@contextmanager
def _chain_locked(wh: Warehouse, table: str) -> Iterator[None]:
    """Appends to ``table`` one at a time, so two writers never both extend the same row.

    PostgreSQL: a transaction-scoped advisory lock (the pipeline's role may INSERT and SELECT,
    not LOCK TABLE), held until the caller's transaction commits. DuckDB: one process writes
    a warehouse file at a time. Either way ``seq`` is unique: a fork would fail, not land.
    """
    if wh.dialect != "postgresql":
        yield
        return
    with wh.transaction():
        wh.fetchall("select pg_advisory_xact_lock(?)::text", [lock_key(table)])
        yield


def append_chained(wh: Warehouse, table: str, values: dict[str, Any]) -> int:
    """INSERT one row into audit ``table`` as the next link of its hash chain; returns its seq.

    Call it inside the transaction that makes the decision: the row commits with it, and
    on PostgreSQL the chain stays locked until then.
    """
    with _chain_locked(wh, table):
        last = wh.fetchone(
            f"select seq, row_hash from {table} where seq = (select max(seq) from {table})"
        )
        seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
        row = {k: stored_value(v) for k, v in values.items()} | {"seq": seq}
        digest = row_hash(prev, table, row)
        columns = [*row, "prev_hash", "row_hash"]
        wh.execute(
            f"insert into {table} ({', '.join(columns)}) "
            f"values ({', '.join('?' for _ in columns)})",
            [*row.values(), prev, digest],
        )
        # Read back what was stored: a value the warehouse keeps differently from how it was
        # hashed would make the row fail verification later; fail now, with the decision.
        cols = hashed_columns(table)
        stored = wh.fetchone(f"select {', '.join(cols)} from {table} where seq = ?", [seq])
        if stored is None or row_hash(prev, table, dict(zip(cols, stored, strict=True))) != digest:
            raise RuntimeError(
                f"{table}: the row stored at seq {seq} differs from the row hashed "
                f"({dict(zip(cols, stored or (), strict=False))} vs {row})"
            )
    return seq


def find_publications(
    wh: Warehouse,
    *,
    run_date: date | None = None,
    item: str | None = None,
    location: str | None = None,
    forecast_date: date | None = None,
) -> list[dict[str, Any]]:
    """Publication events, newest first, of the runs that forecast ``item``/``location``/``forecast_date``."""
    where: list[str] = []
    params: list[Any] = []
    if run_date is not None:
        where.append("p.run_date = ?")
        params.append(run_date)
    match: list[str] = []
    for column, value in (
        ("item_id", item),
        ("location_id", location),
        ("forecast_date", forecast_date),
    ):
        if value is not None:
            match.append(f"f.{column} = ?")
            params.append(value)
    if match:
        where.append(
            "exists (select 1 from forecast.forecasts as f where f.run_date = p.run_date and "
            + " and ".join(match)
            + ")"
        )
    sql = f"select {', '.join('p.' + c for c in PUBLICATION_COLUMNS)} from audit.publications as p"
    if where:
        sql += " where " + " and ".join(where)
    sql += " order by p.decided_at desc, p.event_id"
    return [dict(zip(PUBLICATION_COLUMNS, r, strict=True)) for r in wh.fetchall(sql, params)]
