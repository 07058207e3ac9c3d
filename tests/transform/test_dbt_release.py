"""An in-process ``dbt build`` leaves the DuckDB warehouse free for other processes.

dbt-duckdb keeps its database handle in the process after a build; under
``airflow dags test`` / ``make demo`` (tasks in one process) that held the file's lock,
and on-call's ``nightcast quarantine replay`` from a shell waited two minutes and failed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nightcast.config import get_settings
from nightcast.transform.dbt import dbt_build
from nightcast.warehouse.base import open_warehouse


def test_another_process_can_write_the_warehouse_after_a_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("NIGHTCAST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_PATH", str(path))
    for var in ("NIGHTCAST_WAREHOUSE_URL", "NIGHTCAST_DBT_TARGET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    settings = get_settings()
    with open_warehouse(settings.warehouse_url):
        pass
    dbt_build(settings)
    other = subprocess.run(
        [sys.executable, "-c", f"import duckdb; duckdb.connect({str(path)!r}).close()"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 0, other.stderr[-1000:]
