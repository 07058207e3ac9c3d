"""A night the data-quality gate holds back can be inspected: its rejected rows are in
``ops.quarantine`` (``held_back``) with their reasons, and the page's first line names the
table, the check, the column and the top offending values. Both warehouses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _acme import ITEMS, LINES, RUN_DATE, STORES, Acme
from _services import fresh_postgres_database

from nightcast.monitoring.alerts import first_line, task_failed_alert
from nightcast.pipeline import gate, stages
from nightcast.pipeline.replay import replay_quarantine
from nightcast.quality import DataQualityError
from nightcast.warehouse.base import open_warehouse

HEADER = "LINE,ORDER,DAY,ITEM,STORE,QTY,PRICE,STATUS,CHANGED\n"
NEGATIVE = HEADER + "".join(
    f"{100 + i},1,2025-05-01,1,10,{qty},1.5,S,2025-05-01 09:00:00\n"
    for i, qty in enumerate([2, -5, -5, -5, -7, 3])
)


@pytest.fixture(params=["duckdb", "postgres"])
def wh_acme(
    request: pytest.FixtureRequest, acme: Acme, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Acme]:
    if request.param == "postgres":
        url = fresh_postgres_database("nightcast_held_back_test")
        monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", url)
        acme.settings = type(acme.settings)(**{**acme.settings.__dict__, "warehouse_url": url})
    yield acme


def q(acme: Acme, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with open_warehouse(acme.settings.warehouse_url) as wh:
        return wh.fetchall(sql, params or [])


def held_back_night(acme: Acme) -> DataQualityError:
    stages.extract(acme.settings, "acme", RUN_DATE)
    summary = stages.clean(acme.settings, "acme", RUN_DATE)
    with pytest.raises(DataQualityError) as info:
        gate.validate(acme.settings, RUN_DATE, [summary])
    return info.value


def test_the_rejected_rows_of_a_held_back_night_are_queryable_with_their_reasons(
    wh_acme: Acme,
) -> None:
    acme = wh_acme
    err = held_back_night(acme)  # 3 of 5 lines rejected: the quarantine rate stops the night

    assert q(acme, "select count(*) from raw.order_lines") == [(0,)]
    assert q(
        acme,
        "select table_name, row_number, natural_key, column_name, reason, raw_value "
        "from ops.quarantine where run_date = ? and held_back order by row_number",
        [RUN_DATE],
    ) == [
        ("order_lines", 3, "acme:102", "status", "unknown_value", "R"),
        ("order_lines", 4, "acme:103", "status", "unknown_value", "R"),
        ("order_lines", 5, "acme:104", "quantity", "not_a_number", "x"),
    ]
    # The page's first line: table, check, column, top offending values.
    alert = task_failed_alert("erp_forecast_nightly", "validate", RUN_DATE, "", err)
    line = alert.summary
    assert f"Error: {line}" in alert.message()
    assert line.startswith("Data-quality gate failed: order_lines: nightcast_quarantine_rate")
    assert "status='R' (unknown_value) x2" in line and "quantity='x' (not_a_number) x1" in line
    assert "3 of 5" in line and "source acme" in line
    # The message says where the rows are, and the lake file.
    assert "ops.quarantine" in str(err) and "held_back" in str(err)
    assert "quarantine/order_lines/date=2025-05-01/acme.parquet" in str(err)

    # Replay re-adds rows of a LOADED night; for a held-back one it says what to do instead.
    (res,) = replay_quarantine(acme.settings, RUN_DATE, "acme")
    assert (res.replayed, res.held_back) == (0, 3)
    assert "held back" in res.describe() and "extract_acme" in res.describe()
    assert q(acme, "select count(*) from raw.order_lines") == [(0,)]


def test_a_rerun_that_passes_replaces_the_held_back_rows(wh_acme: Acme) -> None:
    acme = wh_acme
    held_back_night(acme)
    good = "".join(line + "\n" for line in LINES.splitlines()[:3])  # header + the 2 good lines
    acme.drop_files(RUN_DATE, items_csv=ITEMS, stores_csv=STORES, lines_csv=good)
    stages.extract(acme.settings, "acme", RUN_DATE)
    summary = stages.clean(acme.settings, "acme", RUN_DATE)
    gate.validate(acme.settings, RUN_DATE, [summary])
    assert q(acme, "select count(*) from ops.quarantine where held_back") == [(0,)]
    stages.load(acme.settings, RUN_DATE, [summary])
    assert q(acme, "select count(*) from raw.order_lines") == [(2,)]


def test_a_failed_expectation_names_its_column_and_top_values_first(wh_acme: Acme) -> None:
    acme = wh_acme
    acme.drop_files(RUN_DATE, items_csv=ITEMS, stores_csv=STORES, lines_csv=NEGATIVE)
    err = held_back_night(acme)
    line = first_line(err)
    assert line.startswith(
        "Data-quality gate failed: order_lines: expect_column_values_to_be_between on quantity"
    ), line
    assert "4 unexpected of 6" in line and "-5.0 x3, -7.0 x1" in line, line
    assert "source acme" in line
    # No cleaner rejects tonight: nothing held back in ops.quarantine, and the message says so.
    assert q(acme, "select count(*) from ops.quarantine") == [(0,)]
