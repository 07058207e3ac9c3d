"""A throwaway embedded deployment for end-to-end tests of the real DAGs.

``demo_deployment`` points Nightcast at a fresh data folder (and, optionally, a
PostgreSQL warehouse), migrates Airflow's metadata DB, generates a tiny demo ERP
and returns the parsed DAGs with retries off, so a failure surfaces at once
instead of after retry delays (``dag.test()`` honours them); with ``retries=True``
the tasks keep their retries but retry at once, for tests of what is retried.
``task_tries`` reads what Airflow recorded about each task instance of a run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

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


# What a deployment keeps under its data folder when lake, models and reports are local.
LOCAL_STORES = ("lake", "models", "reports")


def s3_storage_env(server: Any, name: str) -> dict[str, str]:
    """The environment of a deployment whose lake, models and reports are on the test
    object store (``tests/_s3.py``), under a fresh prefix."""
    import uuid

    root = f"s3://{server.bucket}/{name}-{uuid.uuid4().hex[:8]}"
    return {
        **server.env(),
        "NIGHTCAST_LAKE_URL": f"{root}/lake",
        "NIGHTCAST_MODELS_URL": f"{root}/models",
        "NIGHTCAST_REPORTS_URL": f"{root}/reports",
    }


@contextmanager
def demo_deployment(
    data: Path,
    extra_env: dict[str, str] | None = None,
    history: tuple[date, date] = HISTORY,
    *,
    retries: bool = False,
) -> Iterator[dict[str, Any]]:
    """Yield ``{dag_id: dag}`` for a deployment in ``data`` whose demo ERP holds the business
    days ``history`` (first, last); the environment is restored after.

    ``retries``: keep each task's retries (and its retry policy) but drop the delay
    between tries, which ``dag.test()`` would otherwise sit out.
    """
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
            start=history[0],
            end=history[1],
            seed=7,
            replace=True,
        )
        for dag in bag.dags.values():
            for t in dag.tasks:
                if retries:
                    t.retry_delay = timedelta(0)
                    t.retry_exponential_backoff = 0
                else:
                    t.retries = 0
        yield dict(bag.dags)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def logical_date(day: date, hour: int = 2) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def run_dag(dag: Any, day: date, hour: int = 2, *, keep: Collection[str] = ()) -> str:
    """Run ``dag`` for logical date ``day`` at ``hour`` UTC; returns 'success' or 'failed'.

    ``dag.test()`` runs every task; the tasks in ``keep`` are marked successful instead,
    as the scheduler leaves alone the tasks that a clear did not touch.
    """
    pattern = "|".join(re.escape(t) for t in keep) or None
    dr = dag.test(logical_date=logical_date(day, hour), mark_success_pattern=pattern)
    return str(dr.state).rsplit(".", 1)[-1].lower()


class Tries(NamedTuple):
    """What Airflow recorded about one task instance: its state and its tries."""

    state: str | None
    try_number: int
    max_tries: int
    earlier: tuple[str | None, ...]  # the states earlier tries ended in (task_instance_history)


def task_tries(dag_id: str, day: date, hour: int = 2) -> dict[str, Tries]:
    """``task_id`` (``task_id[i]`` for map index i) -> its :class:`Tries`, for the run of ``day``."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.taskinstancehistory import TaskInstanceHistory as TIH
    from airflow.utils.session import create_session
    from sqlalchemy import select

    def key(task_id: str, map_index: int) -> str:
        return task_id if map_index < 0 else f"{task_id}[{map_index}]"

    def name(state: Any) -> str | None:
        return None if state is None else str(getattr(state, "value", state))

    with create_session() as session:
        run_id = session.scalar(
            select(DagRun.run_id).where(
                DagRun.dag_id == dag_id, DagRun.logical_date == logical_date(day, hour)
            )
        )
        earlier: dict[str, list[str | None]] = {}
        for task_id, map_index, state in session.execute(
            select(TIH.task_id, TIH.map_index, TIH.state)
            .where(TIH.dag_id == dag_id, TIH.run_id == run_id)
            .order_by(TIH.try_number)
        ):
            earlier.setdefault(key(task_id, map_index), []).append(name(state))
        return {
            key(t, i): Tries(name(state), tries, max_tries, tuple(earlier.get(key(t, i), [])))
            for t, i, state, tries, max_tries in session.execute(
                select(TI.task_id, TI.map_index, TI.state, TI.try_number, TI.max_tries).where(
                    TI.dag_id == dag_id, TI.run_id == run_id
                )
            )
        }


def query(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with open_warehouse(get_settings().warehouse_url, ensure=False) as wh:
        return wh.fetchall(sql, params or [])


def checksums(schemas: tuple[str, ...], exclude_columns: tuple[str, ...] = ()) -> dict[str, str]:
    with open_warehouse(get_settings().warehouse_url, ensure=False) as wh:
        return wh.checksums(schemas, exclude_columns=exclude_columns)
