"""Cleaning landed rows with the demo mapping's rules: parse, default, quarantine, dedupe."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nightcast.cleaning.clean import (
    QUARANTINE_COLUMNS,
    CleanResult,
    SchemaDriftError,
    clean_table,
)
from nightcast.sources.mapping import SourceMapping, TableMapping, load_mapping

DEMO_YAML = (
    Path(__file__).resolve().parents[2]
    / "include"
    / "nightcast"
    / "sources"
    / "mappings"
    / "demo.yaml"
)
RUN_DATE = date(2024, 3, 5)
LANDED = Path("/lake/raw/demo/order_lines/date=2024-03-05/part-0.parquet")

LINE_COLUMNS = [
    "line_id",
    "order_id",
    "order_ts",
    "product_id",
    "store_id",
    "qty",
    "unit_price",
    "amount",
    "line_status",
    "updated_at",
]


@pytest.fixture(scope="module")
def demo() -> SourceMapping:
    return load_mapping(DEMO_YAML)


@pytest.fixture(scope="module")
def lines(demo: SourceMapping) -> TableMapping:
    return demo.tables["order_lines"]


def _line(line_id: str | None = "1", **overrides: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "line_id": line_id,
        "order_id": "100",
        "order_ts": "2024-03-05 10:15:00",
        "product_id": "7",
        "store_id": "2",
        "qty": "3",
        "unit_price": "2.50",
        "amount": "7.50",
        "line_status": "open",
        "updated_at": "2024-03-05 10:15:00",
    }
    row.update(overrides)
    return row


def _landed(rows: list[dict[str, Any]], columns: list[str] | None = None) -> pa.Table:
    if columns is None:
        columns = list(rows[0]) if rows else []
    return pa.table({c: pa.array([r.get(c) for r in rows], type=pa.string()) for c in columns})


def _clean(
    table: TableMapping, rows: list[dict[str, Any]], columns: list[str] | None = None
) -> CleanResult:
    return clean_table(_landed(rows, columns), table, "demo", RUN_DATE, LANDED)


def _reasons(result: CleanResult) -> set[tuple[int, str, str]]:
    q = result.quarantine
    return set(zip(q["row_number"], q["column_name"], q["reason"], strict=True))


def test_good_rows_are_parsed_and_namespaced(lines: TableMapping) -> None:
    result = _clean(lines, [_line("2"), _line("1", qty=" 4 ", line_status="shipped")])

    assert result.rows_in == 2
    assert result.quarantine.empty
    assert list(result.quarantine.columns) == QUARANTINE_COLUMNS
    clean = result.clean
    assert clean["order_line_id"].tolist() == ["demo:1", "demo:2"]  # sorted by key
    first = clean.iloc[0]
    assert first["source"] == "demo"
    assert first["order_id"] == "demo:100"
    assert first["item_id"] == "demo:7"
    assert first["location_id"] == "demo:2"
    assert first["quantity"] == 4.0
    assert first["unit_price"] == 2.5
    assert first["status"] == "shipped"
    assert first["currency"] == "EUR"
    assert first["order_date"] == pd.Timestamp("2024-03-05")  # a date: time of day dropped
    assert first["updated_at"] == pd.Timestamp("2024-03-05 10:15:00")
    assert first["_run_date"] == pd.Timestamp(RUN_DATE)


def test_null_tokens_become_null_and_defaults_apply(demo: SourceMapping) -> None:
    items = demo.tables["items"]
    row = {
        "product_id": "42",
        "sku": "#N/A",
        "name": "N/A",
        "department": " NULL ",
        "category": None,
        "subcategory": "Snacks",
        "list_price": "",
        "launched_on": "2023-01-10",
        "discontinued_on": "NULL",
        "updated_at": "2024-03-01 08:00:00",
    }
    result = _clean(items, [row])

    assert result.quarantine.empty
    out = result.clean.iloc[0]
    assert out["item_id"] == "demo:42"
    assert pd.isna(out["sku"])
    assert out["name"] == "UNKNOWN"
    assert out["department"] == "UNKNOWN"
    assert out["category"] == "UNKNOWN"
    assert out["subcategory"] == "Snacks"
    assert pd.isna(out["list_price"])
    assert out["launch_date"] == pd.Timestamp("2023-01-10")
    assert pd.isna(out["discontinue_date"])


@pytest.mark.parametrize(
    ("overrides", "column", "reason", "raw_value"),
    [
        ({"qty": "three"}, "quantity", "not_a_number", "three"),
        ({"unit_price": "2,50"}, "unit_price", "not_a_number", "2,50"),
        ({"order_ts": "yesterday"}, "order_date", "unparseable_date", "yesterday"),
        (
            {"updated_at": "2024-13-45 10:00"},
            "updated_at",
            "unparseable_timestamp",
            "2024-13-45 10:00",
        ),
        ({"order_id": "N/A"}, "order_id", "missing_required", "N/A"),
        ({"qty": None}, "quantity", "missing_required", None),
        ({"line_status": "lost"}, "status", "unknown_value", "lost"),
    ],
)
def test_bad_values_are_quarantined_with_a_reason(
    lines: TableMapping,
    overrides: dict[str, str | None],
    column: str,
    reason: str,
    raw_value: str | None,
) -> None:
    bad = _line("2", **overrides)
    result = _clean(lines, [_line("1"), bad, _line("3")])

    assert result.clean["order_line_id"].tolist() == ["demo:1", "demo:3"]
    assert result.rows_quarantined == 1
    q = result.quarantine
    assert len(q) == 1
    rec = q.iloc[0]
    assert rec["row_number"] == 2
    assert rec["column_name"] == column
    assert rec["reason"] == reason
    assert rec["raw_value"] == raw_value
    assert rec["natural_key"] == "demo:2"
    assert rec["source"] == "demo"
    assert rec["table_name"] == "order_lines"
    assert rec["run_date"] == pd.Timestamp(RUN_DATE)
    assert json.loads(rec["raw_row"]) == bad


def test_one_row_with_several_problems_counts_once(lines: TableMapping) -> None:
    result = _clean(lines, [_line("1", qty="x", order_ts="?", line_status="lost"), _line("2")])
    assert _reasons(result) == {
        (1, "quantity", "not_a_number"),
        (1, "order_date", "unparseable_date"),
        (1, "status", "unknown_value"),
    }
    assert result.rows_quarantined == 1
    assert len(result.clean) == 1
    assert result.rows_in == len(result.clean) + result.rows_quarantined


def test_missing_key_is_quarantined_without_a_natural_key(lines: TableMapping) -> None:
    result = _clean(lines, [_line(None), _line("2")])
    q = result.quarantine
    assert q["reason"].tolist() == ["missing_required"]
    assert q["column_name"].tolist() == ["order_line_id"]
    assert q["natural_key"].tolist() == [None]
    assert result.clean["order_line_id"].tolist() == ["demo:2"]


def test_duplicates_keep_the_latest_version(lines: TableMapping) -> None:
    rows = [
        _line("1", qty="5", updated_at="2024-03-05 18:00:00"),  # the latest edit, first in file
        _line("2"),
        _line("1", qty="3", updated_at="2024-03-05 09:00:00"),  # older version of line 1
    ]
    result = _clean(lines, rows)

    clean = result.clean.set_index("order_line_id")
    assert clean.index.tolist() == ["demo:1", "demo:2"]
    assert clean.loc["demo:1", "quantity"] == 5.0
    assert clean.loc["demo:1", "updated_at"] == pd.Timestamp("2024-03-05 18:00:00")
    assert _reasons(result) == {(3, "order_line_id", "duplicate_key_superseded")}
    assert json.loads(result.quarantine.iloc[0]["raw_row"])["qty"] == "3"
    assert result.rows_in == 3 == len(result.clean) + result.rows_quarantined


def test_a_bad_newer_version_does_not_block_the_good_older_one(lines: TableMapping) -> None:
    rows = [_line("1", qty="3"), _line("1", qty="oops", updated_at="2024-03-05 20:00:00")]
    result = _clean(lines, rows)
    assert result.clean["quantity"].tolist() == [3.0]
    assert _reasons(result) == {(2, "quantity", "not_a_number")}


def test_landed_file_missing_a_mapped_column_is_schema_drift(lines: TableMapping) -> None:
    columns = [c for c in LINE_COLUMNS if c != "qty"]
    with pytest.raises(SchemaDriftError) as info:
        _clean(lines, [_line("1")], columns)
    msg = str(info.value)
    assert "'demo'" in msg
    assert "'order_lines'" in msg
    assert str(LANDED) in msg
    assert "qty" in msg


def test_unexpected_columns_are_reported_not_fatal(lines: TableMapping) -> None:
    result = _clean(lines, [{**_line("1"), "warehouse_bin": "A7", "audit_user": "bob"}])
    assert result.unexpected_columns == ["audit_user", "warehouse_bin"]
    assert len(result.clean) == 1
    assert "warehouse_bin" not in result.clean.columns


def test_scale_turns_percent_into_a_fraction(demo: SourceMapping) -> None:
    promos = demo.tables["promotions"]
    row = {
        "promo_id": "9",
        "product_id": "7",
        "store_id": None,
        "starts_on": "2024-03-01",
        "ends_on": "2024-03-14",
        "discount_pct": "25",
        "updated_at": "2024-02-20 12:00:00",
    }
    result = _clean(promos, [row, {**row, "promo_id": "10", "discount_pct": "abc"}])
    assert result.clean["discount_pct"].tolist() == [pytest.approx(0.25)]
    assert result.clean["promotion_id"].tolist() == ["demo:9"]
    assert pd.isna(result.clean["location_id"].iloc[0])  # optional: a promotion for every store
    assert _reasons(result) == {(2, "discount_pct", "not_a_number")}


def test_row_number_is_one_based_and_points_at_the_landed_row(lines: TableMapping) -> None:
    rows = [_line(str(i)) for i in range(1, 6)]
    rows[3] = _line("4", qty="many")  # the 4th row of the file
    result = _clean(lines, rows)
    q = result.quarantine
    assert q["row_number"].tolist() == [4]
    assert json.loads(q.iloc[0]["raw_row"])["line_id"] == "4"
    assert q.iloc[0]["natural_key"] == "demo:4"


def test_empty_landed_file(lines: TableMapping) -> None:
    result = _clean(lines, [], LINE_COLUMNS)
    assert result.rows_in == 0
    assert result.clean.empty
    assert result.rows_quarantined == 0


def test_timestamps_with_offsets_do_not_crash(lines: TableMapping) -> None:
    # Some ERPs (and CSV drops) write offsets; mixing them with naive stamps must not crash.
    rows = [
        _line("1", updated_at="2024-03-05 10:00:00"),
        _line("2", updated_at="2024-03-05T10:00:00+01:00"),
        _line("3", order_ts="2024-03-05T20:30:00-02:00"),
    ]
    result = _clean(lines, rows)
    assert result.quarantine.empty
    assert result.clean["updated_at"].tolist()[:2] == [
        pd.Timestamp("2024-03-05 10:00:00"),
        pd.Timestamp("2024-03-05 09:00:00"),  # normalised to UTC, naive like the warehouse column
    ]
    assert result.clean["order_date"].iloc[2] == pd.Timestamp("2024-03-05")


# --- property: any text, never a crash, always reconciled ----------------------------------

_PLAUSIBLE = {
    "line_id": ["1", "2", "3"],
    "order_id": ["100", "101"],
    "order_ts": ["2024-03-05", "2024-03-05 10:00:00", "2024-03-05T10:00:00+02:00"],
    "product_id": ["7", "8"],
    "store_id": ["1"],
    "qty": ["1", "2.5", "-3", "1e3", "inf", "nan", "99999999999999999999999"],
    "unit_price": ["0.99", "12"],
    "amount": ["3.5"],
    "line_status": ["open", "shipped", "cancelled", "returned"],
    "updated_at": ["2024-03-05 10:00:00", "2024-03-04 09:00:00", "2024-03-05T10:00:00Z"],
}
_TOKENS = ["", "NULL", "N/A", "#N/A", " ", "null"]


def _cell(column: str) -> st.SearchStrategy[str | None]:
    return st.one_of(
        st.none(),
        st.sampled_from(_PLAUSIBLE[column] + _TOKENS),
        st.text(max_size=12),
    )


_rows = st.lists(st.fixed_dictionaries({c: _cell(c) for c in LINE_COLUMNS}), max_size=8)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_rows)
def test_any_text_never_crashes_and_always_reconciles(
    lines: TableMapping, rows: list[dict[str, str | None]]
) -> None:
    result = _clean(lines, rows, LINE_COLUMNS)

    assert result.rows_in == len(rows)
    assert len(result.clean) + result.rows_quarantined == len(rows)
    q = result.quarantine
    assert set(q["row_number"]) <= set(range(1, len(rows) + 1))
    assert not q["reason"].isna().any()
    clean = result.clean
    assert clean["order_line_id"].is_unique
    for name, rule in lines.columns.items():
        if rule.required:
            assert not clean[name].isna().any(), name
