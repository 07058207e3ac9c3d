"""A throwaway embedded deployment for end-to-end tests of the real DAGs.

``demo_deployment`` points Nightcast at a fresh data folder (and, optionally, a
PostgreSQL warehouse), migrates Airflow's metadata DB, generates a tiny demo ERP
and returns the parsed DAGs with retries off, so a failure surfaces at once
instead of after retry delays (``dag.test()`` honours them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from nightcast import demo_erp
from nightcast.config import connection_url, get_settings
from nightcast.warehouse.base import open_warehouse

ROOT = Path(__file__).resolve().parents[1]
HISTORY = (date(2025, 1, 1), date(2025, 4, 30))


def postgres_warehouse_env(url: str) -> dict[str, str]:
    """Settings that send the warehouse and dbt to the PostgreSQL database at ``url``."""
    return {
        "NIGHTCAST_WAREHOUSE_URL": url,
        "NIGHTCAST_DBT_TARGET": "postgres",
        "NIGHTCAST_PG_HOST": "127.0.0.1",
        "NIGHTCAST_PG_PORT": "5432",
        "NIGHTCAST_PG_USER": "postgres",
        "NIGHTCAST_PG_PASSWORD": "",
        "NIGHTCAST_PG_DBNAME": url.rsplit("/", 1)[1],
    }


@contextmanager
def demo_deployment(
    data: Path, extra_env: dict[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Yield ``{dag_id: dag}`` for a deployment in ``data``; the environment is restored after."""
    env = {
        "NIGHTCAST_DATA_DIR": str(data),
        "NIGHTCAST_WAREHOUSE_PATH": str(data / "warehouse.duckdb"),
        "AIRFLOW_CONN_NIGHTCAST_DEMO_ERP": f"sqlite:///{data / 'erp.sqlite'}",
        **(extra_env or {}),
    }
    touched = [*env, "NIGHTCAST_WAREHOUSE_URL", "NIGHTCAST_DBT_TARGET"]
    saved = {k: os.environ.get(k) for k in touched}
    for key in ("NIGHTCAST_WAREHOUSE_URL", "NIGHTCAST_DBT_TARGET"):
        os.environ.pop(key, None)  # DuckDB unless extra_env says otherwise
    os.environ.update(env)
    try:
        subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
            check=True,
            capture_output=True,
            env=os.environ.copy(),
        )
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(ROOT / "dags"))
        assert bag.import_errors == {}
        demo_erp.generate(
            connection_url("nightcast_demo_erp"),
            size="tiny",
            start=HISTORY[0],
            end=HISTORY[1],
            seed=7,
            replace=True,
        )
        for dag in bag.dags.values():
            for t in dag.tasks:
                t.retries = 0
        yield dict(bag.dags)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_dag(dag: Any, day: date, hour: int = 2) -> str:
    """Run ``dag`` for logical date ``day`` at ``hour`` UTC; returns 'success' or 'failed'."""
    dr = dag.test(logical_date=datetime(day.year, day.month, day.day, hour, tzinfo=UTC))
    return str(dr.state).rsplit(".", 1)[-1].lower()


def query(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with open_warehouse(get_settings().warehouse_url, ensure=False) as wh:
        return wh.fetchall(sql, params or [])


def checksums(schemas: tuple[str, ...], exclude_columns: tuple[str, ...] = ()) -> dict[str, str]:
    with open_warehouse(get_settings().warehouse_url, ensure=False) as wh:
        return wh.checksums(schemas, exclude_columns=exclude_columns)
