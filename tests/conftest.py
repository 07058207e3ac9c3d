"""Test-wide environment: an isolated Airflow home and data folder per session.

Set at import time, before anything imports Airflow, which reads its
configuration once.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="nightcast-tests-"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(_SESSION_DIR / "airflow_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_SESSION_DIR / 'airflow_home' / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "NIGHTCAST_DATA_DIR": str(_SESSION_DIR / "data"),
        "NIGHTCAST_WAREHOUSE_PATH": str(_SESSION_DIR / "data" / "warehouse.duckdb"),
        "AIRFLOW_CONN_NIGHTCAST_DEMO_ERP": f"sqlite:///{_SESSION_DIR / 'data' / 'demo_erp.sqlite'}",
        "LIGHTGBM_NUM_THREADS": "1",
    }
)
for _sub in ("airflow_home", "data"):
    (_SESSION_DIR / _sub).mkdir(parents=True, exist_ok=True)


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """Undo what a test wrote to os.environ: commands under test do write it (``cli.main``
    fills in the embedded defaults, e.g. NIGHTCAST_SIMULATED_SOURCES=demo), and a value
    left behind would change what later tests' nights do."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)
