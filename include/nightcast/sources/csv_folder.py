"""Land one table of a CSV drop folder (a legacy ERP's nightly export) as landing Parquet.

Layout of a drop connection (``kind: csv_folder``, an Airflow ``fs`` connection)::

    <drop>/<D>/<file>          e.g. /data/drop/legacy/2025-05-01/sales_lines.csv

The night's file is tonight's export (incremental for facts, full for
dimensions), so the extract window is not pushed down anywhere: the file is
landed as it is. Every column is kept as a string exactly as written (an empty
field stays ``""``; the mapping's ``null_tokens`` decide what is missing), so the
cleaner parses a CSV drop and a database the same way. The file is read in
blocks with ``pyarrow.csv`` in the table's ``delimiter``, ``encoding``, ``quote``
(``false``: fields are never quoted) and ``escape`` (e.g. ``\\"`` instead of
``""``); a UTF-8 byte-order mark is ignored, and bytes the encoding cannot decode
fail the task naming the file, byte offset and line.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from nightcast.sources.extract import ExtractResult, Window, landing_path, publish_parts
from nightcast.sources.mapping import SourceMapping, TableMapping

log = logging.getLogger("nightcast.sources")

BLOCK_BYTES = 8 << 20


class DropFileMissingError(FileNotFoundError):
    """Tonight's export file of a csv_folder source has not arrived."""


def night_folder(folder: Path, run_date: date) -> Path:
    return folder / run_date.isoformat()


def find_files(folder: Path, table: TableMapping, run_date: date) -> list[Path]:
    """Tonight's file(s) of ``table`` (``file`` may be a glob), sorted by name."""
    night = night_folder(folder, run_date)
    pattern = table.file or ""
    if any(ch in pattern for ch in "*?["):
        return sorted(p for p in night.glob(pattern) if p.is_file())
    path = night / pattern
    return [path] if path.is_file() else []


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def read_header(
    path: Path, delimiter: str, encoding: str, quote: str | None = '"', escape: str | None = None
) -> list[str]:
    """Column names of a CSV file (first record), without a UTF-8 BOM."""
    enc = "utf-8-sig" if _is_utf8(encoding) else encoding
    with path.open("r", encoding=enc, newline="") as fh:
        first = fh.readline()
    if not first.strip():
        return []
    return next(
        csv.reader(
            io.StringIO(first),
            delimiter=delimiter,
            quotechar=quote or '"',
            escapechar=escape,
            quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE,
        )
    )


def undecodable_at(path: Path, encoding: str) -> tuple[int, int, bytes] | None:
    """(byte offset, 1-based line, bad bytes) of the first undecodable bytes, or None.

    Only run once reading failed, so a good file is never read twice.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig" if _is_utf8(encoding) else encoding)()
    offset, line = 0, 1
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                where = offset + exc.start
                return where, line + chunk[: exc.start].count(b"\n"), chunk[exc.start : exc.end]
            offset += len(chunk)
            line += chunk.count(b"\n")
    return None


def _batches(path: Path, table: TableMapping, names: list[str]) -> pacsv.CSVStreamingReader:
    encoding = "utf8" if _is_utf8(table.encoding) else table.encoding
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(
            encoding=encoding, block_size=BLOCK_BYTES, column_names=names, skip_rows=1
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=table.delimiter,
            newlines_in_values=True,
            quote_char=table.quote or False,
            double_quote=table.escape is None,
            escape_char=table.escape or False,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _missing_message(
    folder: Path, mapping: SourceMapping, table: TableMapping, run_date: date
) -> str:
    expected = night_folder(folder, run_date) / (table.file or "")
    return (
        f"source {mapping.source!r} table {table.table!r}: tonight's export file is missing: "
        f"expected {expected} for run date {run_date} (drop folder from connection "
        f"{mapping.connection!r}). Check that the ERP's nightly export ran and was copied to "
        f"the drop folder, then clear this task; if nights without this file are normal, "
        f"declare the table 'optional: true' in {mapping.path.name}"
    )


def _header(file: Path, mapping: SourceMapping, table: TableMapping) -> list[str]:
    try:
        return read_header(file, table.delimiter, table.encoding, table.quote, table.escape)
    except UnicodeDecodeError as exc:
        _raise_if_undecodable([file], mapping, table, exc)
        raise


def _raise_if_undecodable(
    files: list[Path], mapping: SourceMapping, table: TableMapping, exc: Exception
) -> None:
    """Name the file, byte offset and line of bytes the declared encoding cannot decode."""
    for file in files:
        bad = undecodable_at(file, table.encoding)
        if bad is not None:
            offset, line, data = bad
            raise ValueError(
                f"source {mapping.source!r} table {table.table!r}: bad_encoding: {file} is not "
                f"valid {table.encoding!r}: byte(s) {data!r} at byte offset {offset} (line "
                f"{line}); re-export it in {table.encoding!r} or set the table's 'encoding' in "
                f"{mapping.path.name} (e.g. cp1252 or latin-1 for Windows exports)"
            ) from exc


def land_csv_table(
    folder: Path,
    mapping: SourceMapping,
    table: TableMapping,
    run_date: date,
    window: Window,
    lake_dir: Path,
) -> ExtractResult:
    """Land tonight's file(s) of ``table`` into the landing Parquet file (replacing it)."""
    started = time.monotonic()
    files = find_files(folder, table, run_date)
    if not files and not table.optional:
        raise DropFileMissingError(_missing_message(folder, mapping, table, run_date))
    path = landing_path(lake_dir, mapping.source, table.table, run_date)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    rows = 0
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    try:
        for file in files:
            names = _header(file, mapping, table)
            if not names:
                log.warning("%s.%s: %s is empty", mapping.source, table.table, file)
                continue
            file_schema = pa.schema([(n, pa.string()) for n in names])
            if schema is None:
                schema = file_schema
                writer = pq.ParquetWriter(tmp, schema, compression="zstd")
            elif not file_schema.equals(schema):
                raise ValueError(
                    f"source {mapping.source!r} table {table.table!r}: {file} has columns "
                    f"{names}, unlike {files[0].name} ({schema.names}); every file matching "
                    f"{table.file!r} in one night must have the same header"
                )
            assert writer is not None
            for batch in _batches(file, table, names):
                writer.write_batch(batch)
                rows += batch.num_rows
                log.info(
                    "%s.%s: %d rows read from %s (%.1fs, %.0f rows/s)",
                    mapping.source,
                    table.table,
                    rows,
                    file.name,
                    time.monotonic() - started,
                    rows / max(time.monotonic() - started, 1e-6),
                )
        if writer is None:
            # Optional table without a file tonight (or only empty files): an
            # empty landing file with the mapped columns, so clean sees 0 rows.
            cols = sorted({r.source_column for r in table.columns.values() if r.source_column})
            log.info(
                "%s.%s: no file for %s (optional table): landing 0 rows",
                mapping.source,
                table.table,
                run_date,
            )
            writer = pq.ParquetWriter(
                tmp, pa.schema([(c, pa.string()) for c in cols]), compression="zstd"
            )
        writer.close()
        writer = None
        publish_parts(path, [tmp])  # atomic; drops parts of an earlier multi-stream landing
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        _raise_if_undecodable(files, mapping, table, exc)
        raise ValueError(
            f"source {mapping.source!r} table {table.table!r}: cannot read {files} as CSV "
            f"(delimiter {table.delimiter!r}, encoding {table.encoding!r}, mapping "
            f"{mapping.path.name}): {str(exc).splitlines()[0]}"
        ) from exc
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return ExtractResult(
        mapping.source, table.table, run_date, window, rows, path, time.monotonic() - started
    )
