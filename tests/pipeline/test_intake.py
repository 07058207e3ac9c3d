"""Every record of a source file is loaded, quarantined with a reason, or the night stops.

Stage-level (extract → clean → load, no scheduler) on the ``acme`` CSV drop, on DuckDB
and on PostgreSQL: the messy exports of issue 11 that used to lose or alter rows while
the night succeeded.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from _acme import LINES, RUN_DATE, STORES, Acme
from _services import fresh_postgres_database

from nightcast.config import get_settings
from nightcast.pipeline import stages
from nightcast.warehouse.base import open_warehouse

DAY2 = RUN_DATE + timedelta(days=1)


@pytest.fixture(params=["duckdb", "postgres"])
def shop(request: pytest.FixtureRequest, acme: Acme, monkeypatch: pytest.MonkeyPatch) -> Acme:
    """The acme drop with either warehouse; every ``status`` code known."""
    if request.param == "postgres":
        monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", fresh_postgres_database("nightcast_intake"))
        acme.settings = get_settings()
    acme.write_mapping("{S: shipped, R: returned}")
    return acme


def night(acme: Acme, day: date) -> list[dict[str, Any]]:
    stages.extract(acme.settings, "acme", day)
    cleaned = [stages.clean(acme.settings, "acme", day)]
    stages.load(acme.settings, day, cleaned)
    return cleaned


def query(acme: Acme, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with open_warehouse(acme.settings.warehouse_url) as wh:
        return wh.fetchall(sql, params or [])


def snapshot(acme: Acme) -> dict[str, Any]:
    """What a failed night must leave unchanged: the raw tables and the watermarks."""
    return {
        t: query(acme, f"select * from raw.{t} order by 2")
        for t in ("items", "locations", "order_lines")
    } | {"watermarks": query(acme, "select * from ops.watermarks order by 1, 2")}


@pytest.mark.parametrize("export", [b"", b"ITEM,NAME,CHANGED\n", b"ITEM,NAME,CHANGED"])
def test_an_empty_or_header_only_full_export_stops_the_night_and_keeps_the_table(
    shop: Acme, export: bytes
) -> None:
    night(shop, RUN_DATE)
    assert query(shop, "select count(*) from raw.items") == [(2,)]
    before = snapshot(shop)
    shop.drop_files(DAY2, stores_csv=STORES, lines_csv=LINES.replace("2025-05-01", str(DAY2)))
    (shop.drop / str(DAY2) / "items.csv").write_bytes(export)
    with pytest.raises(Exception) as err:
        night(shop, DAY2)
    message = str(err.value)
    for part in ("'acme'", "'items'", str(shop.drop / str(DAY2) / "items.csv"), "allow_empty"):
        assert part in message, message
    assert snapshot(shop) == before


def test_a_blank_first_line_before_the_header_is_skipped_and_every_row_loads(
    shop: Acme,
) -> None:
    shop.drop_files(RUN_DATE, lines_csv="\n  \t\n" + LINES)
    cleaned = night(shop, RUN_DATE)
    counts = cleaned[0]["tables"]["order_lines"]
    assert (counts["rows_in"], counts["clean"], counts["quarantined"]) == (5, 4, 1)
    assert query(shop, "select count(*) from raw.order_lines") == [(4,)]
    # The books start at the file: 5 records counted while landing, 5 accounted for.
    assert query(
        shop,
        "select rows_in, rows_out from ops.task_runs where task = 'extract' "
        "and table_name = 'order_lines'",
    ) == [(5, 5)]


def test_numbers_that_overflow_a_double_are_quarantined_not_loaded_as_infinity(
    shop: Acme,
) -> None:
    lines = LINES.replace(",2,1.5,S", ",1e400,1.5,S").replace(",1,2.0,S", ",1,-1e400,S")
    shop.drop_files(RUN_DATE, lines_csv=lines.replace(",3,1.5,R", ",1.8e308,1.5,R"))
    night(shop, RUN_DATE)
    assert query(
        shop,
        "select count(*) from raw.order_lines where quantity > 1e308 or quantity < -1e308 "
        "or unit_price > 1e308 or unit_price < -1e308",
    ) == [(0,)]
    got = query(
        shop,
        "select row_number, column_name, reason, raw_value from ops.quarantine "
        "where table_name = 'order_lines' order by row_number",
    )
    assert got == [
        (1, "quantity", "number_out_of_range", "1e400"),
        (2, "unit_price", "number_out_of_range", "-1e400"),
        (3, "quantity", "number_out_of_range", "1.8e308"),
        (5, "quantity", "not_a_number", "x"),
    ]


def test_nul_and_control_characters_are_quarantined_identically_on_both_warehouses(
    shop: Acme,
) -> None:
    items = "ITEM,NAME,CHANGED\n1,Ap\x00ple,2025-04-01 10:00:00\n2,Pe\x1bar,2025-04-01 10:00:00\n"
    items += '3,"two\nlines\tand tab",2025-04-01 10:00:00\n4,Plum\x7f,2025-04-01 10:00:00\n'
    shop.drop_files(RUN_DATE, items_csv=items)
    night(shop, RUN_DATE)  # the PostgreSQL COPY used to fail on the NUL
    assert query(shop, "select item_id, name from raw.items order by 1") == [
        ("acme:3", "two\nlines\tand tab")
    ]
    got = query(
        shop,
        "select row_number, column_name, reason, raw_value from ops.quarantine "
        "where table_name = 'items' order by row_number, column_name",
    )
    assert [g[:3] for g in got] == [
        (1, "name", "control_character"),
        (2, "name", "control_character"),
        (4, "name", "control_character"),
    ]
    # The raw value is kept, readable and loadable: the control character spelled out.
    assert [g[3] for g in got] == ["Ap\\x00ple", "Pe\\x1bar", "Plum\\x7f"]


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("ITEM,NAME,CHANGED,NAME", "'NAME'"),
        ("ITEM,NAME,,CHANGED", "column 3"),
        ("ITEM,NAME,CHANGED, ", "column 4"),
    ],
)
def test_duplicated_or_blank_header_names_fail_the_extract_naming_file_and_column(
    shop: Acme, header: str, column: str
) -> None:
    shop.drop_files(RUN_DATE, items_csv=f"{header}\n1,Apple,2025-04-01 10:00:00,x\n")
    with pytest.raises(Exception) as err:
        night(shop, RUN_DATE)
    message = str(err.value)
    for part in ("'acme'", "'items'", str(shop.drop / str(RUN_DATE) / "items.csv"), column):
        assert part in message, message
    assert "header" in message and "line 1" in message
