"""End to end: bad nights through the real erp_forecast_nightly DAG (dag.test) on a tiny ERP.

Night 1 is clean and publishes. Each following night injects one problem straight into
the demo ERP's SQLite tables (negative quantities, a renamed column, a null spike, a
stale source); the run must fail in the right task with a message naming the problem,
nothing may reach ``raw``, BI keeps night 1's forecast and the freshness view says
stale and why. The injection is then undone (the ERP file is restored) and the last,
clean night publishes again. DuckDB warehouse; the tests run in order and share state.

The tasks keep their retries (without the delay): bad data, schema drift and the like
must fail after one try, and on-call's rerun is the command the failure alert printed,
run with Airflow's CLI against the same metadata DB. An unreachable ERP is retried.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Collection, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from _deployment import HISTORY, Tries, checksums, demo_deployment, query, run_dag, task_tries

from nightcast import demo_erp
from nightcast.config import connection_url, get_settings
from nightcast.monitoring.alerts import check_deadline, deadline_at, deadline_rerun_hint
from nightcast.orchestration import NIGHTLY_DAG_ID, downstream_of

pytestmark = pytest.mark.e2e

NIGHT1 = date(2025, 5, 1)


class Nights:
    """The DAG plus the demo ERP it reads; remembers the last simulated day."""

    def __init__(self, dag: Any, erp: Path) -> None:
        self.dag = dag
        self.erp = erp
        self.simulated = HISTORY[1]
        self.published = NIGHT1  # what BI shows while later nights fail

    def advance_to(self, day: date) -> None:
        while self.simulated < day:
            self.simulated += timedelta(days=1)
            demo_erp.advance(connection_url("nightcast_demo_erp"), self.simulated)

    def run(self, day: date, keep: Collection[str] = ()) -> str:
        return run_dag(self.dag, day, keep=keep)


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nights]:
    data = tmp_path_factory.mktemp("bad-nights")
    # The nights below move the demo ERP themselves (a stale source must stay stale), so
    # no extract may simulate days in it, whatever an earlier test left in the environment.
    quiet_erp = {"NIGHTCAST_SIMULATED_SOURCES": ""}
    with demo_deployment(data, quiet_erp, retries=True) as dags:
        yield Nights(dags["erp_forecast_nightly"], data / "erp.sqlite")


def raw_checksums() -> dict[str, str]:
    return checksums(("raw",))


def erp_sql(nights: Nights, *statements: str) -> None:
    engine = sa.create_engine(f"sqlite:///{nights.erp}")
    with engine.begin() as conn:
        for stmt in statements:
            conn.execute(sa.text(stmt))
    engine.dispose()


def bad_night(nights: Nights, day: date, inject: Callable[[], None]) -> str:
    """Run ``day`` with ``inject`` applied to the ERP, then undo it; returns the run state."""
    backup = nights.erp.with_suffix(".clean")
    shutil.copyfile(nights.erp, backup)
    try:
        inject()
        return nights.run(day)
    finally:
        shutil.copyfile(backup, nights.erp)
        backup.unlink()


def assert_bi_still_on(published: date, day: date, message_part: str) -> None:
    status, message = query("select status, message from forecast.runs where run_date = ?", [day])[
        0
    ]
    assert status == "failed", (day, status, message)
    assert message and message_part in message, message
    assert query("select distinct run_date from marts.forecast_latest") == [(published,)]
    stale, reason, attempted = query(
        "select is_stale, stale_reason, latest_attempted_run_date from marts.forecast_freshness"
    )[0]
    assert stale is True and attempted == day
    assert reason and "failed" in reason and message_part in reason, reason
    assert published.isoformat() in reason  # 'BI shows run <published>'
    assert not query("select 1 from ops.task_runs where run_date = ? and task = 'load'", [day])


def assert_only_behind_the_clock(published: date) -> None:
    """BI shows ``published`` and no run failed; the view says stale only because these
    nights lie in the past of the real clock (its publish-deadline rule is tested in
    tests/transform/test_forecast_freshness.py)."""
    shown, stale, reason = query(
        "select latest_published_run_date, is_stale, stale_reason from marts.forecast_freshness"
    )[0]
    assert (shown, stale) == (published, True)
    assert reason.startswith("no run for ") and reason.endswith(f"BI shows run {published}"), reason


def test_clean_first_night_publishes(nights: Nights) -> None:
    nights.advance_to(NIGHT1)
    assert nights.run(NIGHT1) == "success"
    assert query("select status from forecast.runs where run_date = ?", [NIGHT1]) == [
        ("published",)
    ]
    assert_only_behind_the_clock(NIGHT1)
    assert query("select decision from audit.publications where run_date = ?", [NIGHT1]) == [
        ("published",)
    ]


def test_negative_quantities_stop_the_run_at_the_gate(nights: Nights) -> None:
    day = NIGHT1 + timedelta(days=1)
    nights.advance_to(day)
    before = raw_checksums()
    state = bad_night(
        nights,
        day,
        lambda: erp_sql(
            nights,
            f"update sales_order_line set qty = -5 where updated_at >= '{day}' "
            "and line_status <> 'returned'",
        ),
    )
    assert state == "failed"
    assert raw_checksums() == before
    assert_bi_still_on(nights.published, day, "validate failed: Data-quality gate failed")
    failed = query(
        "select suite, expectation, column_name, severity from ops.dq_results "
        "where run_date = ? and not success",
        [day],
    )
    assert ("order_lines", "expect_column_values_to_be_between", "quantity", "critical") in failed
    # The page's first line (also BI's stale reason) names table, check, column and values.
    (message,) = query("select message from forecast.runs where run_date = ?", [day])[0]
    assert message.startswith(
        "validate failed: Data-quality gate failed: order_lines: "
        "expect_column_values_to_be_between on quantity"
    ), message
    assert "top offending values -5.0 x" in message and "(source demo)" in message, message
    (page,) = query(
        "select message from ops.alerts where run_date = ? and task_id = 'validate'", [day]
    )[0]
    assert f"Error: {message.removeprefix('validate failed: ')}" in page
    # The gate's decision is audited, append-only.
    held = query("select decision, reason from audit.publications where run_date = ?", [day])
    assert [d for d, _ in held] == ["held_back"] and "Data-quality gate failed" in held[0][1]
    # Bad data fails the same way on every try: one try, although two retries were allowed.
    tries = task_tries(NIGHTLY_DAG_ID, day)
    assert tries["validate"] == Tries("failed", 1, 2, ())
    assert tries["clean_demo"].state == "success" and tries["load"].state == "upstream_failed"


def rerun_command(hint: str) -> str:
    """The shell command of a ``Rerun (CLI): ...`` line, exactly as the alert printed it."""
    (line,) = [x for x in hint.splitlines() if x.startswith("Rerun (CLI): ")]
    return line.removeprefix("Rerun (CLI): ")


def run_in_shell(command: str) -> None:
    """Run ``command`` as on-call would paste it, with this virtualenv's ``airflow``."""
    venv_bin = Path(sys.executable).parent
    done = subprocess.run(
        ["bash", "-c", command],
        env={**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_alerts_rerun_command_recovers_the_night_once_the_data_is_fixed(
    nights: Nights,
) -> None:
    day = NIGHT1 + timedelta(days=1)  # the negative quantities: bad_night restored the ERP
    (hint,) = query(
        "select rerun_hint from ops.alerts where run_date = ? and task_id = 'validate'", [day]
    )[0]
    # validate would re-check the same cleaned rows: the rerun starts at the extract.
    command = rerun_command(hint)
    assert command.startswith(f"airflow tasks clear {NIGHTLY_DAG_ID} -t extract_demo -d ")
    before = task_tries(NIGHTLY_DAG_ID, day)
    run_in_shell(command)
    after = task_tries(NIGHTLY_DAG_ID, day)
    intended = {"extract_demo", *downstream_of(nights.dag)["extract_demo"]}
    assert {t for t, tries in after.items() if tries.state is None} == intended
    untouched = {t: tries.state for t, tries in after.items() if t not in intended}
    assert untouched == {t: before[t].state for t in untouched} == {"start_run": "success"}

    # The scheduler would now run the cleared tasks; dag.test() runs them, keeping the rest.
    assert nights.run(day, keep=untouched) == "success"
    assert query("select status from forecast.runs where run_date = ?", [day]) == [("published",)]
    assert query("select distinct run_date from marts.forecast_latest") == [(day,)]
    decisions = query("select decision from audit.publications where run_date = ?", [day])
    assert sorted(d for (d,) in decisions) == ["held_back", "published"]
    nights.published = day


def test_renamed_column_fails_the_extract_and_records_drift(nights: Nights) -> None:
    day = NIGHT1 + timedelta(days=2)
    nights.advance_to(day)
    before = raw_checksums()
    state = bad_night(
        nights,
        day,
        lambda: erp_sql(
            nights,
            "alter table product rename column list_price to price_eur",
            "alter table product add column shelf_life_days integer",
        ),
    )
    assert state == "failed"
    assert raw_checksums() == before
    assert_bi_still_on(nights.published, day, "extract_demo failed: schema drift")
    (message,) = query("select message from forecast.runs where run_date = ?", [day])[0]
    assert "'demo'" in message and "'items'" in message and "list_price" in message
    drift = query(
        "select source, table_name, column_name, change, landed_path from ops.schema_drift "
        "where run_date = ? order by change, column_name",
        [day],
    )
    assert [(s, t, c, ch) for s, t, c, ch, _ in drift] == [
        ("demo", "items", "price_eur", "added"),
        ("demo", "items", "shelf_life_days", "added"),
        ("demo", "items", "list_price", "missing"),
    ]
    assert all(p.endswith(f"/raw/demo/items/date={day}") for *_, p in drift)
    assert task_tries(NIGHTLY_DAG_ID, day)["extract_demo"] == Tries("failed", 1, 2, ())


def test_null_spike_in_a_required_column_trips_the_quarantine_rate(nights: Nights) -> None:
    # qty is NOT NULL in the ERP, so the spike is empty strings: null tokens once landed.
    day = NIGHT1 + timedelta(days=3)
    nights.advance_to(day)
    before = raw_checksums()
    state = bad_night(
        nights,
        day,
        lambda: erp_sql(
            nights, f"update sales_order_line set qty = '' where updated_at >= '{day}'"
        ),
    )
    assert state == "failed"
    assert raw_checksums() == before
    assert_bi_still_on(nights.published, day, "validate failed")
    failed = query(
        "select expectation, severity, observed_value from ops.dq_results "
        "where run_date = ? and suite = 'order_lines' and not success",
        [day],
    )
    assert any(e == "nightcast_quarantine_rate" and s == "critical" for e, s, _ in failed), failed
    assert_held_back_night_is_inspectable(nights, day)


def assert_held_back_night_is_inspectable(nights: Nights, day: date) -> None:
    """The rows that stopped the night are queryable, the page names them, the report
    says nothing was published, and replay does not load a night the gate stopped."""
    (observed,) = [
        o
        for (o,) in query(
            "select observed_value from ops.dq_results where run_date = ? "
            "and suite = 'order_lines' and expectation = 'nightcast_quarantine_rate' "
            "and severity = 'critical'",
            [day],
        )
    ]
    rejected = query(
        "select count(distinct row_number), min(column_name), min(reason), count(*) "
        "from ops.quarantine where run_date = ? and table_name = 'order_lines' and held_back",
        [day],
    )[0]
    assert rejected[:3] == (
        int(observed.split("(")[1].split(" of ")[0]),
        "quantity",
        "missing_required",
    )
    (message,) = query("select message from forecast.runs where run_date = ?", [day])[0]
    assert message.startswith(
        "validate failed: Data-quality gate failed: order_lines: nightcast_quarantine_rate "
        "on quantity"
    ), message
    assert "top offending values quantity=" in message and "(missing_required) x" in message

    page = (get_settings().data_dir / "reports" / f"date={day}" / "nightly_report.html").read_text()
    assert "nothing published</b> for this run date; BI shows run " + str(nights.published) in page
    assert f"{rejected[0]:,} input rows rejected by the cleaner; the night was held back" in page
    assert "-100.0%" not in page

    done = subprocess.run(
        [str(Path(sys.executable).with_name("nightcast")), "quarantine", "replay",
         "--run-date", str(day), "--source", "demo"],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        "held back by the data-quality gate" in done.stdout and "total: 0 replayed" in done.stdout
    )
    assert query("select count(*) from ops.quarantine where run_date = ? and held_back", [day]) == [
        (rejected[3],)
    ]


def test_stale_source_fails_freshness(nights: Nights) -> None:
    # The ERP stops changing after night 4; the run for a week later sees only old rows.
    day = NIGHT1 + timedelta(days=8)
    before = raw_checksums()
    assert nights.run(day) == "failed"
    assert raw_checksums() == before
    assert_bi_still_on(nights.published, day, "validate failed")
    failed = query(
        "select expectation, details from ops.dq_results where run_date = ? and not success",
        [day],
    )
    assert any(e == "nightcast_freshness" and "stale" in d for e, d in failed), failed


def test_next_clean_night_recovers(nights: Nights) -> None:
    day = NIGHT1 + timedelta(days=9)
    nights.advance_to(day)
    before = raw_checksums()
    assert nights.run(day) == "success"
    assert raw_checksums() != before
    assert query("select status from forecast.runs where run_date = ?", [day]) == [("published",)]
    assert query("select distinct run_date from marts.forecast_latest") == [(day,)]
    assert_only_behind_the_clock(day)  # the failed nights' reasons are gone
    nights.published = day


def test_an_unreachable_erp_is_retried_before_it_pages(
    nights: Nights, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = NIGHT1 + timedelta(days=10)
    nights.advance_to(day)
    gone = nights.erp.parent / "gone" / "erp.sqlite"  # no such folder: the ERP cannot be opened
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_DEMO_ERP", f"sqlite:///{gone}")
    assert nights.run(day) == "failed"
    assert_bi_still_on(nights.published, day, "extract_demo failed")
    # Two retries (max_tries 2), each earlier try failed; one page, after the last try.
    assert task_tries(NIGHTLY_DAG_ID, day)["extract_demo"] == Tries(
        "failed", 3, 2, ("failed", "failed")
    )
    alerts = query("select kind, task_id from ops.alerts where run_date = ?", [day])
    assert alerts == [("task_failed", "extract_demo")]


def test_the_deadline_alert_reruns_the_failed_tasks(nights: Nights) -> None:
    day = NIGHT1 + timedelta(days=10)  # extract_demo failed: the ERP could not be opened
    settings = get_settings()
    (failure_hint,) = query(
        "select rerun_hint from ops.alerts where run_date = ? and kind = 'task_failed'", [day]
    )[0]
    missed = check_deadline(settings, day, deadline_at(settings, day) + timedelta(minutes=1))
    assert missed is not None and missed.rerun_hint == failure_hint
    # Without a failure alert (a run killed, say) it clears the run's failed tasks; as printed:
    before = {t: tries.state for t, tries in task_tries(NIGHTLY_DAG_ID, day).items()}
    run_in_shell(rerun_command(deadline_rerun_hint(NIGHTLY_DAG_ID, day, settings.timezone)))
    after = {t: tries.state for t, tries in task_tries(NIGHTLY_DAG_ID, day).items()}
    failed = {t for t, state in before.items() if state in ("failed", "upstream_failed")}
    assert {"extract_demo", "load", "publish"} <= failed
    assert after == {t: None if t in failed else state for t, state in before.items()}
    assert after["start_run"] == after["report"] == "success"
