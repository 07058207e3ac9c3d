"""Property-based tests of the vectorised parsers: never crash, always account, exact round trips."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from nightcast.cleaning.clean import clean_table
from nightcast.cleaning.parsers import parse_date, parse_number, parse_timestamp
from nightcast.sources.mapping import ColumnRule, TableMapping

CONVENTIONS = [(".", ","), (",", "."), (",", " "), (".", "'"), (".", "")]
_cells = st.lists(st.one_of(st.none(), st.text(max_size=16)), max_size=20)


def _series(values: list[str | None]) -> pd.Series:
    return pd.Series(values, dtype="string")


def _accounted(s: pd.Series, values: pd.Series, reasons: pd.Series) -> None:
    """Every present input is exactly one of: parsed, or given a reason; missing stays missing."""
    assert values.index.equals(s.index) and reasons.index.equals(s.index)
    present = s.notna().to_numpy()
    parsed = values.notna().to_numpy()
    flagged = reasons.notna().to_numpy()
    assert not (parsed & flagged).any()
    assert ((parsed | flagged) == present).all()


@settings(max_examples=150, deadline=None)
@given(cells=_cells, convention=st.sampled_from(CONVENTIONS), currency=st.booleans())
def test_parse_number_never_crashes_and_accounts_for_every_value(
    cells: list[str | None], convention: tuple[str, str], currency: bool
) -> None:
    s = _series(cells)
    _accounted(s, *parse_number(s, *convention, currency=currency))


@settings(max_examples=150, deadline=None)
@given(
    cells=_cells,
    formats=st.sampled_from([(), ("%d/%m/%Y",), ("%m/%d/%Y %H:%M", "%Y%m%d")]),
    excel=st.booleans(),
    zone=st.sampled_from([None, "Europe/Berlin", "America/New_York"]),
)
def test_parse_dates_never_crash_and_account_for_every_value(
    cells: list[str | None], formats: tuple[str, ...], excel: bool, zone: str | None
) -> None:
    s = _series(cells)
    _accounted(s, *parse_date(s, formats, excel))
    _accounted(s, *parse_timestamp(s, formats, zone, "UTC", excel))


def _format_number(units: int, cents: int, decimal: str, thousands: str) -> str:
    grouped = f"{units:,}".replace(",", "\x00")
    return f"{grouped.replace(chr(0), thousands)}{decimal}{cents:02d}"


@settings(max_examples=200, deadline=None)
@given(
    units=st.integers(0, 10**12),
    cents=st.integers(0, 99),
    convention=st.sampled_from(CONVENTIONS),
    style=st.sampled_from(["{}", "-{}", "({})", "{}-", "€{}", "{} EUR", "-$ {}"]),
)
def test_well_formed_numbers_round_trip_exactly(
    units: int, cents: int, convention: tuple[str, str], style: str
) -> None:
    decimal, thousands = convention
    text = style.format(_format_number(units, cents, decimal, thousands))
    values, reasons = parse_number(_series([text]), decimal, thousands, currency=True)
    sign = -1 if ("-" in style or "(" in style) else 1
    assert reasons.isna().all(), (text, reasons.iloc[0])
    assert values.iloc[0] == sign * float(f"{units}.{cents:02d}")


_dates = st.dates(date(1900, 1, 1), date(2099, 12, 31))


@settings(max_examples=200, deadline=None)
@given(day=_dates, fmt=st.sampled_from(["%d/%m/%Y", "%m/%d/%Y", "%Y-%m-%d", "%d.%m.%Y"]))
def test_well_formed_dates_round_trip_exactly(day: date, fmt: str) -> None:
    values, reasons = parse_date(_series([day.strftime(fmt)]), [fmt])
    assert reasons.isna().all()
    assert values.iloc[0] == pd.Timestamp(day)


@settings(max_examples=200, deadline=None)
@given(day=_dates)
def test_excel_serials_round_trip_exactly(day: date) -> None:
    serial = (day - date(1899, 12, 30)).days
    values, reasons = parse_date(_series([str(serial)]), ["%d/%m/%Y"], excel_serial=True)
    assert reasons.isna().all()
    assert values.iloc[0] == pd.Timestamp(day)


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(datetime(1900, 1, 2), datetime(2099, 12, 30)).map(
        lambda d: d.replace(microsecond=0)
    ),
    offset_minutes=st.integers(-12 * 60, 14 * 60).map(lambda m: m - m % 15),
)
def test_timestamps_with_offsets_round_trip_to_utc_exactly(
    moment: datetime, offset_minutes: int
) -> None:
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = f"{moment:%Y-%m-%dT%H:%M:%S}{sign}{hours:02d}:{minutes:02d}"
    values, reasons = parse_timestamp(_series([text, f"{moment:%Y-%m-%d %H:%M:%S}"]))
    assert reasons.isna().all()
    assert values.iloc[0] == pd.Timestamp(moment - timedelta(minutes=offset_minutes))
    assert values.iloc[1] == pd.Timestamp(moment)  # naive: already in the deployment zone


# --- the cleaner with the new rules: random rows always reconcile -------------------------

_RULES = {
    "promotion_id": ColumnRule("promotion_id", "id", "id", required=True, null_tokens=("",)),
    "item_id": ColumnRule("item_id", "id", "item", required=True, null_tokens=("", "-")),
    "location_id": ColumnRule("location_id", "id", "store", null_tokens=("", "-")),
    "start_date": ColumnRule(
        "start_date", "date", "from", required=True, formats=("%d/%m/%Y",), excel_serial=True
    ),
    "end_date": ColumnRule("end_date", "date", "to", required=True, formats=("%m/%d/%Y",)),
    "discount_pct": ColumnRule(
        "discount_pct", "float", "pct", required=True, decimal=",", thousands=" ", scale=0.01
    ),
    "updated_at": ColumnRule(
        "updated_at", "timestamp", "changed", timezone="Europe/Berlin", normalize="NFKC"
    ),
}
PROMOS = TableMapping("promotions", "full", "", (), _RULES)
_SOURCE_COLUMNS = ["id", "item", "store", "from", "to", "pct", "changed"]
_cell = st.one_of(
    st.none(),
    st.sampled_from(["1", "2", "-", "", "01/02/2025", "45689", "12,5", "(3)", "2025-03-30 02:30"]),
    st.text(max_size=10),
)


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({c: _cell for c in _SOURCE_COLUMNS}), max_size=8))
def test_random_rows_are_all_loaded_or_quarantined(rows: list[dict[str, str | None]]) -> None:
    landed = pa.table(
        {c: pa.array([r[c] for r in rows], type=pa.string()) for c in _SOURCE_COLUMNS}
    )
    result = clean_table(landed, PROMOS, "fx", date(2025, 5, 1), Path("x.parquet"), "UTC")
    assert result.rows_in == len(rows) == len(result.clean) + result.rows_quarantined
    quarantined = set(result.quarantine["row_number"])
    assert len(quarantined) == result.rows_quarantined
    assert not result.quarantine["reason"].isna().any()
    for name, rule in _RULES.items():
        if rule.required:
            assert not result.clean[name].isna().any(), name
