"""Strict, vectorised parsers for landed text columns.

Every parser takes a pandas string Series (already trimmed, null tokens already
``<NA>``) and returns ``(values, reasons)``: parsed values, and per row either
``None`` (parsed, or missing) or a short reason code. Parsers never raise on bad
data and never guess per row: the conventions come from the source's mapping.

Reason codes (also the ``reason`` column of ``ops.quarantine``):

=========================  ===================================================================
``not_a_number``           not a number in the column's convention (``abc``, ``2,50`` with
                           decimal ``.``, ``inf``, unbalanced ``(12.00``, two signs)
``ambiguous_number``       a well-formed number of the *other* convention (``1,234.56`` in a
                           decimal-comma source): a mixed or misconfigured export, not guessed
``number_out_of_range``    a well-formed number a double cannot hold (``1e400``, ``-1e400``,
                           ``1.8e308``: it would become infinite), or an ``int`` beyond
                           ±(2**53 - 1), where a double stops holding every whole number
``not_an_integer``         an ``int`` column holding a fraction
``unparseable_date``       matches none of the column's date formats (nor an Excel serial)
``unparseable_timestamp``  the same for a timestamp column
``date_out_of_range``      a real date outside 1900-01-01 .. 2099-12-31 (``0001-01-01`` or
                           ``9999-12-31`` sentinels: declare them as null tokens if intended)
``invalid_local_time``     a wall-clock time that does not exist or is ambiguous in the
                           source time zone (DST change)
``bad_encoding``           the value holds U+FFFD: bytes were undecodable upstream
``control_character``      the value holds a control character (NUL, ESC, DEL, C1...; tab
                           and line breaks are text): PostgreSQL cannot store NUL, and
                           the others are export debris, not data
``missing_required``       a required column is empty / a null token (set by the cleaner)
``unknown_value``          not in the column's ``values`` code list (set by the cleaner)
``duplicate_key_superseded`` an older version of a natural key in the same batch
=========================  ===================================================================
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

Parsed = tuple[pd.Series, pd.Series]

# Every Unicode currency symbol (category Sc): $, €, £, ¥, ₹, ₽, ...
_SC = "".join(
    re.escape(chr(i)) for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i)) == "Sc"
)
_CUR = rf"(?:[{_SC}]|[A-Z]{{3}})"  # a symbol or an ISO 4217-looking code (EUR, USD)
_SPACES = "\u0020\u00a0\u202f"  # space, no-break space, narrow no-break space (fr-FR exports)
THOUSANDS = (",", ".", " ", "'", "")
DECIMALS = (".", ",")
DATE_MIN = pd.Timestamp("1900-01-01")
DATE_MAX = pd.Timestamp("2100-01-01")  # exclusive
EXCEL_EPOCH = pd.Timestamp("1899-12-30")  # serial 1 = 1900-01-01 in Excel's (leap-bugged) count
ISO = "ISO8601"
# A trailing UTC offset after a time of day; a date-only ``05-03-2024`` must not read as -20:24.
_OFFSET = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$")


def _empty_reasons(index: pd.Index) -> pd.Series:
    return pd.Series(None, index=index, dtype="object")


def _body_pattern(decimal: str, thousands: str) -> str:
    d = re.escape(decimal)
    grouped = ""
    if thousands:
        t = f"[{_SPACES}]" if thousands == " " else re.escape(thousands)
        grouped = rf"\d{{1,3}}(?:{t}\d{{3}})+(?:{d}\d+)?|"
    return rf"^(?:{grouped}\d+(?:{d}\d+)?(?:[eE][+-]?\d+)?|{d}\d+)$"


_PLAIN = {".": r"[+-]?[0-9]+(?:\.[0-9]+)?", ",": r"[+-]?[0-9]+"}


def parse_number(
    s: pd.Series, decimal: str = ".", thousands: str = ",", currency: bool = False
) -> Parsed:
    """Numbers in one declared convention, e.g. ``1,234.56`` / ``1.234,56`` / ``1 234,56``.

    Accepts a leading ``+``/``-``, a trailing minus (``12.00-``), accounting
    parentheses (``(12.00)``) and, with ``currency``, one currency symbol or
    three-letter code before or after the amount. Exactly one sign marker.
    """
    if decimal not in DECIMALS or thousands not in THOUSANDS or thousands == decimal:
        raise ValueError(
            f"unsupported number convention decimal={decimal!r} thousands={thousands!r}"
        )
    reasons = _empty_reasons(s.index)
    values = pd.Series(float("nan"), index=s.index, dtype="float64")
    text = s.astype("string")
    present = text.notna()
    if not present.any():
        return values, reasons
    # Fast path: most ERP values are plain ("12", "-3.5"); only the rest need the full grammar.
    plain = present & text.str.fullmatch(_PLAIN[decimal]).fillna(False)
    if plain.any():
        numbers = pd.to_numeric(text[plain], errors="coerce").astype("float64")
        # "-0" reads as the integer 0: keep the sign a double has for it (float("-0") is -0.0).
        numbers = numbers.mask((numbers == 0) & text[plain].str.startswith("-"), -0.0)
        values[plain] = numbers
        present = present & ~plain
        if not present.any():
            return _finite(values, reasons)
    cur = f"{_CUR}?" if currency else ""
    shape = re.compile(
        rf"^(\()?\s*([+-])?\s*{cur}\s*([+-])?\s*([0-9.,'{_SPACES}]*?[0-9](?:[eE][+-]?[0-9]+)?)"
        rf"\s*{cur}\s*(-)?\s*(\))?$"
    )
    sub = text[present]
    parts = sub.str.extract(shape)
    body = parts[3]
    opened, closed = parts[0].notna(), parts[5].notna()
    signs = parts[1].notna().astype(int) + parts[2].notna().astype(int) + parts[4].notna()
    signs = signs + opened.astype(int)
    ok_shape = body.notna() & (opened == closed) & (signs <= 1)
    good = ok_shape & body.str.fullmatch(_body_pattern(decimal, thousands)).fillna(False)
    other = "," if decimal == "." else "."
    swapped = body.str.fullmatch(_body_pattern(other, decimal)).fillna(False)
    both = body.str.contains(",", regex=False).fillna(False) & body.str.contains(
        ".", regex=False
    ).fillna(False)
    ambiguous = ok_shape & ~good & swapped & both

    strip = f"[{_SPACES}]" if thousands == " " else re.escape(thousands) if thousands else None
    digits = body[good]
    if strip:
        digits = digits.str.replace(strip, "", regex=True)
    if decimal != ".":
        digits = digits.str.replace(decimal, ".", regex=False)
    numbers = pd.to_numeric(digits, errors="coerce").astype("float64")
    negative = (
        (parts[1] == "-").fillna(False)
        | (parts[2] == "-").fillna(False)
        | parts[4].notna()
        | opened
    )[good]
    numbers = numbers.where(~negative, -numbers)
    values.loc[numbers.index] = numbers
    bad_idx = sub.index[~good.to_numpy()]
    reasons.loc[bad_idx] = "not_a_number"
    reasons.loc[sub.index[ambiguous.to_numpy()]] = "ambiguous_number"
    return _finite(values, reasons)


def _finite(values: pd.Series, reasons: pd.Series) -> Parsed:
    """Overflowing numbers are not infinity: quarantined as ``number_out_of_range``."""
    overflow = np.isinf(values.to_numpy(dtype="float64", na_value=np.nan))
    if overflow.any():
        reasons = reasons.mask(overflow & reasons.isna().to_numpy(), "number_out_of_range")
        values = values.mask(overflow)
    return values, reasons


def _strptime_ok(value: str, formats: Sequence[str]) -> bool:
    """Whether ``value`` is a real calendar date in one of ``formats`` (pandas just couldn't hold it)."""
    for fmt in formats:
        try:
            if fmt == ISO:
                datetime.fromisoformat(value)
            else:
                datetime.strptime(value, fmt)
            return True
        except ValueError:
            continue
    return False


def _to_target(
    naive: pd.Series, source_timezone: str | None, target_timezone: str
) -> tuple[pd.Series, pd.Series]:
    """Wall-clock times in ``source_timezone`` → naive times in ``target_timezone``."""
    if source_timezone is None or source_timezone == target_timezone or naive.empty:
        return naive, pd.Series(False, index=naive.index)
    local = naive.dt.tz_localize(source_timezone, ambiguous="NaT", nonexistent="NaT")
    invalid = naive.notna() & local.isna()
    return local.dt.tz_convert(target_timezone).dt.tz_localize(None), invalid


def parse_datetime(
    s: pd.Series,
    formats: Sequence[str] = (),
    excel_serial: bool = False,
    source_timezone: str | None = None,
    target_timezone: str = "UTC",
    kind: str = "timestamp",
) -> Parsed:
    """Dates/timestamps in the column's formats, tried in order (ISO 8601 if none).

    Values with a UTC offset are converted to ``target_timezone``; naive values
    are wall-clock times in ``source_timezone`` (default: already the target
    zone, kept as written). Results are naive; ``kind="date"`` drops the time.
    """
    fmts = list(formats) or [ISO]
    reasons = _empty_reasons(s.index)
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us]")
    text = s.astype("string")
    todo = text.notna()
    if excel_serial and todo.any():
        serial = todo & text.str.fullmatch(r"\d{1,7}(?:\.\d+)?").fillna(False)
        days = pd.to_numeric(text[serial], errors="coerce").astype("float64")
        out.loc[days.index] = EXCEL_EPOCH + pd.to_timedelta(days, unit="D")
        todo &= ~serial
    aware = todo & text.str.contains(_OFFSET).fillna(False)
    for fmt in fmts:
        for group, utc in ((todo & ~aware, False), (todo & aware, True)):
            if not group.any():
                continue
            parsed = pd.to_datetime(text[group], format=fmt, errors="coerce", utc=utc)
            if utc:
                parsed = parsed.dt.tz_convert(target_timezone).dt.tz_localize(None)
            elif getattr(parsed.dt, "tz", None) is not None:  # a %z format: offset-aware
                parsed = parsed.dt.tz_convert(target_timezone).dt.tz_localize(None)
                aware |= group & parsed.notna().reindex(s.index, fill_value=False)
            hit = parsed.notna()
            out.loc[parsed.index[hit]] = parsed[hit].astype("datetime64[us]")
            todo &= ~out.notna()
    local = s.notna() & ~aware & out.notna()
    shifted, invalid = _to_target(out[local], source_timezone, target_timezone)
    out.loc[shifted.index] = shifted
    reasons.loc[invalid[invalid].index] = "invalid_local_time"
    in_range = out.isna() | ((out >= DATE_MIN) & (out < DATE_MAX))
    reasons.loc[~in_range & reasons.isna()] = "date_out_of_range"
    out = out.where(in_range & reasons.isna())
    # Leftovers are rare: a per-value check tells a far-away real date from garbage.
    unparsed = text[todo]
    for value in unparsed.unique():
        code = "date_out_of_range" if _strptime_ok(str(value), fmts) else f"unparseable_{kind}"
        reasons.loc[unparsed.index[(unparsed == value).to_numpy()]] = code
    if kind == "date":
        out = out.dt.normalize()
    return out, reasons


def parse_date(
    s: pd.Series,
    formats: Sequence[str] = (),
    excel_serial: bool = False,
    target_timezone: str = "UTC",
) -> Parsed:
    """Calendar dates (``%d/%m/%Y`` for a day-first source, ``%m/%d/%Y`` month-first)."""
    return parse_datetime(s, formats, excel_serial, target_timezone=target_timezone, kind="date")


def parse_timestamp(
    s: pd.Series,
    formats: Sequence[str] = (),
    source_timezone: str | None = None,
    target_timezone: str = "UTC",
    excel_serial: bool = False,
) -> Parsed:
    """Timestamps normalised to ``target_timezone`` (the deployment's), stored naive."""
    return parse_datetime(s, formats, excel_serial, source_timezone, target_timezone)


# C0 controls but tab, LF and CR; DEL; C1 controls (U+0080-U+009F, cp1252 bytes read as latin-1).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def flag_control(s: pd.Series) -> pd.Series:
    """Rows whose text holds a control character (see ``control_character``)."""
    return s.astype("string").str.contains(CONTROL).fillna(False).astype(bool)


def show_controls(value: str) -> str:
    """``value`` with its control characters spelled out (``\\x00``), storable and readable."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def flag_bad_encoding(s: pd.Series) -> pd.Series:
    """Rows whose text holds U+FFFD, the mark of bytes that could not be decoded."""
    return s.astype("string").str.contains("\ufffd", regex=False).fillna(False).astype(bool)
