"""Map landed source rows onto a canonical table; quarantine what cannot be used.

Every input row ends up in exactly one place: the clean frame, or the
quarantine frame with a reason per failing column. ``rows_in == clean +
quarantined`` is checked before anything is returned.
"""

from __future__ import annotations

import ctypes
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nightcast.cleaning.parsers import (
    flag_bad_encoding,
    flag_control,
    parse_date,
    parse_number,
    parse_timestamp,
    show_controls,
)
from nightcast.errors import DeterministicError
from nightcast.sources.mapping import ColumnRule, TableMapping
from nightcast.storage import Location, location

log = logging.getLogger("nightcast.cleaning")

QUARANTINE_COLUMNS = [
    "run_date",
    "source",
    "table_name",
    "row_number",
    "natural_key",
    "column_name",
    "reason",
    "raw_value",
    "raw_row",
]


class SchemaDriftError(ValueError, DeterministicError):
    """The landed file lacks a column the mapping needs: fixed by re-extracting after the fix."""

    rerun_from = "extract"

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.sources = (source,)


@dataclass
class CleanResult:
    """One source table for one run: clean rows, quarantined rows and counts."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: int
    unexpected_columns: list[str] = field(default_factory=list)

    @property
    def rows_quarantined(self) -> int:
        return int(self.quarantine["row_number"].nunique()) if len(self.quarantine) else 0


# From 2**53 on, a double no longer holds every whole number (2**53 + 1 reads as 2**53):
# an ``int`` that large may already have been rounded, so it is not loaded.
MAX_EXACT_INT = 2.0**53 - 1


def _prepare(rule: ColumnRule, raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Normalise, trim and null-token one column; returns (text, reason per row or None)."""
    text = raw.astype("string")
    if rule.normalize:
        # NFKC folds full-width digits and no-break spaces that Excel-made exports carry.
        text = text.str.normalize(rule.normalize)
    bad_encoding = pd.Series(None, index=raw.index, dtype="object")
    bad_encoding[flag_control(text)] = "control_character"
    bad_encoding[flag_bad_encoding(text)] = "bad_encoding"
    stripped = text.str.strip()
    if rule.trim:
        text = stripped
    # Null tokens match after trimming either way: ' NULL ' is still a null.
    return text.mask(stripped.isin(rule.null_tokens)), bad_encoding


def _parse(
    rule: ColumnRule, raw: pd.Series, source: str, timezone: str = "UTC"
) -> tuple[pd.Series, pd.Series]:
    """Parse one column; returns (values, reason per row or None)."""
    text, reasons = _prepare(rule, raw)
    if rule.values is not None:
        mapped = text.map(rule.values)
        unknown = text.notna() & mapped.isna()
        reasons[unknown & reasons.isna()] = "unknown_value"
        text = mapped.astype("string")
    if rule.default is not None:
        text = text.fillna(str(rule.default))
    values: pd.Series
    parsed_reasons: pd.Series | None = None
    if rule.type == "id":
        values = (source + ":" + text).astype("string")
    elif rule.type == "string":
        values = text
    elif rule.type in ("float", "int"):
        values, parsed_reasons = parse_number(text, rule.decimal, rule.thousands, rule.currency)
        if rule.type == "int":
            huge = values.notna() & (values.abs() > MAX_EXACT_INT)
            fraction = values.notna() & ~huge & (values != np.floor(values))
            parsed_reasons = parsed_reasons.mask(
                huge & parsed_reasons.isna(), "number_out_of_range"
            )
            parsed_reasons = parsed_reasons.mask(fraction & parsed_reasons.isna(), "not_an_integer")
            values = values.where(~fraction & ~huge).astype("Int64")
        elif rule.scale is not None:
            values = values * rule.scale
            overflow = np.isinf(values.to_numpy(dtype="float64", na_value=np.nan))
            parsed_reasons = parsed_reasons.mask(
                overflow & parsed_reasons.isna().to_numpy(), "number_out_of_range"
            )
            values = values.mask(overflow)
    elif rule.type == "date":
        values, parsed_reasons = parse_date(text, rule.formats, rule.excel_serial, timezone)
    else:
        values, parsed_reasons = parse_timestamp(
            text, rule.formats, rule.timezone, timezone, rule.excel_serial
        )
    if parsed_reasons is not None:
        reasons = reasons.fillna(parsed_reasons) if reasons.notna().any() else parsed_reasons
    missing = values.isna() & reasons.isna()
    if rule.required:
        reasons[missing] = "missing_required"
    return values, reasons


def deployment_timezone() -> str:
    """The zone every timestamp is stored in (``NIGHTCAST_TIMEZONE``, default UTC)."""
    from nightcast.config import get_settings

    return get_settings().timezone


def _raw_frame(landed: pa.Table | pa.RecordBatch, first_row: int) -> pd.DataFrame:
    """Landed rows as strings, indexed by their 1-based row number in the landing."""
    raw = (
        landed.to_pandas(types_mapper=pd.ArrowDtype).astype("string")
        if landed.num_rows
        else pd.DataFrame({c: pd.Series([], dtype="string") for c in landed.column_names})
    )
    raw.index = pd.RangeIndex(first_row, first_row + len(raw), name="row_number")
    return raw


def _check_columns(
    columns: list[str], table: TableMapping, source: str, landed_path: Path | Location
) -> list[str]:
    """The landed columns the mapping does not use; raises when one it needs is absent."""
    needed = {r.source_column for r in table.columns.values() if r.source_column}
    absent = sorted(needed - set(columns))
    if absent:
        raise SchemaDriftError(
            f"source {source!r} table {table.table!r}: landed file {landed_path} has no column(s) "
            f"{absent}; the ERP schema changed or the mapping is wrong. Columns present: {sorted(columns)}",
            source,
        )
    return sorted(set(columns) - needed)


def _map_rows(
    raw: pd.DataFrame,
    table: TableMapping,
    source: str,
    run_date: date,
    landed_path: Path | Location,
    zone: str,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Parse every mapped column of ``raw``: (clean frame, reason per row and column, unused columns).

    Row by row: a row's values and reasons do not depend on any other row, so a
    file cleaned in batches gets the same values as cleaned whole.
    """
    unexpected = _check_columns(list(raw.columns), table, source, landed_path)
    out: dict[str, pd.Series] = {}
    reasons: dict[str, pd.Series] = {}
    for name, rule in table.columns.items():
        col = (
            raw[rule.source_column]
            if rule.source_column
            else pd.Series([rule.value] * len(raw), index=raw.index, dtype="string")
        )
        out[name], reasons[name] = _parse(rule, col, source, zone)
    clean = pd.DataFrame(out, index=raw.index)
    clean.insert(0, "source", source)
    clean["_run_date"] = pd.Timestamp(run_date)
    return clean, pd.DataFrame(reasons, index=raw.index), unexpected


def clean_table(
    landed: pa.Table,
    table: TableMapping,
    source: str,
    run_date: date,
    landed_path: Path | Location,
    timezone: str | None = None,
) -> CleanResult:
    """Clean one landed table. Rows keep their 1-based position in the landed file.

    Timestamps are normalised to ``timezone`` (default: the deployment's zone).
    """
    zone = timezone or deployment_timezone()
    raw = _raw_frame(landed, 1)
    clean, reason_frame, unexpected = _map_rows(raw, table, source, run_date, landed_path, zone)
    bad_rows = reason_frame.notna().any(axis=1)
    key = table.key
    # Older versions of a key in the same batch are superseded, not lost: they go
    # to quarantine with their own reason so the reconciliation still balances.
    order_col = "updated_at" if "updated_at" in clean.columns else None
    ok = clean[~bad_rows]
    sort_cols = [key, order_col] if order_col else [key]
    ranked = ok.sort_values(sort_cols, kind="stable", na_position="first")
    superseded = ranked.index[ranked.duplicated(subset=[key], keep="last")]
    reason_frame.loc[superseded, key] = "duplicate_key_superseded"

    quarantined_idx = reason_frame.index[reason_frame.notna().any(axis=1)]
    quarantine = _quarantine_frame(
        raw, reason_frame.loc[quarantined_idx], clean[key], table, source, run_date
    )
    clean = clean.drop(index=quarantined_idx).sort_values(key, kind="stable").reset_index(drop=True)
    result = CleanResult(clean, quarantine, len(raw), unexpected)
    if len(clean) + result.rows_quarantined != len(raw):
        raise AssertionError(
            f"{source}.{table.table}: reconciliation failed: {len(raw)} read != "
            f"{len(clean)} clean + {result.rows_quarantined} quarantined"
        )
    return result


def _quarantine_frame(
    raw: pd.DataFrame,
    reasons: pd.DataFrame,
    keys: pd.Series,
    table: TableMapping,
    source: str,
    run_date: date,
) -> pd.DataFrame:
    long = reasons.stack().rename("reason").reset_index()
    long = long[long["reason"].notna()].reset_index(drop=True)
    if long.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in QUARANTINE_COLUMNS})
    long.columns = pd.Index(["row_number", "column_name", "reason"])
    src_col = {n: r.source_column for n, r in table.columns.items()}
    raw_rows = raw.loc[long["row_number"]]
    long["raw_value"] = [
        None if src_col[c] is None else raw_rows.iloc[i][src_col[c]]
        for i, c in enumerate(long["column_name"])
    ]
    long["raw_row"] = [
        json.dumps({k: (None if pd.isna(v) else str(v)) for k, v in row.items()})
        for row in raw_rows.to_dict("records")
    ]
    long["natural_key"] = (
        keys.reindex(long["row_number"])
        .astype("object")
        .where(lambda s: s.notna(), None)
        .to_numpy()
    )
    long["run_date"] = pd.Timestamp(run_date)
    long["source"] = source
    long["table_name"] = table.table
    # Spelled out, so the row stores on PostgreSQL (no NUL in text) and reads the same on both.
    for col in ("raw_value", "natural_key"):
        long[col] = long[col].map(
            lambda v: None if v is None or pd.isna(v) else show_controls(str(v))
        )
    return long[QUARANTINE_COLUMNS]


try:
    _libc: ctypes.CDLL | None = ctypes.CDLL("libc.so.6")  # glibc: malloc_trim
except OSError:  # pragma: no cover - not glibc
    _libc = None

# Rows cleaned at a time by :func:`clean_landed`: memory grows with this, not with the file.
BATCH_ROWS = 250_000


@dataclass
class CleanSummary:
    """What :func:`clean_landed` wrote: counts, and quarantine entries per (column, reason)."""

    rows_in: int
    rows_clean: int
    rows_quarantined: int
    reasons: dict[tuple[str, str], int]
    unexpected_columns: list[str] = field(default_factory=list)


def _write_frame(df: pd.DataFrame, path: Location) -> None:
    with path.staged_file() as tmp:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp, compression="zstd")


def _landed_batches(parts: list[Location], batch_rows: int) -> Iterator[pa.RecordBatch]:
    for part in parts:
        with part.open_input() as f:
            yield from pq.ParquetFile(f).iter_batches(batch_size=batch_rows)


def _spill(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _unspill(path: Path) -> pa.Table:
    with pa.OSFile(str(path), "rb") as source:  # read, not mapped: mapped pages count as RSS
        return pa.ipc.open_file(source).read_all()


def _release() -> None:
    """Hand freed batch memory back to the system, so the peak is one batch's, not the sum."""
    pa.default_memory_pool().release_unused()
    if _libc is not None:
        _libc.malloc_trim(0)


def _dense_rank(values: pa.ChunkedArray, nulls: str, dtype: type[np.signedinteger]) -> np.ndarray:
    """Each value's rank among the distinct values (equal values, nulls too, share one)."""
    ranks = pc.rank(values, sort_keys=[("", "ascending", nulls)], tiebreaker="dense")
    return ranks.to_numpy().astype(dtype)


def _winners(keys: list[pa.Array], orders: list[pa.Array] | None) -> np.ndarray:
    """For every accepted row (in file order): its position in the clean output, or -1.

    The same rule as :func:`clean_table`: of the rows sharing a key (missing keys
    count as one key), the one with the latest ``updated_at`` (missing first) wins,
    the later row on a tie; the winners are ordered by key, a missing key last.
    Only the key (and order) columns of the accepted rows are held: as dense ranks.
    """
    n = sum(len(k) for k in keys)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    small = np.int32 if n < 2**31 - 1 else np.int64  # half the memory for 25M rows
    group = _dense_rank(pa.chunked_array(keys), "at_end", small)
    del keys[:]
    if orders is not None:
        order = _dense_rank(pa.chunked_array(orders), "at_start", small)
        del orders[:]
        sequence = np.lexsort((order, group))  # stable: a tie keeps file order
        del order
    else:
        sequence = np.argsort(group, kind="stable")
    ranked = group[sequence]
    last = np.empty(n, dtype=bool)
    last[:-1] = ranked[1:] != ranked[:-1]
    last[-1] = True
    del ranked
    position = np.full(n, -1, dtype=small)
    won = sequence[last]
    position[won] = group[won] - 1  # one winner per distinct key: its rank is its place
    return position


def clean_landed(
    parts: Sequence[Location | Path],
    table: TableMapping,
    source: str,
    run_date: date,
    clean_out: Location | Path,
    quarantine_out: Location | Path,
    *,
    landed_path: Location | Path | None = None,
    timezone: str | None = None,
    batch_rows: int = BATCH_ROWS,
) -> CleanSummary:
    """Clean a landing (its Parquet parts, in order) in batches of ``batch_rows`` rows,
    writing the clean and quarantine Parquet files as it goes.

    The files hold exactly what :func:`clean_table` on the whole landing gives (same
    rows, order, reasons and row numbers) while memory stays bounded by the batch: a
    first pass cleans each batch, writes its rejected rows' entries and spills its
    accepted rows to a scratch folder beside ``clean_out``, keeping only their keys;
    the duplicate rule then runs on the keys alone; a second pass quarantines the
    superseded rows and scatters the winners into key-ordered buckets, which a
    third writes out in key order.
    """
    landing = [location(p) for p in parts]
    clean_to, quarantine_to = location(clean_out), location(quarantine_out)
    landed_path = landed_path or landing[0]
    zone = timezone or deployment_timezone()
    columns: list[str] = []
    rows_in = 0
    for part in landing:
        with part.open_input() as f:
            meta = pq.read_metadata(f)
        columns = columns or meta.schema.to_arrow_schema().names
        rows_in += meta.num_rows
    unexpected = _check_columns(columns, table, source, landed_path)
    if rows_in == 0:
        res = clean_table(
            pa.table({c: pa.array([], pa.string()) for c in columns}),
            table,
            source,
            run_date,
            landed_path,
            zone,
        )
        _write_frame(res.clean, clean_to)
        _write_frame(res.quarantine, quarantine_to)
        return CleanSummary(0, 0, 0, {}, unexpected)

    key = table.key
    order_col = "updated_at" if "updated_at" in table.columns else None
    with clean_to.parent.scratch() as spill:
        keys: list[pa.Array] = []
        orders: list[pa.Array] | None = [] if order_col else None
        accepted: list[int] = []  # accepted rows per batch
        clean_schema: pa.Schema | None = None
        empty_clean: pd.DataFrame | None = None  # what to write when no row is clean
        first = 1
        # Pass 1: clean each batch; spill its rejected rows' entries and its accepted rows.
        for i, batch in enumerate(_landed_batches(landing, batch_rows)):
            raw = _raw_frame(batch, first)
            first += batch.num_rows
            clean, reasons, _ = _map_rows(raw, table, source, run_date, landed_path, zone)
            bad = reasons.notna().any(axis=1).to_numpy()
            q = _quarantine_frame(raw[bad], reasons[bad], clean[key], table, source, run_date)
            del raw
            if len(q):
                q.to_pickle(spill / f"q-{i}.pkl")  # as built: its dtypes decide the file's
            ok = clean[~bad]
            if empty_clean is None:
                empty_clean = clean.iloc[:0].reset_index(drop=True)
            del clean, reasons
            rows = pa.Table.from_pandas(ok, preserve_index=False)
            del ok
            if clean_schema is None and rows.num_rows:
                clean_schema = rows.schema
            numbers = pa.array(np.flatnonzero(~bad) + (first - batch.num_rows), pa.int64())
            rows = rows.append_column("_row_number", numbers)
            _spill(rows, spill / f"c-{i}.arrow")
            keys.extend(rows.column(key).chunks)
            if orders is not None and order_col is not None:
                orders.extend(rows.column(order_col).chunks)
            accepted.append(rows.num_rows)
            del rows
            _release()
        _release()
        position = _winners(keys, orders)
        _release()
        n_clean = int((position >= 0).sum())

        # Pass 2: per batch, quarantine superseded rows (in row order among that batch's
        # other entries) and send the winners to the bucket of their output position.
        bucket_rows = max(batch_rows, 1)
        buckets: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
        sinks: list[pa.NativeFile] = []
        q_chunks: list[Path] = []
        q_samples: list[pd.DataFrame] = []
        counts: dict[tuple[str, str], int] = {}
        rows_quarantined = 0
        landed_again = _landed_batches(landing, batch_rows)
        offset = 0
        first = 1
        try:
            for i, n_ok in enumerate(accepted):
                raw_batch = next(landed_again)
                rows = _unspill(spill / f"c-{i}.arrow")
                (spill / f"c-{i}.arrow").unlink()
                where = position[offset : offset + n_ok]
                offset += n_ok
                entries = []
                q_path = spill / f"q-{i}.pkl"
                if q_path.exists():
                    entries.append(pd.read_pickle(q_path))
                    q_path.unlink()
                lost = where < 0
                if lost.any():
                    entries.append(
                        _superseded(
                            raw_batch,
                            first,
                            rows.filter(pa.array(lost)),
                            table,
                            source,
                            run_date,
                        )
                    )
                first += raw_batch.num_rows
                del raw_batch
                if entries:
                    q = pd.concat(entries, ignore_index=True) if len(entries) > 1 else entries[0]
                    q = q.sort_values("row_number", kind="stable").reset_index(drop=True)
                    rows_quarantined += int(q["row_number"].nunique())
                    for pair, count in q.groupby(["column_name", "reason"]).size().items():
                        counts[pair] = counts.get(pair, 0) + int(count)
                    q_samples.append(_sample(q))
                    q_chunks.append(spill / f"qo-{i}.pkl")
                    q.to_pickle(q_chunks[-1])
                    del q
                kept = ~lost
                if not kept.any():
                    continue
                assert clean_schema is not None  # some row of the file was accepted
                winners = rows.filter(pa.array(kept)).append_column(
                    "_position", pa.array(where[kept])
                )
                del rows
                bucket_of = where[kept] // bucket_rows
                for b in np.unique(bucket_of):
                    if int(b) not in buckets:
                        sink = pa.OSFile(str(spill / f"b-{b}.arrow"), "wb")
                        sinks.append(sink)
                        buckets[int(b)] = pa.ipc.new_stream(sink, winners.schema)
                    buckets[int(b)].write_table(winners.filter(pa.array(bucket_of == b)))
                del winners
                _release()
            del position
        finally:
            for w in buckets.values():
                w.close()
            for sink in sinks:
                sink.close()
        _write_quarantine(q_chunks, q_samples, quarantine_to)

        # Pass 3: each bucket in position order: the clean file, ordered by key.
        if clean_schema is None:
            assert empty_clean is not None
            _write_frame(empty_clean, clean_to)
            return CleanSummary(rows_in, 0, rows_quarantined, counts, unexpected)
        with (
            clean_to.staged_file() as tmp,
            pq.ParquetWriter(tmp, clean_schema, compression="zstd") as writer,
        ):
            for b in sorted(buckets):
                path = spill / f"b-{b}.arrow"
                with pa.OSFile(str(path), "rb") as source_file:
                    bucket = pa.ipc.open_stream(source_file).read_all()
                path.unlink()
                bucket = bucket.take(pc.sort_indices(bucket.column("_position")))
                writer.write_table(bucket.select(clean_schema.names).cast(clean_schema))
                del bucket

    if n_clean + rows_quarantined != rows_in:
        raise AssertionError(
            f"{source}.{table.table}: reconciliation failed: {rows_in} read != "
            f"{n_clean} clean + {rows_quarantined} quarantined"
        )
    return CleanSummary(rows_in, n_clean, rows_quarantined, counts, unexpected)


def _superseded(
    raw_batch: pa.RecordBatch,
    batch_first: int,
    rows: pa.Table,
    table: TableMapping,
    source: str,
    run_date: date,
) -> pd.DataFrame:
    """Quarantine entries of accepted rows an other row of their key superseded."""
    numbers = rows.column("_row_number").to_numpy()
    raw = _raw_frame(raw_batch.take(pa.array(numbers - batch_first)), 0)
    raw.index = pd.Index(numbers, name="row_number")
    key = table.key
    reasons = pd.DataFrame(
        {name: pd.Series(None, index=raw.index, dtype="object") for name in table.columns},
        index=raw.index,
    )
    reasons[key] = "duplicate_key_superseded"
    keys = pd.Series(rows.column(key).to_pandas().to_numpy(), index=raw.index)
    return _quarantine_frame(raw, reasons, keys, table, source, run_date)


def _sample(q: pd.DataFrame) -> pd.DataFrame:
    """A few rows of ``q`` holding a value in every column that has one anywhere."""
    picks = {0} | {int(np.argmax(q[c].notna().to_numpy())) for c in q.columns}
    return q.iloc[sorted(picks)]


def _write_quarantine(chunks: list[Path], samples: list[pd.DataFrame], path: Location) -> None:
    """Write the quarantine entries, chunk by chunk, in the schema the whole frame would get.

    pandas infers a text column's type from its values; a column that is empty in one
    chunk but not in another takes the type (and pandas metadata) of the filled one.
    """
    if not chunks:
        empty = pd.DataFrame({c: pd.Series(dtype="object") for c in QUARANTINE_COLUMNS})
        _write_frame(empty, path)
        return
    sample = pd.concat(samples, ignore_index=True)
    for col in ("raw_value", "natural_key"):  # re-inferred as _quarantine_frame infers them
        sample[col] = sample[col].astype("object").map(lambda v: None if pd.isna(v) else v)
    schema = pa.Schema.from_pandas(sample, preserve_index=False)
    with path.staged_file() as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for chunk in chunks:
            frame = pd.read_pickle(chunk)
            chunk.unlink()
            writer.write_table(pa.Table.from_pandas(frame, preserve_index=False).cast(schema))
