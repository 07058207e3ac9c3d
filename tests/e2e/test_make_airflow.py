"""`make airflow` (nightcast airflow): the UI comes up with the DAGs, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str | None = None) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_airflow_standalone_serves_the_dags_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
    }
    exe = Path(sys.executable).with_name("nightcast")
    log = (tmp_path / "airflow.log").open("w")
    proc = subprocess.Popen(
        [str(exe), "airflow"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        health: dict[str, Any] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = _get(f"{base}/api/v2/monitor/health")
                if health.get("scheduler", {}).get("status") == "healthy":
                    break
            except OSError:
                pass
            time.sleep(2)
        assert health.get("scheduler", {}).get("status") == "healthy", (
            tmp_path / "airflow.log"
        ).read_text()[-3000:]

        printed = (tmp_path / "airflow.log").read_text()
        assert "login: admin / " in printed
        password = printed.split("login: admin / ", 1)[1].split()[0]
        req = urllib.request.Request(
            f"{base}/auth/token", data=json.dumps({"username": "admin", "password": password}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            token = json.loads(resp.read())["access_token"]
        dag_ids: set[str] = set()
        while time.monotonic() < deadline and len(dag_ids) < 2:
            dag_ids = {d["dag_id"] for d in _get(f"{base}/api/v2/dags", token)["dags"]}
            time.sleep(2)
        assert dag_ids == {"erp_forecast_nightly", "forecast_retrain_weekly"}
        assert _get(f"{base}/api/v2/importErrors", token)["total_entries"] == 0
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground process
        try:
            proc.wait(timeout=120)
        finally:
            log.close()
    deadline = time.monotonic() + 30
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    leftovers = subprocess.run(["pgrep", "-f", f"{os.environ['AIRFLOW_HOME']}|airflow (scheduler|dag-processor|triggerer|api_server)"],
                               capture_output=True, text=True).stdout.split()  # fmt: skip
    assert proc.returncode == 0
    assert leftovers == [], f"orphan Airflow processes: {leftovers}"
