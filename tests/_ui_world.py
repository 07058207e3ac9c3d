"""Real nights for the tests of the Nightcast page (tests/reporting/test_overview.py and
tests/e2e/test_ui_plugin.py): built once per session by the ``ui_world`` fixture.

On a tiny demo ERP, through the real DAGs (``dag.test``), DuckDB warehouse:

1. night ``FIRST`` publishes; two of its order lines carry a blank quantity, which the
   cleaner quarantines (too few to trip the gate's quarantine rate);
2. the weekly retrain (``RETRAIN``, margins relaxed: the tiny demo is noisy) evaluates
   a challenger against the champion and the simple baselines and promotes it;
3. night ``SECOND`` publishes with the new champion, and its monitor scores the
   first night's forecasts (live WAPE);
4. night ``HELD_BACK`` has negative quantities and one more blank one: the gate
   holds it back, BI keeps ``SECOND`` and the freshness view says stale.

The environment is restored once the world is built; tests read it through
``UiWorld.settings`` (and hand ``UiWorld.env`` to processes they start).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from _deployment import HISTORY, demo_deployment, run_dag

from nightcast import demo_erp
from nightcast.config import Settings, connection_url, get_settings

FIRST, SECOND, HELD_BACK = date(2025, 5, 1), date(2025, 5, 2), date(2025, 5, 5)
RETRAIN = FIRST  # at 03:00, after the first night (02:00)
BLANK_FIRST = 2  # order lines of the first night with a blank quantity
# What the page's server process needs to find the world (besides AIRFLOW_*).
WORLD_VARS = ("NIGHTCAST_DATA_DIR", "NIGHTCAST_WAREHOUSE_PATH", "AIRFLOW_CONN_NIGHTCAST_DEMO_ERP")


@dataclass(frozen=True)
class UiWorld:
    settings: Settings
    env: dict[str, str]


@contextmanager
def _injected(erp: Path, *statements: str) -> Iterator[None]:
    """Run ``statements`` on the demo ERP, then restore it (its simulator cannot read them)."""
    backup = erp.with_suffix(".clean")
    shutil.copyfile(erp, backup)
    engine = sa.create_engine(f"sqlite:///{erp}")
    with engine.begin() as conn:
        for stmt in statements:
            conn.execute(sa.text(stmt))
    engine.dispose()
    try:
        yield
    finally:
        shutil.copyfile(backup, erp)
        backup.unlink()


def _blank_quantities(since: date, n: int) -> str:
    """SQL giving ``n`` order lines updated since ``since`` an empty quantity (a null token)."""
    return (
        "update sales_order_line set qty = '' where rowid in (select rowid from "
        f"sales_order_line where updated_at >= '{since}' and qty > 0 order by rowid limit {n})"
    )


def build(data: Path) -> UiWorld:
    quiet_erp = {"NIGHTCAST_SIMULATED_SOURCES": ""}  # the ERP is advanced here, by hand
    erp = data / "erp.sqlite"
    with pytest.MonkeyPatch.context() as mp, demo_deployment(data, quiet_erp) as dags:
        nightly, weekly = dags["erp_forecast_nightly"], dags["forecast_retrain_weekly"]
        url = connection_url("nightcast_demo_erp")
        simulated = HISTORY[1]

        def advance_to(day: date) -> None:
            nonlocal simulated
            while simulated < day:
                simulated += timedelta(days=1)
                demo_erp.advance(url, simulated)

        advance_to(FIRST)
        with _injected(erp, _blank_quantities(FIRST, BLANK_FIRST)):
            assert run_dag(nightly, FIRST) == "success"

        mp.setenv("NIGHTCAST_PROMOTION_MARGIN", "-1")
        mp.setenv("NIGHTCAST_BASELINE_MARGIN", "-1")
        assert run_dag(weekly, RETRAIN, hour=3) == "success"
        mp.delenv("NIGHTCAST_PROMOTION_MARGIN")
        mp.delenv("NIGHTCAST_BASELINE_MARGIN")

        advance_to(SECOND)
        assert run_dag(nightly, SECOND) == "success"

        advance_to(HELD_BACK)
        since = SECOND + timedelta(days=1)
        with _injected(
            erp,
            _blank_quantities(since, 1),
            f"update sales_order_line set qty = -5 where updated_at >= '{since}' "
            "and line_status <> 'returned' and qty <> ''",
        ):
            assert run_dag(nightly, HELD_BACK) == "failed"
        return UiWorld(get_settings(), {k: os.environ[k] for k in WORLD_VARS})
