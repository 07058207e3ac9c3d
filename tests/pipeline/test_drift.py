"""Schema drift at extract time: a missing mapped column fails, a new column is recorded."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from _acme import ITEMS, LINES, RUN_DATE, STORES, Acme

from nightcast.pipeline import stages
from nightcast.sources.extract import LandedSchemaError
from nightcast.warehouse.base import open_warehouse


def drift_rows(acme: Acme) -> list[tuple[object, ...]]:
    with open_warehouse(acme.settings.warehouse_url) as wh:
        return wh.fetchall(
            "select run_date, source, table_name, column_name, change from ops.schema_drift "
            "where table_name = 'order_lines' order by run_date, change, column_name"
        )


def test_renamed_column_fails_the_extract_naming_source_table_file_and_column(
    acme: Acme,
) -> None:
    acme.drop_files(RUN_DATE, lines_csv=LINES.replace(",PRICE,", ",COST,"))
    with pytest.raises(LandedSchemaError) as err:
        stages.extract(acme.settings, "acme", RUN_DATE)
    msg = str(err.value)
    assert "source 'acme' table 'order_lines'" in msg
    assert "landing " + str(acme.settings.lake / "raw/acme/order_lines/date=2025-05-01") in msg
    assert f"read from {acme.drop / str(RUN_DATE) / 'lines.csv'}" in msg  # the export file
    assert "no column(s) ['PRICE']" in msg and "'COST'" in msg and "acme.yaml" in msg
    assert err.value.missing == ["PRICE"]
    assert err.value.sources == ("acme",)
    assert drift_rows(acme) == [
        (RUN_DATE, "acme", "order_lines", "COST", "added"),
        (RUN_DATE, "acme", "order_lines", "PRICE", "missing"),
    ]


def test_new_column_is_recorded_once_and_logged_not_used(
    acme: Acme, caplog: pytest.LogCaptureFixture
) -> None:
    with_extra = LINES.replace("CHANGED\n", "CHANGED,CHANNEL\n", 1).replace(":00\n", ":00,web\n")
    acme.drop_files(RUN_DATE, lines_csv=LINES)
    stages.extract(acme.settings, "acme", RUN_DATE)
    assert drift_rows(acme) == []

    nxt = RUN_DATE + timedelta(days=1)
    acme.drop_files(nxt, items_csv=ITEMS, stores_csv=STORES, lines_csv=with_extra)
    with caplog.at_level(logging.WARNING, logger="nightcast.pipeline"):
        stages.extract(acme.settings, "acme", nxt)
    assert drift_rows(acme) == [(nxt, "acme", "order_lines", "CHANNEL", "added")]
    assert any("new column(s) ['CHANNEL']" in r.getMessage() for r in caplog.records)
    summary = stages.clean(acme.settings, "acme", nxt)
    assert summary["tables"]["order_lines"]["unexpected_columns"] == ["CHANNEL"]

    # The night after, the column is no longer new: nothing more is recorded.
    third = nxt + timedelta(days=1)
    acme.drop_files(third, items_csv=ITEMS, stores_csv=STORES, lines_csv=with_extra)
    stages.extract(acme.settings, "acme", third)
    assert [r for r in drift_rows(acme) if r[0] == third] == []
