"""Messy CSV exports for the intake invariant (issue 11), shared by the fuzz test and the bench.

* :func:`exports` — a Hypothesis strategy for one night's export of the ``acme`` source's
  ``order_lines`` table: random dialect (delimiter ``, ; tab |``, quoting on or off),
  encoding (UTF-8, UTF-8 with BOM, cp1252, latin-1, or mislabelled), line endings (LF,
  CRLF, lone CR, mixed), header noise, edge numbers and dates, duplicated keys, NUL and
  control characters, empty and huge fields, ragged rows and unterminated quotes.
* :func:`oracle` — the file's records as Python's ``csv`` module (strict) reads them in
  that dialect, computed here, apart from :mod:`nightcast.sources.csv_records`.
* :class:`FuzzWorld` — a drop folder, a mapping and a warehouse (DuckDB or PostgreSQL)
  that run one night per export through the real stages (extract → clean → load) and
  return the invariant's violations: either the night stops with an error naming the
  source, table and file and nothing changed (``raw.order_lines``, the watermark), or
  loaded + quarantined == the oracle's records and every loaded value is the file's.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

if TYPE_CHECKING:
    from nightcast.warehouse.base import Warehouse

SOURCE = "acme"
TABLE = "order_lines"
FILE = "lines.csv"
COLUMNS = ("LINE", "ORDER", "DAY", "ITEM", "STORE", "QTY", "PRICE", "CUR", "STATUS", "CHANGED")
STATUS = {"S": "shipped", "R": "returned"}
NULL_TOKENS = ("", "NULL", "null", "N/A", "#N/A")
FIRST_NIGHT = date(2025, 5, 1)
RESET_ROWS = 300  # empty raw.order_lines when it grows past this (keeps snapshots cheap)

MAPPING = """
source: acme
kind: csv_folder
connection: acme_drop
pool: erp_acme
tables:
  order_lines:
    mode: {mode}
    file: lines.csv
    delimiter: {delimiter}
    encoding: {encoding}
    quote: {quote}
    escape: {escape}{refresh}
    columns:
      order_line_id: {{from: LINE, type: id}}
      order_id: {{from: ORDER, type: id, required: true}}
      order_date: {{from: DAY, type: date, required: true}}
      item_id: {{from: ITEM, type: id, required: true}}
      location_id: {{from: STORE, type: id, required: true}}
      quantity: {{from: QTY, type: float, required: true}}
      unit_price: {{from: PRICE, type: float}}
      amount: {{value: null, type: float}}
      currency: {{from: CUR}}
      status: {{from: STATUS, required: true, values: {{S: shipped, R: returned}}}}
      updated_at: {{from: CHANGED, type: timestamp, required: true}}
"""


@dataclass(frozen=True)
class Export:
    """One generated file and the dialect its mapping declares."""

    data: bytes
    delimiter: str
    quote: str | None
    encoding: str  # as declared in the mapping
    mode: str  # incremental | full
    written_as: str = ""  # the codec the bytes were really written in (for reports)
    escape: str | None = None

    def describe(self) -> str:
        return (
            f"delimiter={self.delimiter!r} quote={self.quote!r} escape={self.escape!r} "
            f"encoding={self.encoding!r} "
            f"(written as {self.written_as!r}) mode={self.mode} {len(self.data)} bytes: "
            f"{self.data[:400]!r}{'…' if len(self.data) > 400 else ''}"
        )


# --------------------------------------------------------------------------- strategy

NUMBERS = [
    "0", "1", "-1", "+3", "2", "1.5", " 7 ", "12.25", ".5", "5.", "-0", "0.0", "-0.0",
    "1e308", "1.8e308", "1e400", "-1e400", "-1.8e308", "1.7976931348623157e308",
    "1.7976931348623159e308", "-1.7976931348623157e308", "5e-324", "4.9e-324", "2e-324",
    "1e-400", "2.2250738585072014e-308", "2.225073858507201e-308", "nan", "NaN", "-nan",
    "inf", "-inf", "Infinity", "+Infinity", "1,234.5", "1,234,567", "12,34", "1 234", "--3",
    "1e", "e5", "0x10", "1_000", "1.2.3", "9007199254740993", "123456789012345678901234567890",
    "", "NULL", "N/A", "\u0661\u0662", "\uff11\uff12",
]  # fmt: skip
DATES = [
    "2024-02-29", "2023-02-29", "1900-02-29", "2000-02-29", "2100-02-29", "0001-01-01",
    "9999-12-31", "1899-12-31", "1900-01-01", "2099-12-31", "2100-01-01", "2025-13-01",
    "2025-04-31", "2025-00-10", "2025-01-00", "2025-05-01", " 2025-05-01 ", "20250501",
    "2025-5-1", "01/05/2025", "2025-05-01T00:00:00", "", "NULL", "yesterday",
]  # fmt: skip
TIMES = ["00:00:00", "23:59:59", "24:00:00", "12:30:60", "10:00", "09:00:00.123456", "T10:00:00"]
STATUSES = ["S", "R", " S ", "X", "s", "", "NULL", "shipped"]
KEYS = ["1", "2", "3", "4", "5", " 3 ", "0001", "1", "2", ""]
SPECIAL = [
    "\x00", "\x1b", "\x7f", "\x01", "\t", "\n", "\r", "\r\n", "\x85", "\u2028", "\ufeff",
    "\ufffd", " ", "é", "€", "ß", '"', "'", "\\", "😀", "\u00a0", " NULL ", "N/A", "\x1c",
]  # fmt: skip


def _alphabet(encoding: str) -> str:
    """Every character ``encoding`` can write (a sample for UTF-8)."""
    if encoding.startswith("utf-8"):
        return "".join(chr(i) for i in range(0x20, 0x250)) + "€😀\u2028\u00a0\x00\x1b\x7f"
    return bytes(range(256)).decode(encoding, errors="ignore")


def _encodable(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


@st.composite
def _text(draw: st.DrawFn, encoding: str, delimiter: str) -> str:
    kind = draw(st.integers(0, 40))
    if kind == 0:  # huge: beyond the csv module's default 128 KiB field limit
        return "x" * draw(st.integers(128 * 1024, 300 * 1024))
    if kind < 4:
        return ""
    pieces = draw(
        st.lists(
            st.one_of(
                st.text(alphabet=_alphabet(encoding), max_size=8),
                st.sampled_from([s for s in [*SPECIAL, delimiter] if _encodable(s, encoding)]),
            ),
            max_size=5,
        )
    )
    return "".join(pieces)


def _number(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return repr(draw(st.floats(allow_nan=True, allow_infinity=True)))
    if kind == 1:
        return str(draw(st.integers(-(10**20), 10**20)))
    return draw(st.sampled_from(NUMBERS))


def _date(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.dates()).isoformat()
    return draw(st.sampled_from(DATES))


def _timestamp(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.datetimes()).isoformat(sep=" ")
    day = _date(draw).strip() or "2025-05-01"
    return f"{day} {draw(st.sampled_from(TIMES))}".strip()


GOOD = {
    "LINE": "1",
    "ORDER": "1",
    "DAY": "2025-05-01",
    "ITEM": "1",
    "STORE": "10",
    "QTY": "2",
    "PRICE": "1.5",
    "CUR": "EUR",
    "STATUS": "S",
    "CHANGED": "2025-05-01 09:00:00",
}


@st.composite
def _record(draw: st.DrawFn, encoding: str, delimiter: str) -> dict[str, str]:
    """A record whose fields are each plain-valid or messy (most records have some mess)."""
    messy: dict[str, Callable[[], str]] = {
        "LINE": lambda: draw(st.sampled_from(KEYS)),
        "ORDER": lambda: draw(st.sampled_from(["1", "2", "10", "", " 2"])),
        "DAY": lambda: _date(draw),
        "ITEM": lambda: draw(st.sampled_from(["1", "2", "A-1", "", "NULL"])),
        "STORE": lambda: draw(st.sampled_from(["10", "11", "", "#N/A"])),
        "QTY": lambda: _number(draw),
        "PRICE": lambda: _number(draw),
        "CUR": lambda: draw(_text(encoding, delimiter)),
        "STATUS": lambda: draw(st.sampled_from(STATUSES)),
        "CHANGED": lambda: _timestamp(draw),
    }
    rate = draw(st.sampled_from([0, 1, 2, 5]))  # in 10: how many fields are messy
    out = {c: messy[c]() if draw(st.integers(0, 9)) < rate else GOOD[c] for c in COLUMNS}
    out = {c: v if _encodable(v, encoding) else GOOD[c] for c, v in out.items()}
    if out["LINE"] == GOOD["LINE"]:
        out["LINE"] = str(draw(st.integers(1, 12)))  # keys repeat now and then
    return out


def _field(value: str, d: tuple[str, str | None, str | None], style: str, draw: st.DrawFn) -> str:
    delimiter, quote, escape = d
    if escape:
        value = value.replace(escape, escape * 2)
    if quote is None or style == "never":
        return value
    special = any(c in value for c in (delimiter, quote, "\r", "\n"))
    if style == "always" or special or (style == "random" and draw(st.booleans())):
        return quote + value.replace(quote, (escape or quote) + quote) + quote
    return value


@st.composite
def exports(draw: st.DrawFn) -> Export:
    """One night's export of ``acme.order_lines``, messy in every way issue 11 lists."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    quote = draw(st.sampled_from(['"'] * 7 + [None]))
    escape = "\\" if quote and draw(st.integers(0, 7)) == 0 else None  # \" instead of ""
    dialect = (delimiter, quote, escape)
    written = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1"]))
    declared = "utf-8" if written.startswith("utf-8") else written
    if draw(st.integers(0, 15)) == 0:  # mislabelled: the mapping says another encoding
        declared = draw(st.sampled_from(["utf-8", "cp1252", "latin-1"]))
    mode = draw(st.sampled_from(["incremental", "incremental", "incremental", "full"]))
    style = draw(st.sampled_from(["minimal"] * 4 + ["always", "random", "never"]))
    ending = draw(st.sampled_from(["\n", "\r\n", "\r", "mixed"]))

    def eol() -> str:
        return draw(st.sampled_from(["\n", "\r\n", "\r"])) if ending == "mixed" else ending

    header = list(draw(st.permutations(COLUMNS)))
    damage = draw(st.integers(0, 30))
    if damage == 0:
        header.append(header[draw(st.integers(0, len(header) - 1))])  # a repeated name
    elif damage == 1:
        header.insert(draw(st.integers(0, len(header))), draw(st.sampled_from(["", " "])))
    elif damage == 2:
        header.remove(draw(st.sampled_from(COLUMNS)))  # a mapped column missing
    elif damage <= 5:
        header.append("EXTRA")
    noise = draw(
        st.lists(
            st.sampled_from(["", " ", "\t", "  \t ", delimiter, delimiter * 3, f" {delimiter} "]),
            max_size=3,
        )
    )
    records = draw(st.lists(_record(written, delimiter), max_size=12))
    lines = [*noise, delimiter.join(_field(h, dialect, style, draw) for h in header)]
    wreck = draw(st.integers(0, 24))  # most files are well-formed; some are broken once
    broken = draw(st.integers(0, max(len(records) - 1, 0)))
    for i, rec in enumerate(records):
        fields = [_field(rec.get(h, "x"), dialect, style, draw) for h in header]
        if i == broken and wreck == 0:
            fields.pop()  # ragged: a field short
        elif i == broken and wreck == 1:
            fields.append("extra")  # ragged: a field too many
        elif i == broken and wreck == 2:
            lines.append(" ")  # a line of spaces: a one-field record
        if draw(st.integers(0, 20)) == 0:
            lines.append("")  # an empty line among the records: no record
        lines.append(delimiter.join(fields))
    if quote and wreck == 3:
        lines.append(quote + "never closed" + eol() + "x")  # an unterminated quote
    body = "".join(line + eol() for line in lines)
    if not draw(st.booleans()):
        body = body.rstrip("\r\n")  # no line break after the last record
    if draw(st.integers(0, 30)) == 0:
        body = ""  # a 0-byte export
    data = body.encode(written)
    return Export(data, delimiter, quote, declared, mode, written, escape)


# --------------------------------------------------------------------------- oracle


@dataclass(frozen=True)
class Expected:
    """What Python's strict csv reader makes of the file under its declared dialect."""

    header: list[str] = field(default_factory=list)
    records: list[list[str]] = field(default_factory=list)
    unreadable: str | None = None  # why the file cannot be read at all (then it must be refused)


def oracle(e: Export) -> Expected:
    """Records = the non-empty rows after the header; rows without a value before it skipped."""
    codec = "utf-8-sig" if codecs.lookup(e.encoding).name == "utf-8" else e.encoding
    try:
        text = e.data.decode(codec)
    except UnicodeDecodeError as exc:
        return Expected(unreadable=f"undecodable as {e.encoding}: {exc}")
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=e.delimiter,
        quotechar=e.quote or '"',
        quoting=csv.QUOTE_MINIMAL if e.quote else csv.QUOTE_NONE,
        escapechar=e.escape,
        doublequote=e.escape is None,
        strict=True,
    )
    old = csv.field_size_limit(sys.maxsize)
    try:
        rows = [row for row in reader if row]
    except csv.Error as exc:
        return Expected(unreadable=f"csv (strict): line {reader.line_num}: {exc}")
    finally:
        csv.field_size_limit(old)
    while rows and all(not f.strip() for f in rows[0]):
        rows.pop(0)
    if not rows:
        return Expected()
    return Expected(rows[0], rows[1:])


_PLAIN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _text_value(raw: str) -> str | None:
    t = raw.strip()
    return None if t in NULL_TOKENS else t


def _number_value(raw: str) -> float | str | None:
    t = raw.strip()
    if t in NULL_TOKENS:
        return None
    if _PLAIN.fullmatch(t):
        return float(t)
    if _GROUPED.fullmatch(t):
        return float(t.replace(",", ""))
    return f"<not a number: {t!r}>"


def _same_number(loaded: Any, expected: float | str | None) -> bool:
    if expected is None or loaded is None:
        return loaded is None and expected is None
    if isinstance(expected, str) or math.isinf(expected) or math.isnan(expected):
        return False  # a value the file does not hold as a finite number was loaded
    # The same double, sign of zero included ("-0" is -0.0, as float() reads it).
    return float(loaded) == expected and math.copysign(1, float(loaded)) == math.copysign(
        1, expected
    )


_LOOSE_ISO = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?"
)


def _iso_timestamp(raw: str) -> datetime | None:
    """An ISO 8601 date or time of day as written (a date column keeps the date of it,
    as the cleaner documents); unpadded ``2025-5-1`` is read as pandas' ISO parser does."""
    t = raw.strip()
    try:
        value = datetime.fromisoformat(t)
    except ValueError:
        m = _LOOSE_ISO.fullmatch(t)
        if not m:
            return None
        y, mo, d, h, mi, sec, frac = m.groups()
        try:
            return datetime(
                int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(sec or 0),
                int((frac or "0").ljust(6, "0")),
            )  # fmt: skip
        except ValueError:
            return None
    return value if value.tzinfo is None else None


def _expected_row(rec: dict[str, str]) -> dict[str, Any]:
    """The loaded row a file record must become (only for records that load)."""
    out: dict[str, Any] = {}
    for col, key in (("order_id", "ORDER"), ("item_id", "ITEM"), ("location_id", "STORE")):
        out[col] = f"{SOURCE}:{rec[key].strip()}"
    stamp = _iso_timestamp(rec["DAY"])
    out["order_date"] = stamp.date() if stamp else f"<not a date: {rec['DAY']!r}>"
    out["updated_at"] = _iso_timestamp(rec["CHANGED"]) or f"<not a timestamp: {rec['CHANGED']!r}>"
    out["currency"] = _text_value(rec["CUR"])
    out["status"] = STATUS.get(rec["STATUS"].strip(), f"<unknown {rec['STATUS']!r}>")
    return out


def _row_problems(loaded: dict[str, Any], rec: dict[str, str]) -> list[str]:
    want = _expected_row(rec)
    problems = [
        f"{c}: loaded {loaded[c]!r}, file has {v!r}"
        for c, v in want.items()
        if _norm(loaded[c]) != _norm(v)
    ]
    for col, key in (("quantity", "QTY"), ("unit_price", "PRICE")):
        if not _same_number(loaded[col], _number_value(rec[key])):
            problems.append(f"{col}: loaded {loaded[col]!r}, file has {rec[key]!r}")
    return problems


def _norm(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.replace(tzinfo=None)
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


# --------------------------------------------------------------------------- the nights


@dataclass
class Tally:
    files: int = 0
    records: int = 0
    loaded: int = 0
    quarantined: int = 0
    refused: int = 0
    violations: list[str] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


class FuzzWorld:
    """One drop folder + mapping + warehouse; :meth:`night` runs one export through it.

    Sets the process environment (the stages read their settings from it); a test's
    conftest restores it afterwards.
    """

    def __init__(self, root: Path, warehouse_url: str | None = None) -> None:
        from nightcast.config import get_settings
        from nightcast.warehouse.base import open_warehouse

        self.drop = root / "drop"
        self.sources = root / "sources"
        data = root / "data"
        for d in (self.drop, self.sources, data):
            d.mkdir(parents=True, exist_ok=True)
        os.environ["NIGHTCAST_DATA_DIR"] = str(data)
        os.environ["NIGHTCAST_WAREHOUSE_PATH"] = str(data / "wh.duckdb")
        os.environ.pop("NIGHTCAST_LAKE_URL", None)
        if warehouse_url:
            os.environ["NIGHTCAST_WAREHOUSE_URL"] = warehouse_url
        else:
            os.environ.pop("NIGHTCAST_WAREHOUSE_URL", None)
        os.environ["NIGHTCAST_SOURCES_DIR"] = str(self.sources)
        os.environ["AIRFLOW_CONN_ACME_DROP"] = json.dumps(
            {"conn_type": "fs", "extra": {"path": str(self.drop)}}
        )
        self.settings = get_settings()
        self.day = FIRST_NIGHT
        self.tally = Tally()
        self._stack = ExitStack()
        self.wh = self._stack.enter_context(open_warehouse(self.settings.warehouse_url))

    def close(self) -> None:
        self._stack.close()

    @contextmanager
    def _shared(self, settings: Any) -> Iterator[Warehouse]:
        yield self.wh

    # -- helpers
    def _fetch(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.wh.fetchall(sql, params or [])

    def _snapshot(self) -> tuple[Any, ...]:
        rows = self._fetch(f"select * from raw.{TABLE} order by order_line_id")
        marks = self._fetch(
            "select * from ops.watermarks where source = ? and table_name = ?", [SOURCE, TABLE]
        )
        return (rows, marks)

    def _write(self, e: Export) -> Path:
        refresh = "\n    max_shrink: 1" if e.mode == "full" else ""
        (self.sources / "acme.yaml").write_text(
            MAPPING.format(
                mode=e.mode,
                delimiter=json.dumps(e.delimiter),
                encoding=json.dumps(e.encoding),
                quote=json.dumps(e.quote) if e.quote else "false",
                escape=json.dumps(e.escape) if e.escape else "false",
                refresh=refresh,
            )
        )
        night = self.drop / self.day.isoformat()
        night.mkdir(parents=True, exist_ok=True)
        path = night / FILE
        path.write_bytes(e.data)
        return path

    def _run_stages(self) -> None:
        """The stage functions the DAG tasks call, on one shared warehouse connection
        (opening one per step costs more than the night's work; the transactions are
        the stages' own)."""
        from unittest import mock

        from nightcast.pipeline import stages
        from nightcast.sources.mapping import load_mapping

        mapping = load_mapping(self.sources / "acme.yaml")  # parsed once a night, not per stage
        with (
            mock.patch.object(stages, "warehouse", self._shared),
            mock.patch.object(stages, "get_mapping", lambda settings, source: mapping),
        ):
            self._run_stages_now(stages)

    def _run_stages_now(self, stages: Any) -> None:
        stages.extract(self.settings, SOURCE, self.day)
        cleaned = [stages.clean(self.settings, SOURCE, self.day)]
        stages.load(self.settings, self.day, cleaned)

    # -- one night
    def night(self, e: Export) -> list[str]:
        """Run ``e`` as tonight's export; returns the invariant's violations (none: [])."""
        self.day += timedelta(days=1)
        if self.tally.files and self.tally.files % 25 == 0:
            n = self._fetch(f"select count(*) from raw.{TABLE}")[0][0]
            if n > RESET_ROWS:
                self._fetch(f"delete from raw.{TABLE}")
        path = self._write(e)
        want = oracle(e)
        before = self._snapshot()
        self.tally.files += 1
        error: Exception | None = None
        try:
            self._run_stages()
        except Exception as exc:
            error = exc
        problems = (
            self._judge_refusal(error, before, path)
            if error is not None
            else self._judge_night(want)
        )
        self._forget_night()
        if problems:
            head = f"night {self.day} ({e.describe()}): "
            self.tally.violations.extend(head + p for p in problems)
        return problems

    def _forget_night(self) -> None:
        """Drop tonight's export and lake files (thousands of nights fit on any disk)."""
        shutil.rmtree(self.drop / self.day.isoformat(), ignore_errors=True)
        for folder in self.settings.lake.local_path().glob(f"**/date={self.day.isoformat()}"):
            shutil.rmtree(folder, ignore_errors=True)

    def _judge_refusal(self, error: Exception, before: tuple[Any, ...], path: Path) -> list[str]:
        self.tally.refused += 1
        message = str(error)
        kind = type(error).__name__
        self.tally.refusals[kind] = self.tally.refusals.get(kind, 0) + 1
        self.tally.messages.append(message)
        problems = []
        missing = [p for p in (repr(SOURCE), repr(TABLE), path.name) if p not in message]
        if missing:
            problems.append(f"refused with an error not naming {missing}: {kind}: {message[:500]}")
        if self._snapshot() != before:
            problems.append(f"refused ({kind}: {message[:200]}) but raw/watermark changed")
        return problems

    def _judge_night(self, want: Expected) -> list[str]:
        if want.unreadable:
            return [f"loaded a file the strict csv reader cannot read: {want.unreadable}"]
        wh = self.wh
        names = wh.columns(f"raw.{TABLE}")
        rows = wh.fetchall(
            f"select * from raw.{TABLE} where source = ? and _run_date = ?", [SOURCE, self.day]
        )
        loaded = [dict(zip(names, r, strict=True)) for r in rows]
        q = wh.fetchall(
            "select row_number, reason from ops.quarantine where run_date = ? and source = ? "
            "and table_name = ?",
            [self.day, SOURCE, TABLE],
        )
        quarantined = len({r[0] for r in q})
        self.tally.records += len(want.records)
        self.tally.loaded += len(loaded)
        self.tally.quarantined += quarantined
        problems = []
        if len(loaded) + quarantined != len(want.records):
            problems.append(
                f"{len(want.records)} record(s) in the file, {len(loaded)} loaded + "
                f"{quarantined} quarantined"
            )
        if any(not r[1] for r in q):
            problems.append("a quarantined row without a reason")
        by_key: dict[str, list[dict[str, str]]] = {}
        for row in want.records:
            rec = dict(zip(want.header, row, strict=False))
            by_key.setdefault(f"{SOURCE}:{rec.get('LINE', '').strip()}", []).append(rec)
        for got in loaded:
            candidates = by_key.get(got["order_line_id"], [])
            if not candidates:
                problems.append(f"loaded key {got['order_line_id']!r} is not in the file")
                continue
            found = [_row_problems(got, rec) for rec in candidates]
            if all(found):
                problems.append(f"key {got['order_line_id']!r} changed: {found[-1]}")
        return problems
