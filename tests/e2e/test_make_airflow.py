"""`make airflow` (nightcast airflow): the UI comes up with the DAGs, unpausing the nightly DAG
runs and publishes a night the demo ERP serves, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _deployment import demo_deployment, query

from nightcast import demo_erp
from nightcast.config import connection_url
from nightcast.demo import scheduled_night

pytestmark = pytest.mark.e2e

NIGHTLY = "erp_forecast_nightly"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(url: str, token: str | None = None, method: str = "GET", body: Any = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _page(url: str, token: str | None) -> tuple[int, str]:
    """(status, body) of an HTML page, with the login's token or without."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Standalone:
    proc: subprocess.Popen[bytes]
    base: str
    token: str
    log: Path


@contextmanager
def standalone(tmp_path: Path) -> Iterator[Standalone]:
    """`nightcast airflow` on a free port, healthy and logged in as admin; Ctrl-C after."""
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
    }
    exe = Path(sys.executable).with_name("nightcast")
    log_path = tmp_path / "airflow.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [str(exe), "airflow"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        health: dict[str, Any] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = _call(f"{base}/api/v2/monitor/health")
                if health.get("scheduler", {}).get("status") == "healthy":
                    break
            except OSError:
                pass
            time.sleep(2)
        assert health.get("scheduler", {}).get("status") == "healthy", log_path.read_text()[-3000:]

        printed = log_path.read_text()
        assert "login: admin / " in printed
        password = printed.split("login: admin / ", 1)[1].split()[0]
        token = _call(
            f"{base}/auth/token", method="POST", body={"username": "admin", "password": password}
        )["access_token"]
        yield Standalone(proc, base, token, log_path)
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground process
        try:
            proc.wait(timeout=120)
        finally:
            log.close()


def _wait_for_run(af: Standalone, timeout: float) -> dict[str, Any]:
    """The nightly DAG's first run, once it has finished (or the last state seen)."""
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            runs = _call(f"{af.base}/api/v2/dags/{NIGHTLY}/dagRuns", af.token)["dag_runs"]
        except OSError:  # a slow answer while the tasks take both cores: ask again
            runs = []
        if runs:
            run = runs[0]
            if run["state"] in ("success", "failed"):
                break
        time.sleep(5)
    assert run, f"the scheduler created no {NIGHTLY} run within {timeout:.0f}s"
    return run


def test_unpaused_nightly_dag_publishes_a_night_the_demo_erp_serves_and_ctrl_c_stops_all(
    tmp_path: Path,
) -> None:
    """What a user does days after `make demo`: `make airflow`, Unpause, then Ctrl-C."""
    night = scheduled_night(datetime.now(UTC))
    # `make demo` stopped three days before the night the scheduler will pick.
    history = (night - timedelta(days=120), night - timedelta(days=3))
    home = tmp_path / "airflow_home"  # a metadata DB of its own: no runs, DAGs not yet seen
    isolated = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    (tmp_path / "data").mkdir()
    with demo_deployment(tmp_path / "data", isolated, history=history):
        # `nightcast airflow` fills in the embedded defaults, this one included.
        assert "NIGHTCAST_SIMULATED_SOURCES" not in os.environ
        with standalone(tmp_path) as af:
            assert (
                f"Demo: unpausing {NIGHTLY} runs business day {night}: source 'demo' first "
                f"simulates the 3 day(s) since {history[1]}"
            ) in af.log.read_text()
            deadline = time.monotonic() + 120
            dag_ids: set[str] = set()
            while time.monotonic() < deadline and len(dag_ids) < 2:
                dag_ids = {d["dag_id"] for d in _call(f"{af.base}/api/v2/dags", af.token)["dags"]}
                time.sleep(2)
            assert dag_ids == {NIGHTLY, "forecast_retrain_weekly"}
            assert _call(f"{af.base}/api/v2/importErrors", af.token)["total_entries"] == 0

            dag = _call(f"{af.base}/api/v2/dags/{NIGHTLY}", af.token, "PATCH", {"is_paused": False})
            assert dag["is_paused"] is False
            run = _wait_for_run(af, timeout=600)
            tis = _call(
                f"{af.base}/api/v2/dags/{NIGHTLY}/dagRuns/{run['dag_run_id']}/taskInstances",
                af.token,
            )["task_instances"]
            states = {t["task_id"]: t["state"] for t in tis}
            all_runs = _call(f"{af.base}/api/v2/dags/{NIGHTLY}/dagRuns", af.token)["dag_runs"]
            # The UI's Nightcast page (plugins/) is served here too, behind the login.
            page = _page(f"{af.base}/nightcast/", af.token)
            anonymous = _page(f"{af.base}/nightcast/", None)

        logical = datetime.fromisoformat(run["logical_date"])
        assert (run["run_type"], logical) == (
            "scheduled",
            datetime(night.year, night.month, night.day, 2, tzinfo=UTC),
        )
        assert run["state"] == "success", f"run {run['dag_run_id']}: {states}"
        assert len(all_runs) == 1, [r["dag_run_id"] for r in all_runs]
        assert demo_erp.last_simulated_day(connection_url("nightcast_demo_erp")) == night
        assert query("select status from forecast.runs") == [("published",)]
        assert page[0] == 200 and re.search(
            rf'<tr data-night="{night}"><td[^>]*>{night}</td>'
            r'<td data-field="status" class="ok"[^>]*>published</td>',
            page[1],
        ), page[1][-2000:]
        assert anonymous[0] == 401 and f'data-night="{night}"' not in anonymous[1]
        assert query(
            "select latest_published_run_date, is_stale from marts.forecast_freshness"
        ) == [(night, False)]

    proc = af.proc
    deadline = time.monotonic() + 30
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    leftovers = subprocess.run(["pgrep", "-f", f"{home}|airflow (scheduler|dag-processor|triggerer|api_server)"],
                               capture_output=True, text=True).stdout.split()  # fmt: skip
    assert proc.returncode == 0
    assert leftovers == [], f"orphan Airflow processes: {leftovers}"
