"""Quarantine replay: re-clean a night's rejected rows with the fixed mapping and load them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from _acme import ITEMS, RUN_DATE, STORES, Acme

from nightcast.pipeline import stages
from nightcast.pipeline.replay import replay_quarantine
from nightcast.quality import DataQualityError
from nightcast.warehouse.base import open_warehouse


def night(acme: Acme, day: date = RUN_DATE) -> dict[str, Any]:
    stages.extract(acme.settings, "acme", day)
    summary = stages.clean(acme.settings, "acme", day)
    return stages.load(acme.settings, day, [summary])


def q(acme: Acme, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with open_warehouse(acme.settings.warehouse_url) as wh:
        return wh.fetchall(sql, params or [])


def test_replay_loads_rows_the_fixed_mapping_accepts(acme: Acme) -> None:
    night(acme)
    assert q(acme, "select count(*) from raw.order_lines") == [(2,)]
    assert q(acme, "select count(distinct row_number) from ops.quarantine") == [(3,)]

    acme.write_mapping("{S: shipped, R: returned}")  # the fix: 'R' means returned
    (res,) = replay_quarantine(acme.settings, RUN_DATE, "acme", "order_lines")

    assert (res.candidates, res.replayed, res.still_quarantined) == (3, 2, 1)
    assert res.reasons == {"quantity:not_a_number": 1}
    assert q(acme, "select order_line_id, status from raw.order_lines order by 1") == [
        ("acme:100", "shipped"),
        ("acme:101", "shipped"),
        ("acme:102", "returned"),
        ("acme:103", "returned"),
    ]
    # The row still failing keeps its landed row number and gets its new reason.
    assert q(
        acme, "select row_number, natural_key, column_name, reason, raw_value from ops.quarantine"
    ) == [(5, "acme:104", "quantity", "not_a_number", "x")]
    assert q(
        acme,
        "select rows_in, rows_out, rows_quarantined from ops.task_runs "
        "where task = 'replay' and source = 'acme' and table_name = 'order_lines'",
    ) == [(3, 2, 1)]

    # Replaying again changes nothing.
    (again,) = replay_quarantine(acme.settings, RUN_DATE, "acme")
    assert (again.candidates, again.replayed, again.still_quarantined) == (1, 0, 1)


def test_replay_never_overwrites_a_newer_version(acme: Acme) -> None:
    night(acme)
    nxt = RUN_DATE + timedelta(days=1)
    acme.drop_files(
        nxt,
        items_csv=ITEMS,
        stores_csv=STORES,
        lines_csv="LINE,ORDER,DAY,ITEM,STORE,QTY,PRICE,STATUS,CHANGED\n"
        "102,2,2025-05-01,1,11,7,1.5,S,2025-05-02 08:00:00\n",
    )
    night(acme, nxt)
    acme.write_mapping("{S: shipped, R: returned}")
    (res,) = replay_quarantine(acme.settings, RUN_DATE, "acme", "order_lines")
    assert (res.replayed, res.older_than_warehouse, res.still_quarantined) == (1, 1, 1)
    assert q(
        acme, "select status, quantity from raw.order_lines where order_line_id = 'acme:102'"
    ) == [("shipped", 7.0)]


def test_replay_runs_the_suite_before_loading(acme: Acme) -> None:
    night(acme)
    # A "fix" that maps 'R' onto a status the suite does not allow is refused.
    acme.write_mapping("{S: shipped, R: refunded}")
    with pytest.raises(DataQualityError, match="status"):
        replay_quarantine(acme.settings, RUN_DATE, "acme", "order_lines")
    assert q(acme, "select count(*) from raw.order_lines") == [(2,)]
    assert q(acme, "select count(distinct row_number) from ops.quarantine") == [(3,)]


def test_the_command_prints_counts_and_only_nightcasts_own_log_lines(acme: Acme) -> None:
    night(acme)
    acme.write_mapping("{S: shipped, R: returned}")
    command = ["quarantine", "replay", "--run-date", "2025-05-01", "--source", "acme"]
    done = subprocess.run(
        [str(Path(sys.executable).with_name("nightcast")), *command],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert (
        "acme.order_lines 2025-05-01: 2 replayed into raw.order_lines, 1 still quarantined" in out
    )
    assert "quantity:not_a_number x1" in out
    assert "total: 2 replayed, 1 still quarantined" in out
    # Great Expectations logged ~200 INFO lines on import here; what is left is Nightcast's own.
    assert "great_expectations" not in done.stderr
    loggers = [line.split(" ")[3] for line in done.stderr.splitlines()]
    assert loggers and all(name.startswith("nightcast.") for name in loggers), done.stderr
    assert "dq order_lines run_date=2025-05-01" in done.stderr  # the suite's own summary line
