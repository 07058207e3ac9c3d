"""``marts.forecast_freshness`` on DuckDB and on PostgreSQL: stale by the clock, at query time.

dbt builds the view once per backend, together with its unit tests (which pin the clock
and the deployment's time zone and deadline, so they check the same instants on any
day). Then runs are written to ``forecast.runs`` relative to the real current date and
the view is read again with nothing rebuilt: what it says must follow the clock when it
is queried, and agree with the night ``nightcast deadline-check`` considers due.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _deployment import postgres_warehouse_env
from _services import fresh_postgres_database
from dbt.cli.main import dbtRunner, dbtRunnerResult

from nightcast.config import get_settings
from nightcast.monitoring.alerts import latest_due_run_date
from nightcast.warehouse.base import open_warehouse

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
# Not UTC, so the local date differs from UTC's for part of every day; deadline not 06:30.
TIMEZONE = "Asia/Kolkata"
DEADLINE = "05:45"

COLUMNS = (
    "latest_published_run_date, latest_attempted_run_date, latest_attempted_status, "
    "expected_run_date, is_stale, stale_reason"
)


@dataclass
class Built:
    backend: str
    url: str
    unit_tests: dict[str, str]  # unit test name -> status


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    tmp = tmp_path_factory.mktemp(f"freshness-{request.param}")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("HOST", "PORT", "USER", "PASSWORD", "DBNAME"):
            mp.delenv(f"NIGHTCAST_PG_{var}", raising=False)
        if request.param == "postgres":
            url = fresh_postgres_database("nightcast_freshness_test")
            for key, value in postgres_warehouse_env(url).items():
                mp.setenv(key, value)
        else:
            url = f"duckdb:///{tmp / 'warehouse.duckdb'}"
            mp.setenv("NIGHTCAST_WAREHOUSE_PATH", str(tmp / "warehouse.duckdb"))
            mp.delenv("NIGHTCAST_DBT_TARGET", raising=False)
            mp.delenv("NIGHTCAST_WAREHOUSE_URL", raising=False)
        mp.setenv("NIGHTCAST_TIMEZONE", TIMEZONE)
        mp.setenv("NIGHTCAST_PUBLISH_DEADLINE", DEADLINE)
        mp.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        with open_warehouse(url):
            pass  # the pipeline's schemas and tables, forecast.runs among them
        # The view and its data tests first, then its unit tests on their own: a unit test
        # that fails would otherwise skip the view, and the clock tests below need it.
        build = _dbt(tmp, "build", "--target", request.param, "--select", "+forecast_freshness",
                     "--exclude", "test_type:unit", "--indirect-selection", "cautious")  # fmt: skip
        assert build.success, _failed(build)
        unit = _dbt(tmp, "test", "--target", request.param,
                    "--select", "forecast_freshness,test_type:unit")  # fmt: skip
        assert unit.result is not None, unit.exception
        unit_tests = {r.node.name: str(r.status) for r in unit.result}
        yield Built(request.param, url, unit_tests)


def _dbt(tmp: Path, *args: str) -> dbtRunnerResult:
    return dbtRunner().invoke(
        [
            *args,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(tmp / "target"),
            "--log-path",
            str(tmp / "logs"),
            "--no-use-colors",
        ]
    )


def _failed(result: dbtRunnerResult) -> object:
    if result.result is None:
        return result.exception
    return {
        r.node.unique_id: r.message for r in result.result if str(r.status) in ("error", "fail")
    }


def runs(url: str, *rows: tuple[date, str, str | None]) -> None:
    """Replace forecast.runs with ``rows`` of (run_date, status, message)."""
    with open_warehouse(url, ensure=False) as wh:
        wh.execute("delete from forecast.runs")
        for run_date, status, message in rows:
            wh.execute(
                "insert into forecast.runs (run_date, model_version, status, message, "
                "published_at) values (?, 'm1', ?, ?, ?)",
                [
                    run_date,
                    status,
                    message,
                    datetime.combine(run_date + timedelta(days=1), datetime.min.time())
                    if status == "published"
                    else None,
                ],
            )


def due_now() -> date:
    return latest_due_run_date(get_settings(), datetime.now(UTC))


def test_unit_tests_with_a_pinned_clock_pass(built: Built) -> None:
    assert sorted(built.unit_tests) == [
        "test_freshness_failed_night_stale_after_the_deadline",
        "test_freshness_failed_night_stale_before_its_deadline",
        "test_freshness_fresh_before_the_deadline",
        "test_freshness_missing_night_stale_after_the_deadline",
        "test_freshness_uses_the_deployments_deadline",
        "test_freshness_uses_the_deployments_time_zone",
    ], built.unit_tests
    assert set(built.unit_tests.values()) == {"pass"}, built.unit_tests


def _state(
    url: str, setup: Callable[[date], list[tuple[date, str, str | None]]]
) -> tuple[date, dict[str, Any]]:
    """Write the runs ``setup`` makes for the night due now (as deadline-check computes
    it), then read the view: that night and the view's row."""
    names = [c.strip() for c in COLUMNS.split(",")]
    for _ in range(3):  # the clock may cross the deadline in between: start again
        due = due_now()
        runs(url, *setup(due))
        with open_warehouse(url, ensure=False) as wh:
            row = wh.fetchone(f"select {COLUMNS} from marts.forecast_freshness")
        if due_now() == due:
            assert row is not None
            return due, dict(zip(names, row, strict=True))
        time.sleep(1)
    raise AssertionError("the clock kept crossing the publish deadline")


def test_a_night_that_never_ran_is_stale_once_due(built: Built) -> None:
    due, row = _state(built.url, lambda due: [(due - timedelta(days=1), "published", None)])
    previous = due - timedelta(days=1)
    assert row["latest_attempted_status"] == "published"  # no run failed: none happened
    assert row["is_stale"] is True
    assert row["expected_run_date"] == due
    assert row["stale_reason"] == (
        f"no run for {due} was published by {DEADLINE}; BI shows run {previous}"
    )


def test_a_failed_night_is_stale_and_says_why(built: Built) -> None:
    due, row = _state(
        built.url,
        lambda due: [
            (due - timedelta(days=1), "published", None),
            (due, "failed", "load failed: boom"),
        ],
    )
    previous = due - timedelta(days=1)
    assert (row["expected_run_date"], row["is_stale"]) == (due, True)
    assert row["stale_reason"] == (
        f"no run for {due} was published by {DEADLINE}; BI shows run {previous}; "
        f"latest run {due} is failed: load failed: boom"
    )


def test_the_due_night_published_is_fresh(built: Built) -> None:
    # Also published: the night not due yet, when its run finished early.
    due, row = _state(
        built.url,
        lambda due: [(due, "published", None), (due + timedelta(days=1), "published", None)],
    )
    assert row["expected_run_date"] == due
    assert (row["is_stale"], row["stale_reason"]) == (False, None)


def test_no_run_at_all_is_stale(built: Built) -> None:
    runs(built.url)
    with open_warehouse(built.url, ensure=False) as wh:
        assert wh.fetchone("select is_stale, stale_reason from marts.forecast_freshness") == (
            True,
            "no forecast run has been recorded",
        )
