"""The publish deadline as an Airflow deadline alert, fired by a real triggerer.

A night fails (its ERP is unreachable); Airflow stored the run's deadline when it
created the run (D+1 at NIGHTCAST_PUBLISH_DEADLINE) and, the run having failed, kept
it. The scheduler's step for an expired deadline (``Deadline.handle_miss``, run here
as its loop runs it) queues the callback; a real ``airflow triggerer`` runs it, and
the 'deadline_missed' alert lands in ops.alerts once, with the watchdog's
`nightcast deadline-check` then finding it already raised.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from _deployment import demo_deployment, logical_date, query, run_dag

from nightcast.config import get_settings
from nightcast.monitoring.alerts import deadline_at
from nightcast.orchestration import publish_deadline_interval

pytestmark = pytest.mark.e2e

NIGHT = date(2025, 5, 1)
BIN = Path(sys.executable).parent


def test_a_failed_night_pages_through_airflows_deadline_alert(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.models.deadline import Deadline
    from airflow.utils.session import create_session
    from sqlalchemy import select

    data = tmp_path_factory.mktemp("deadline")
    with demo_deployment(data, {"NIGHTCAST_TIMEZONE": "Europe/Berlin"}) as dags:
        dag = dags["erp_forecast_nightly"]
        settings = get_settings()
        (alert,) = dag.deadline
        assert alert.interval == publish_deadline_interval(settings)
        erp = os.environ["AIRFLOW_CONN_NIGHTCAST_DEMO_ERP"]
        os.environ["AIRFLOW_CONN_NIGHTCAST_DEMO_ERP"] = f"sqlite:///{data / 'gone' / 'erp.sqlite'}"
        try:
            assert run_dag(dag, NIGHT) == "failed"
        finally:
            os.environ["AIRFLOW_CONN_NIGHTCAST_DEMO_ERP"] = erp

        with create_session() as session:
            (deadline,) = session.scalars(
                select(Deadline)
                .join(DagRun, Deadline.dagrun_id == DagRun.id)
                .where(DagRun.dag_id == dag.dag_id, DagRun.logical_date == logical_date(NIGHT))
            ).all()
            assert not deadline.missed
            # Airflow's time is the deployment's: D+1 06:30 in Berlin (summer: 04:30 UTC),
            # give or take the hour of a daylight-saving change between then and today.
            expected = deadline_at(settings, NIGHT).astimezone(UTC)
            assert abs((deadline.deadline_time - expected).total_seconds()) in (0, 3600)
            deadline.handle_miss(session)  # what the scheduler's loop does once it is due

        triggerer = subprocess.Popen(
            [str(BIN / "airflow"), "triggerer"],
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            alerts: list[tuple[str, str]] = []
            give_up = time.monotonic() + 180
            while not alerts and time.monotonic() < give_up and triggerer.poll() is None:
                time.sleep(2)
                alerts = query(
                    "select kind, message from ops.alerts where run_date = ? "
                    "and kind = 'deadline_missed'",
                    [NIGHT],
                )
        finally:
            triggerer.terminate()
            out, _ = triggerer.communicate(timeout=60)
        assert len(alerts) == 1, out[-4000:]
        ((_, message),) = alerts
        assert "not published by 2025-05-02T06:30:00+02:00" in message
        assert "run status: failed" in message

        watchdog = subprocess.run(
            [str(BIN / "nightcast"), "deadline-check", "--run-date", NIGHT.isoformat()],
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert watchdog.returncode == 1 and "already raised" in watchdog.stdout, watchdog
        assert query("select count(*) from ops.alerts where kind = 'deadline_missed'")[0][0] == 1
    assert datetime.now(UTC) > expected  # the 2025 deadline had indeed passed
