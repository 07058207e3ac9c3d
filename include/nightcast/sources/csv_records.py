"""The records of a CSV export as its dialect defines them, counted apart from the lander.

The night's books start at the file, not at what a parser made of it: the lander
(:mod:`nightcast.sources.csv_folder`, ``pyarrow.csv``) and this count must agree on
every file, or the night stops naming the file. The dialect is the table's
``delimiter``, ``quote``, ``escape`` and ``encoding``:

* a record ends at a line break (LF, CRLF or a lone CR) outside quotes; a line break
  inside a quoted field belongs to the value;
* a quote opens a quoted field only at the start of a field (elsewhere it is a
  literal character); inside one, a doubled quote (or ``escape`` + quote) is a quote;
  a closing quote must be followed by the delimiter, a line break or the end of the
  file, and a quoted field must be closed before the file ends: otherwise the file is
  rejected naming the line, since a parser would silently glue the text together;
* an empty line (nothing between two line breaks) holds no field and is not a record
  (it is counted as a blank line); a line of spaces is a record like any other.

Header noise: rows without a value before the header (empty lines, whitespace, or
only delimiters, as spreadsheets export empty rows) are skipped and counted; the
first row with a value is the header. Its names must be unique and not blank.

Counting is vectorised over the raw bytes (numpy) for the usual exports: a
byte-safe encoding (UTF-8, single-byte code pages) without an escape character,
whose quotes all sit where the dialect allows them. Anything else, and any file
the fast path cannot decide, is counted exactly by Python's ``csv`` module (strict).
"""

from __future__ import annotations

import codecs
import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO

import numpy as np

BLOCK_BYTES = 8 << 20
HEADER_SEARCH_ROWS = 20  # rows searched for the real header behind non-blank noise


@dataclass(frozen=True)
class Dialect:
    """How one table's export file is written (from its mapping)."""

    delimiter: str = ","
    quote: str | None = '"'
    escape: str | None = None
    encoding: str = "utf-8"


class CsvRecordError(ValueError):
    """The file breaks its dialect at ``line`` (1-based, as an editor counts lines)."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(f"{path}: line {line}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class Layout:
    """Where the header and the data of one file are.

    ``header`` is empty for a file without any valued row (0 bytes or only blank
    lines). ``data_line`` is the number of physical lines up to and including the
    header (what to skip before the data); ``skipped_rows`` the valueless rows before
    the header that are records (whitespace, delimiters), ``skipped_lines`` every line
    skipped before the header (empty ones included).
    """

    header: list[str]
    header_line: int
    data_line: int
    skipped_rows: int
    skipped_lines: int


@dataclass(frozen=True)
class Counts:
    """Records and blank (empty) lines of a whole file, header and noise included."""

    records: int
    blank_lines: int


def is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def text_encoding(encoding: str) -> str:
    """The codec to read text with: a UTF-8 byte-order mark is not part of the data."""
    return "utf-8-sig" if is_utf8(encoding) else encoding


@contextmanager
def _no_field_limit() -> Iterator[None]:
    # The csv module caps fields at 128 KiB by default; an export's field is what it is.
    old = csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _reader(fh: TextIO, d: Dialect) -> Any:
    return csv.reader(
        fh,
        delimiter=d.delimiter,
        quotechar=d.quote or '"',
        escapechar=d.escape,
        doublequote=d.escape is None,
        quoting=csv.QUOTE_MINIMAL if d.quote else csv.QUOTE_NONE,
        strict=True,
    )


def _problem(exc: csv.Error) -> str:
    text = str(exc)
    if "unexpected end of data" in text:
        return "a quoted field is never closed (the file ends inside quotes)"
    if "expected after" in text:
        return f"text after a closing quote ({text}); quote the whole field or double the quote"
    return text


def read_layout(path: Path, d: Dialect) -> Layout:
    """Find the header: the first row with a value; valueless rows before it are skipped."""
    skipped_rows = 0
    blank = 0
    with _no_field_limit(), path.open("r", encoding=text_encoding(d.encoding), newline="") as fh:
        reader = _reader(fh, d)
        try:
            for row in reader:
                if not row:
                    blank += 1
                elif all(not f.strip() for f in row):
                    skipped_rows += 1
                else:
                    return Layout(
                        row,
                        reader.line_num - row_lines(row) + 1,
                        reader.line_num,
                        skipped_rows,
                        blank + skipped_rows,
                    )
        except csv.Error as exc:
            raise CsvRecordError(path, reader.line_num, _problem(exc)) from exc
    return Layout([], 0, 0, skipped_rows, blank + skipped_rows)


def row_lines(row: list[str]) -> int:
    """Physical lines one record spans (its quoted line breaks + 1)."""
    return 1 + sum(f.count("\n") + f.count("\r") - f.count("\r\n") for f in row)


def header_problem(names: list[str]) -> str | None:
    """Why a header cannot name the columns (a blank or repeated name), or None."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if not name.strip():
            return f"column {i} of the header has no name ({name!r})"
        if name in seen:
            return (
                f"column name {name!r} appears twice in the header (columns {seen[name]} and {i})"
            )
        seen[name] = i
    return None


def find_header(path: Path, d: Dialect, wanted: set[str], after: Layout) -> int | None:
    """The line of a later row holding every ``wanted`` name (header noise above it), or None."""
    with _no_field_limit(), path.open("r", encoding=text_encoding(d.encoding), newline="") as fh:
        reader = _reader(fh, d)
        try:
            for n, row in enumerate(reader):
                if n >= HEADER_SEARCH_ROWS:
                    break
                if reader.line_num > after.data_line and wanted <= set(row):
                    return reader.line_num - row_lines(row) + 1
        except csv.Error:
            return None
    return None


def count_records(path: Path, d: Dialect) -> Counts:
    """Every record and blank line of the file (fast when it can, exact otherwise)."""
    fast = _count_fast(path, d)
    return fast if fast is not None else _count_exact(path, d)


def _count_exact(path: Path, d: Dialect) -> Counts:
    records = blank = 0
    with _no_field_limit(), path.open("r", encoding=text_encoding(d.encoding), newline="") as fh:
        reader = _reader(fh, d)
        try:
            for row in reader:
                if row:
                    records += 1
                else:
                    blank += 1
        except csv.Error as exc:
            raise CsvRecordError(path, reader.line_num, _problem(exc)) from exc
    return Counts(records, blank)


def first_bad_record(path: Path, d: Dialect, layout: Layout) -> tuple[int, int, str] | None:
    """(line, fields, text) of the first data record whose field count differs from the header."""
    width = len(layout.header)
    with _no_field_limit(), path.open("r", encoding=text_encoding(d.encoding), newline="") as fh:
        reader = _reader(fh, d)
        try:
            for row in reader:
                if reader.line_num <= layout.data_line or not row:
                    continue
                if len(row) != width:
                    line = reader.line_num - row_lines(row) + 1
                    return line, len(row), d.delimiter.join(row)
        except csv.Error as exc:
            raise CsvRecordError(path, reader.line_num, _problem(exc)) from exc
    return None


@lru_cache(maxsize=64)
def _byte_codes(d: Dialect) -> tuple[int, int, int, int] | None:
    """(LF, CR, delimiter, quote) as single bytes when the file can be scanned as bytes."""
    if d.escape is not None:
        return None
    enc = d.encoding
    if not is_utf8(enc):
        decoder = codecs.getincrementaldecoder(enc)(errors="replace")
        if not all(len(decoder.decode(bytes([i]))) == 1 for i in range(256)):
            return None  # multi-byte (UTF-16, Shift-JIS...): a byte is not a character
    try:
        codes = [c.encode(enc) for c in ("\n", "\r", d.delimiter, d.quote or "\n")]
    except UnicodeEncodeError:
        return None
    if any(len(c) != 1 for c in codes) or (is_utf8(enc) and any(c[0] >= 0x80 for c in codes)):
        return None
    lf, cr, delim, quote = (c[0] for c in codes)
    return lf, cr, delim, (quote if d.quote else -1)


class _Scan:
    """State carried from one block to the next."""

    def __init__(self) -> None:
        self.inside = 0  # 1 while inside a quoted field
        self.prev = -1  # the byte before this block (-1: start of file)
        self.pending = 0  # bytes since the last record end
        self.records = 0
        self.blank = 0


def _blocks(path: Path, stops: tuple[int, ...], bom: bool) -> Iterator[np.ndarray]:
    """The file in blocks that never end on a byte in ``stops`` (but at the end of file)."""
    with path.open("rb") as fh:
        data = fh.read(max(BLOCK_BYTES, len(codecs.BOM_UTF8)))
        if bom and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :] or fh.read(BLOCK_BYTES)
        while data:
            while data[-1] in stops:
                more = fh.read(1)
                if not more:
                    break
                data += more
            yield np.frombuffer(data, dtype=np.uint8)
            data = fh.read(BLOCK_BYTES)


def _count_fast(path: Path, d: Dialect) -> Counts | None:
    """Counts from a vectorised scan, or None where only the exact reader can tell."""
    codes = _byte_codes(d)
    if codes is None:
        return None
    lf, cr, delim, quote = codes
    s = _Scan()
    stops = (cr, quote) if quote >= 0 else (cr,)
    for b in _blocks(path, stops, is_utf8(d.encoding)):
        if not _scan_block(b, s, lf, cr, delim, quote):
            return None
    if s.inside:
        return None  # an unclosed quote: the exact reader names the line
    return Counts(s.records + (1 if s.pending else 0), s.blank)


def _scan_block(b: np.ndarray, s: _Scan, lf: int, cr: int, delim: int, quote: int) -> bool:
    """Count the records ending in ``b``; False when a quote is where the dialect forbids it."""
    n = len(b)
    crs = np.flatnonzero(b == cr)
    # A CR followed by LF is part of a CRLF; blocks never end on a CR (but at the end of file).
    lone = crs[(crs + 1 >= n) | (b[np.minimum(crs + 1, n - 1)] != lf)]
    ends = np.flatnonzero(b == lf)
    if len(lone):
        ends = np.sort(np.concatenate((ends, lone)))
    if quote >= 0:
        qs = np.flatnonzero(b == quote)
        if len(qs) or s.inside:
            opening = (s.inside + np.arange(len(qs))) % 2 == 0
            before = np.where(qs > 0, b[np.maximum(qs - 1, 0)].astype(np.int16), s.prev)
            ok_open = (before == delim) | (before == lf) | (before == cr) | (before == quote)
            ok_open |= before == -1
            after = b[np.minimum(qs + 1, n - 1)]
            ok_close = (after == delim) | (after == lf) | (after == cr) | (after == quote)
            ok_close |= qs + 1 >= n  # the end of the file (blocks never end on a quote)
            if len(qs) and not np.all(np.where(opening, ok_open, ok_close)):
                return False
            outside = (s.inside + np.searchsorted(qs, ends)) % 2 == 0
            ends = ends[outside]
            s.inside = (s.inside + len(qs)) % 2
    if len(ends):
        crlf = (b[ends] == lf) & (ends >= 1) & (b[np.maximum(ends - 1, 0)] == cr)
        starts = np.concatenate(([-1 - s.pending], ends[:-1]))
        content = ends - starts - 1 - crlf
        blank = int(np.count_nonzero(content == 0))
        s.blank += blank
        s.records += len(ends) - blank
        s.pending = n - 1 - int(ends[-1])
    else:
        s.pending += n
    s.prev = int(b[-1])
    return True
