"""File-like adapters between the ERP clients' output and pyarrow's streaming CSV reader.

:class:`CopyReader` turns psycopg's COPY blocks into a readable file;
:class:`EscapeCR` and :func:`mysql_unescape` make the MySQL/MariaDB client's batch
output (tab-separated, backslash-escaped) parse one row per line and restore the
escaped values (see :mod:`nightcast.sources.bulk`). :func:`cx_unsupported` and
:func:`render_like_client` turn connectorx's typed Arrow batches into the very strings
the client prints, so both MySQL/MariaDB paths land the same values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

_MYSQL_ESCAPES = {"t": "\t", "n": "\n", "0": "\0", "\\": "\\", "r": "\r", "b": "\b", "Z": "\x1a"}
_MYSQL_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


class CopyReader:
    """A read-only file over psycopg's COPY blocks (one row each)."""

    def __init__(self, blocks: Iterator[Any]) -> None:
        self._blocks = blocks
        self._buf = bytearray()
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            block = next(self._blocks, None)
            if block is None:
                break
            self._buf += block
        n = len(self._buf) if size < 0 else min(size, len(self._buf))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def mysql_unescape(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Undo the client's batch-mode escaping in the (rare) values that hold a backslash."""
    arrays = []
    for col in batch.columns:
        mask = pc.match_substring(col, "\\")
        if pc.any(mask).as_py():
            fixed = [
                _MYSQL_ESCAPE.sub(lambda m: _MYSQL_ESCAPES.get(m[1], m[1]), v)
                if v is not None and "\\" in v
                else v
                for v in col.to_pylist()
            ]
            col = pa.array(fixed, type=pa.string())
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


class EscapeCR:
    """The client escapes tab, newline and backslash but not CR, which pyarrow reads as a
    line end: turn each raw CR into the escape ``\\r`` (unambiguous, since a literal
    backslash arrives doubled) so :func:`mysql_unescape` restores it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._buf = b""
        self.closed = False
        # Set before the parser sees the first escaped value: until then no batch needs
        # unescaping, which spares scanning every column of every batch (a third of the CPU).
        self.escaped = False

    def read(self, size: int = -1) -> bytes:
        if len(self._buf) < max(size, 1):
            chunk = self._raw.read(size if size > 0 else -1)
            if b"\r" in chunk:
                chunk = chunk.replace(b"\r", b"\\r")
            self.escaped = self.escaped or b"\\" in chunk
            self._buf += chunk
        n = len(self._buf) if size < 0 else size
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


# --- connectorx batches rendered as the MySQL/MariaDB client prints them --------------------

NOT_FIXED_DEC = 31  # the server's "no fixed decimals" scale (DOUBLE, FLOAT without (M,D))
MAX_CX_DECIMAL_SCALE = 10  # connectorx reads every DECIMAL as decimal128(38, 10)
_INTS = {1, 2, 3, 8, 9}  # TINY, SHORT, LONG, LONGLONG, INT24 (pymysql FIELD_TYPE codes)
_YEAR, _DOUBLE, _DECIMALS, _DATES, _DATETIMES = 13, 5, {0, 246}, {10, 14}, {7, 12}
# VARCHAR, BIT, JSON, ENUM, SET, the BLOB/TEXT family, VAR_STRING, STRING
_TEXTS = {15, 16, 245, 247, 248, 249, 250, 251, 252, 253, 254}
_NULL = pa.scalar(None, pa.string())


def cx_unsupported(description: Sequence[Sequence[Any]]) -> str | None:
    """Why connectorx cannot land this result exactly as the client prints it, or None.

    ``description`` is the DB-API cursor description of the query (name, type code, ...,
    scale at index 5). FLOAT prints 6 digits, TIME may be negative or over 24 hours,
    DOUBLE(M,D) prints D fixed digits, and DECIMAL scales over 10 would be truncated.
    """
    for d in description:
        code, scale = d[1], d[5]
        if code in _DECIMALS and scale > MAX_CX_DECIMAL_SCALE:
            return f"column {d[0]!r} is DECIMAL with scale {scale} > {MAX_CX_DECIMAL_SCALE}"
        if code == _DOUBLE and scale != NOT_FIXED_DEC:
            return f"column {d[0]!r} is DOUBLE with {scale} fixed decimals"
        known = code in _INTS or code in _TEXTS or code in _DATES or code in _DATETIMES
        if not (known or code in _DECIMALS or code in (_YEAR, _DOUBLE)):
            return f"column {d[0]!r} has MySQL field type {code} (FLOAT, TIME, ...)"
    return None


def mariadb_double(x: float) -> str:
    """A DOUBLE as the server's text protocol writes it (``my_gcvt``, shortest digits):
    fixed notation for decimal exponents -14..15 (or when the digits reach past the
    point), else ``1.5e20``/``1e-20``; ``-0`` prints as ``0``."""
    if x == 0:
        return "0"
    t = Decimal(repr(abs(x))).as_tuple()
    raw = "".join(map(str, t.digits))
    digits = raw.rstrip("0")
    point = len(raw) + int(t.exponent)  # digits before the decimal point
    n = len(digits)
    sign = "-" if x < 0 else ""
    if point >= -14 and (point <= 15 or n > point):
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point < n:
            return f"{sign}{digits[:point]}.{digits[point:]}"
        return f"{sign}{digits}{'0' * (point - n)}"
    return f"{sign}{digits[0]}{'.' + digits[1:] if n > 1 else ''}e{point - 1}"


def _double(col: pa.Array) -> pa.Array:
    text = col.cast(pa.string())
    # Arrow's shortest digits match the server's; only its exponent form and "-0" differ.
    odd = pc.or_(pc.match_substring(text, "e"), pc.equal(text, "-0"))
    if not pc.any(odd).as_py():
        return text
    values = [
        mariadb_double(x) if x is not None and bad else s
        for x, s, bad in zip(col.to_pylist(), text.to_pylist(), odd.to_pylist(), strict=True)
    ]
    return pa.array(values, type=pa.string())


def _decimal(col: pa.Array, scale: int) -> pa.Array:
    text = col.cast(pa.string())
    # Arrow writes magnitudes under 1e-6 as "1E-9"/"0E-10"; the server writes all digits.
    odd = pc.match_substring(text, "E")
    if not pc.any(odd).as_py():
        return text
    values = [
        format(x, f".{scale}f") if bad else s
        for x, s, bad in zip(col.to_pylist(), text.to_pylist(), odd.to_pylist(), strict=True)
    ]
    return pa.array(values, type=pa.string())


def _render(col: pa.Array, code: int, scale: int) -> pa.Array:
    if code in _DECIMALS:
        return _decimal(col.cast(pa.decimal128(38, scale)), scale)
    if code == _DOUBLE:
        return _double(col)
    text = col.cast(pa.string())
    if code == _YEAR:
        return pc.utf8_lpad(text, width=4, padding="0")
    if code in _DATETIMES:  # Arrow prints microseconds; the client prints the declared digits
        return pc.utf8_slice_codeunits(text, 0, 19 + (scale + 1 if scale else 0))
    if code in _TEXTS:  # the client path lands the text 'NULL' as null (bulk module docs)
        return pc.if_else(pc.equal(text, "NULL"), _NULL, text)
    return text


def render_like_client(
    batch: pa.RecordBatch, description: Sequence[Sequence[Any]], schema: pa.Schema
) -> pa.RecordBatch:
    """One connectorx batch (one row per row of the result) as all-string columns holding
    exactly what ``mariadb --batch`` prints, NULL as null."""
    arrays = [_render(col, d[1], d[5]) for col, d in zip(batch.columns, description, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def has_connectorx() -> bool:
    import importlib.util

    return importlib.util.find_spec("connectorx") is not None


def connectorx_batches(
    url: sa.URL, text: str, description: Sequence[Sequence[Any]], batch_rows: int = 131_072
) -> Iterator[pa.RecordBatch]:
    """``text``'s rows read by connectorx from the MySQL/MariaDB server at ``url``, in
    all-string batches of up to ``batch_rows`` rows (see :func:`render_like_client`)."""
    import connectorx as cx

    conn = sa.URL.create(
        "mysql",
        username=url.username,
        password=url.password,
        host=url.host or "localhost",
        port=url.port or 3306,
        database=url.database,
    ).render_as_string(hide_password=False)
    schema = pa.schema([(d[0], pa.string()) for d in description])
    reader = cx.read_sql(conn, text, return_type="arrow_stream", batch_size=batch_rows)
    for batch in reader:
        yield render_like_client(batch, description, schema)
