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
import logging
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from nightcast.sources.csv_records import (
    CsvRecordError,
    Dialect,
    Layout,
    _no_field_limit,
    _reader,
    count_records,
    find_header,
    first_bad_record,
    header_problem,
    is_utf8,
    read_layout,
    text_encoding,
)
from nightcast.sources.landing import (
    INPUTS_KEY,
    ExtractResult,
    IntakeError,
    Window,
    landing_path,
    publish_parts,
)
from nightcast.sources.mapping import SourceMapping, TableMapping
from nightcast.storage import Location

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


def read_header(
    path: Path, delimiter: str, encoding: str, quote: str | None = '"', escape: str | None = None
) -> list[str]:
    """Column names of a CSV file: its first row with a value (blank rows before it skipped)."""
    return read_layout(path, Dialect(delimiter, quote, escape, encoding)).header


def undecodable_at(path: Path, encoding: str) -> tuple[int, int, bytes] | None:
    """(byte offset, 1-based line, bad bytes) of the first undecodable bytes, or None.

    Only run once reading failed, so a good file is never read twice.
    """
    decoder = codecs.getincrementaldecoder(text_encoding(encoding))()
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


def dialect(table: TableMapping) -> Dialect:
    return Dialect(table.delimiter, table.quote, table.escape, table.encoding)


def _batches(
    path: Path, table: TableMapping, names: list[str], skip: int
) -> pacsv.CSVStreamingReader:
    encoding = "utf8" if is_utf8(table.encoding) else table.encoding
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(
            encoding=encoding, block_size=_block_bytes(table), column_names=names, skip_rows=skip
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


def _block_bytes(table: TableMapping) -> int:
    """pyarrow's read block: a record must fit in one, so twice the largest field allowed."""
    return max(BLOCK_BYTES, 2 * table.max_field_bytes)


def _field_too_large(
    mapping: SourceMapping,
    table: TableMapping,
    file: Path,
    record: int,
    layout: Layout,
    column: str,
    size: int,
) -> IntakeError:
    return IntakeError(
        f"{_where(mapping, table)}: {file}: record {record} after the header on line "
        f"{layout.header_line}, column {column!r}: a field of {size} bytes, over the table's "
        f"max_field_bytes ({table.max_field_bytes}); raise 'max_field_bytes' for table "
        f"{table.table!r} in {mapping.path.name} if such fields are real (nothing was loaded)",
        mapping.source,
    )


def _check_field_bytes(
    batch: pa.RecordBatch,
    before: int,
    file: Path,
    mapping: SourceMapping,
    table: TableMapping,
    layout: Layout,
) -> None:
    """Fail on the first field over ``max_field_bytes`` (``before`` records of ``file`` precede)."""
    first: tuple[int, int] | None = None
    for i, col in enumerate(batch.columns):
        lengths = pc.binary_length(col)
        if (pc.max(lengths).as_py() or 0) > table.max_field_bytes:
            row = pc.index(pc.greater(lengths, table.max_field_bytes), True).as_py()
            first = min(first or (row, i), (row, i))
    if first is not None:
        row, i = first
        size = len(batch.column(i)[row].as_buffer() or b"")
        raise _field_too_large(
            mapping, table, file, before + row + 1, layout, batch.schema.names[i], size
        )


def _raise_if_field_too_large(
    file: Path, mapping: SourceMapping, table: TableMapping, layout: Layout, exc: Exception
) -> None:
    """A record larger than pyarrow's block: find the field over ``max_field_bytes``."""
    d = dialect(table)
    with _no_field_limit(), file.open("r", encoding=text_encoding(d.encoding), newline="") as fh:
        reader = _reader(fh, d)
        record = 0
        for row in reader:
            if reader.line_num <= layout.data_line or not row:
                continue
            record += 1
            for name, value in zip(layout.header, row, strict=False):
                size = len(value.encode(d.encoding, errors="replace"))
                if size > table.max_field_bytes:
                    raise _field_too_large(
                        mapping, table, file, record, layout, name, size
                    ) from exc


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


def _where(mapping: SourceMapping, table: TableMapping) -> str:
    return f"source {mapping.source!r} table {table.table!r}"


def checked_layout(file: Path, mapping: SourceMapping, table: TableMapping) -> Layout:
    """The file's header, checked: unique, non-blank names, no noise above it."""
    try:
        layout = read_layout(file, dialect(table))
    except UnicodeDecodeError as exc:
        _raise_if_undecodable([file], mapping, table, exc)
        raise
    except CsvRecordError as exc:
        raise _dialect_error(mapping, table, exc) from exc
    if not layout.header:
        return layout
    problem = header_problem(layout.header)
    if problem:
        raise IntakeError(
            f"{_where(mapping, table)}: {file}: line {layout.header_line}: {problem}; every "
            f"column of the header needs its own name: fix the ERP's export (nothing was loaded)",
            mapping.source,
        )
    wanted = {r.source_column for r in table.columns.values() if r.source_column}
    if not wanted <= set(layout.header):
        real = find_header(file, dialect(table), wanted, layout)
        if real is not None:
            raise IntakeError(
                f"{_where(mapping, table)}: {file}: line {layout.header_line} is not the header "
                f"({layout.header!r}); the header is on line {real}. Only rows without a value "
                f"are skipped before the header: remove the lines above it in the ERP's export "
                f"(nothing was loaded)",
                mapping.source,
            )
    if layout.skipped_lines:
        log.warning(
            "%s.%s: %s: skipped %d row(s) without a value before the header on line %d",
            mapping.source,
            table.table,
            file,
            layout.skipped_lines,
            layout.header_line,
        )
    return layout


def _dialect_error(mapping: SourceMapping, table: TableMapping, exc: CsvRecordError) -> IntakeError:
    return IntakeError(
        f"{_where(mapping, table)}: {exc}, under the dialect of {mapping.path.name} (delimiter "
        f"{table.delimiter!r}, quote {table.quote!r}, escape {table.escape!r}); fix the export "
        f"or the table's CSV options (nothing was loaded)",
        mapping.source,
    )


def _count(file: Path, mapping: SourceMapping, table: TableMapping, layout: Layout) -> int:
    """Data records of ``file`` (header and skipped rows excluded), counted independently."""
    try:
        counts = count_records(file, dialect(table))
    except CsvRecordError as exc:
        raise _dialect_error(mapping, table, exc) from exc
    if counts.blank_lines > layout.skipped_lines - layout.skipped_rows:
        log.info(
            "%s.%s: %s: %d empty line(s) among the records (no fields: not records)",
            mapping.source,
            table.table,
            file,
            counts.blank_lines - (layout.skipped_lines - layout.skipped_rows),
        )
    return counts.records - layout.skipped_rows - (1 if layout.header else 0)


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


def _raise_if_ragged(
    file: Path, mapping: SourceMapping, table: TableMapping, layout: Layout, exc: Exception
) -> None:
    """Name the line, field count and text of the first record unlike the header."""
    bad = first_bad_record(file, dialect(table), layout)
    if bad is not None:
        line, fields, text = bad
        raise IntakeError(
            f"{_where(mapping, table)}: {file}: line {line}: {fields} field(s) where the header "
            f"on line {layout.header_line} has {len(layout.header)}: {text[:200]!r}; quote "
            f"fields holding the delimiter {table.delimiter!r} in the ERP's export (nothing "
            f"was loaded)",
            mapping.source,
        ) from exc


def land_csv_table(
    folder: Path,
    mapping: SourceMapping,
    table: TableMapping,
    run_date: date,
    window: Window,
    lake: Location | Path,
) -> ExtractResult:
    """Land tonight's file(s) of ``table`` into the landing Parquet file (replacing it).

    Every file's records are counted apart from the parser (:mod:`csv_records`); the
    two must agree, so ``source_rows`` is the files' own count.
    """
    started = time.monotonic()
    files = find_files(folder, table, run_date)
    if not files and not table.optional:
        raise DropFileMissingError(_missing_message(folder, mapping, table, run_date))
    path = landing_path(lake, mapping.source, table.table, run_date)
    with path.scratch() as scratch:
        tmp = scratch / "part-0.parquet"
        rows = records = 0
        inputs: list[str] = []
        writer: pq.ParquetWriter | None = None
        schema: pa.Schema | None = None
        file, layout = None, None
        try:
            for file in files:
                layout = checked_layout(file, mapping, table)
                expected = _count(file, mapping, table, layout)
                records += expected
                if not layout.header:
                    log.warning(
                        "%s.%s: %s holds no header and no record (%d bytes)",
                        mapping.source,
                        table.table,
                        file,
                        file.stat().st_size,
                    )
                    inputs.append(f"{file} (empty: {file.stat().st_size} bytes, no header)")
                    continue
                names = layout.header
                # The landing remembers what it was read from, so a check of the landed
                # header (schema drift) names the export file, not only the lake.
                file_schema = pa.schema(
                    [(n, pa.string()) for n in names],
                    metadata={INPUTS_KEY: str(night_folder(folder, run_date) / (table.file or ""))},
                )
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
                inputs.append(
                    f"{file} ({expected} records)" if expected else f"{file} (header only)"
                )
                landed = 0
                if expected:
                    for batch in _batches(file, table, names, layout.data_line):
                        _check_field_bytes(batch, landed, file, mapping, table, layout)
                        writer.write_batch(batch)
                        landed += batch.num_rows
                        log.info(
                            "%s.%s: %d rows read from %s (%.1fs, %.0f rows/s)",
                            mapping.source,
                            table.table,
                            rows + landed,
                            file.name,
                            time.monotonic() - started,
                            (rows + landed) / max(time.monotonic() - started, 1e-6),
                        )
                if landed != expected:
                    raise IntakeError(
                        f"{_where(mapping, table)}: {file} holds {expected} record(s) after the "
                        f"header on line {layout.header_line}, but the CSV reader read {landed}: "
                        f"rows would be lost or invented; check the file's quoting and line breaks "
                        f"against the table's CSV options in {mapping.path.name} (nothing was loaded)",
                        mapping.source,
                    )
                rows += landed
            if writer is None:
                # Optional table without a file tonight (or only empty files): an
                # empty landing file with the mapped columns, so clean sees 0 rows.
                cols = sorted({r.source_column for r in table.columns.values() if r.source_column})
                log.info(
                    "%s.%s: no records for %s: landing 0 rows",
                    mapping.source,
                    table.table,
                    run_date,
                )
                writer = pq.ParquetWriter(
                    tmp, pa.schema([(c, pa.string()) for c in cols]), compression="zstd"
                )
            writer.close()
            writer = None
            publish_parts(path, [tmp])  # whole; replaces every part of an earlier landing
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            _raise_if_undecodable(files, mapping, table, exc)
            if file is not None and layout is not None and "straddl" in str(exc):
                _raise_if_field_too_large(file, mapping, table, layout, exc)
            if file is not None and layout is not None and layout.header:
                _raise_if_ragged(file, mapping, table, layout, exc)
            raise ValueError(
                f"source {mapping.source!r} table {table.table!r}: cannot read {file or files} as "
                f"CSV (delimiter {table.delimiter!r}, encoding {table.encoding!r}, mapping "
                f"{mapping.path.name}): {str(exc).splitlines()[0]}"
            ) from exc
        finally:
            if writer is not None:
                writer.close()
    return ExtractResult(
        mapping.source,
        table.table,
        run_date,
        window,
        rows,
        path,
        time.monotonic() - started,
        source_rows=records,
        inputs=tuple(inputs)
        or (f"{night_folder(folder, run_date) / (table.file or '')} (no file)",),
    )
