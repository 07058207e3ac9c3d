"""The hash chain of the append-only audit tables: a storage contract, like ``schema``.

Every row of ``audit.publications`` and ``audit.overrides`` carries its position in its
table's chain (``seq``: 1, 2, 3, …), the ``row_hash`` of the row before it (``prev_hash``;
64 zeros for the first row) and its own::

    row_hash = sha256(prev_hash + "\\n" + canonical row)

The canonical row is the JSON array ``[table, {column: value, …}]`` over every column but
the two hashes (``seq`` included), keys sorted, no spaces, UTF-8 (``ensure_ascii`` off):
dates ``YYYY-MM-DD``, timestamps ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive, as stored), integers
as numbers, NULL as ``null``. A changed value breaks that row's own hash; a deleted,
inserted or reordered row breaks the numbering or the link (``prev_hash``) of the row after
it — whoever made the change, a superuser included. What the chain cannot show on its own
is a rewrite that recomputes every later hash, or the newest rows removed: compare the head
hash ``nightcast audit verify`` prints with one kept outside the database for that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from nightcast.warehouse.schema import AUDIT_TABLES

GENESIS = "0" * 64
CHAINED_TABLES = tuple(f"audit.{t}" for t in AUDIT_TABLES)
CHAIN_COLUMNS = ("seq", "prev_hash", "row_hash")
# Rows written before the chain existed are chained in this order when a warehouse migrates.
OLD_ROW_ORDER = {
    "audit.publications": "decided_at, event_id",
    "audit.overrides": "recorded_at, event_id",
}


def table_columns(table: str) -> tuple[str, ...]:
    """Every column of audit ``table`` (``audit.<name>``), in the order ``schema`` declares them."""
    ddl = AUDIT_TABLES[table.removeprefix("audit.")]
    names = (line.strip().split(None, 1)[0] for line in ddl.strip().splitlines() if line.strip())
    return tuple(n for n in names if n.lower() not in ("primary", "unique", "constraint"))


def hashed_columns(table: str) -> tuple[str, ...]:
    """The columns a row's hash covers: all but ``prev_hash`` and ``row_hash``."""
    return tuple(c for c in table_columns(table) if c not in ("prev_hash", "row_hash"))


def stored_value(value: Any) -> Any:
    """``value`` as the warehouse gives it back: aware timestamps become naive UTC."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _canonical_value(table: str, column: str, value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, datetime):
        return stored_value(value).isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{table}.{column}: no canonical form for {type(value).__name__} {value!r}")


def canonical_row(table: str, row: Mapping[str, Any]) -> str:
    """The text a row's hash covers (see the module docstring)."""
    values = {c: _canonical_value(table, c, row[c]) for c in hashed_columns(table)}
    return json.dumps([table, values], sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(prev_hash: str, table: str, row: Mapping[str, Any]) -> str:
    """sha256 of the previous row's hash, a newline and ``canonical_row``."""
    return hashlib.sha256(f"{prev_hash}\n{canonical_row(table, row)}".encode()).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    """The result of walking one table's chain: intact, or the first row that breaks it."""

    table: str
    rows: int
    head: str  # row_hash of the last row (GENESIS when empty)
    bad_seq: int | None = None
    bad_event: str | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        if self.ok:
            return f"{self.table}: {self.rows} rows, chain intact, head {self.head}"
        where = f"seq {self.bad_seq}" if self.bad_seq is not None else "a row without seq"
        event = f" (event {self.bad_event})" if self.bad_event else ""
        return f"{self.table}: BROKEN at {where}{event}: {self.problem}"


def _break(
    row: Mapping[str, Any], prev: str, expected: int, table: str
) -> tuple[int | None, str] | None:
    """(seq to name, problem) when ``row`` does not continue the chain at ``expected``."""
    seq = row["seq"]
    if seq is None or row["row_hash"] is None or row["prev_hash"] is None:
        return None, "it carries no chain position or hash: written around nightcast.audit"
    if seq < expected:
        return seq, f"seq {seq} appears twice: a row was copied or renumbered"
    if seq > expected:
        missing = f"seq {expected}" + (f"-{seq - 1}" if seq - 1 > expected else "")
        return (
            expected,
            f"{missing} missing: deleted (the next row, seq {seq}, is {row['event_id']})",
        )
    if row_hash(row["prev_hash"], table, row) != row["row_hash"]:
        return seq, "its content no longer matches its hash: the row was changed or moved"
    if row["prev_hash"] != prev:
        return seq, "it does not follow the row before it: that row was changed, replaced or moved"
    return None


def check_chain(table: str, rows: Iterable[Mapping[str, Any]]) -> ChainCheck:
    """Walk ``rows`` (every column, ordered by ``seq``, NULLs first) and name the first break."""
    prev, expected, count = GENESIS, 1, 0
    for row in rows:
        count += 1
        found = _break(row, prev, expected, table)
        if found is not None:
            seq, problem = found
            event = row["event_id"] if seq is None or seq == row["seq"] else None
            return ChainCheck(table, count, prev, seq, event, problem)
        prev, expected = row["row_hash"], expected + 1
    return ChainCheck(table, count, prev)


def chain_old_rows(
    table: str, rows: Sequence[Mapping[str, Any]]
) -> list[tuple[int, str, str, str]]:
    """``(seq, prev_hash, row_hash, event_id)`` for rows written before the chain, in order."""
    out, prev = [], GENESIS
    for seq, row in enumerate(rows, start=1):
        digest = row_hash(prev, table, {**row, "seq": seq})
        out.append((seq, prev, digest, row["event_id"]))
        prev = digest
    return out


def select_rows_sql(table: str) -> str:
    """Every column of ``table`` in chain order (rows without a position first: they are bad)."""
    return (
        f"select {', '.join(table_columns(table))} from {table} order by seq nulls first, event_id"
    )


def lock_key(name: str) -> int:
    """A stable 64-bit advisory-lock key for ``name`` (PostgreSQL ``pg_advisory_xact_lock``)."""
    return int.from_bytes(hashlib.sha256(f"nightcast:{name}".encode()).digest()[:8], signed=True)
