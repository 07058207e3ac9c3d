"""The lock against what the deployment configures: every executor, provider, hook,
driver and metrics client named in docker-compose.yaml loads from the pinned packages.

A lock that resolves is not a lock that runs: celery 5.7 with
apache-airflow-providers-celery 3.26 installed fine and crashed every scheduler and
worker at start-up (``cannot import name 'retry' from 'celery.backends.database'``).
Each check runs in a fresh interpreter configured with the compose file's own
AIRFLOW__* settings, the way a container starts.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]

# What a container does at start-up with the compose file's settings; prints what it loaded.
_PROBE = textwrap.dedent(
    """
    import json, os, sys
    from urllib.parse import urlsplit

    loaded = {}
    # The executor the scheduler and workers load (CeleryExecutor and its worker utilities).
    from airflow.executors.executor_loader import ExecutorLoader
    name = ExecutorLoader.get_default_executor_name()
    cls, _ = ExecutorLoader.import_executor_cls(name)
    loaded["executor"] = f"{cls.__module__}.{cls.__name__}"
    import airflow.providers.celery.executors.celery_executor_utils as utils
    from airflow.providers.celery.executors.celery_executor import app
    loaded["celery_app"] = app.main or "airflow.providers.celery.executors.celery_executor"
    # `airflow celery worker|flower` commands exist in this Airflow's CLI.
    from airflow.cli import cli_parser
    parser = cli_parser.get_parser()
    for argv in (["celery", "worker", "--queues", "default"], ["celery", "flower"]):
        parser.parse_args(argv)
    import flower  # noqa: F401  (airflow celery flower)
    # The broker transport and the result backend, resolved the way Celery does.
    from kombu import Connection
    conn = Connection(os.environ["AIRFLOW__CELERY__BROKER_URL"])
    loaded["broker_transport"] = type(conn.transport).__module__
    from celery.app.backends import by_url
    backend_cls, backend_url = by_url(os.environ["AIRFLOW__CELERY__RESULT_BACKEND"])
    loaded["result_backend"] = f"{backend_cls.__module__}.{backend_cls.__name__}"
    # SQLAlchemy dialects + DBAPI drivers of the metadata DB (sync and async) and the result backend.
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",):
        engine = sa.create_engine(os.environ[key])
        loaded[key] = f"{engine.dialect.name}+{engine.dialect.driver}"
    engine = create_async_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"])
    loaded["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = f"{engine.dialect.name}+{engine.dialect.driver}"
    engine = sa.create_engine(backend_url)
    loaded["result_backend_driver"] = f"{engine.dialect.name}+{engine.dialect.driver}"
    # The auth manager of the api-server.
    from airflow.configuration import conf
    loaded["auth_manager"] = conf.getimport("core", "auth_manager").__name__
    # StatsD: Airflow's own client class and Nightcast's sender.
    from airflow.observability.metrics.statsd_logger import get_statsd_logger
    loaded["statsd"] = type(get_statsd_logger()).__name__
    # The warehouse (psycopg 3) and the demo ERP (PyMySQL) drivers Nightcast uses.
    from nightcast.config import airflow_uri_to_sqlalchemy
    for key in ("NIGHTCAST_WAREHOUSE_URL", "AIRFLOW_CONN_NIGHTCAST_DEMO_ERP"):
        engine = sa.create_engine(airflow_uri_to_sqlalchemy(os.environ[key]))
        loaded[key] = f"{engine.dialect.name}+{engine.dialect.driver}"
    print(json.dumps(loaded))
    """
)


def _compose_env() -> dict[str, str]:
    doc = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    env: dict[str, Any] = doc["services"]["airflow-scheduler"]["environment"]

    # Resolve ${VAR:?...}/${VAR:-default} with throwaway values; nothing connects.
    def value(text: str) -> str:
        return re.sub(
            r"\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}",
            lambda m: m[3] if m[2] == "-" else f"{m[1].lower().replace('_', '')}0",
            str(text),
        )

    return {k: value(v) for k, v in env.items()}


def test_the_lock_loads_everything_the_deployment_configures(tmp_path: Path) -> None:
    env = {
        **_compose_env(),
        "AIRFLOW_HOME": str(tmp_path),
        "PATH": str(Path(sys.executable).parent),
        # The compose file's Fernet key placeholder is not a key; nothing is decrypted here.
        "AIRFLOW__CORE__FERNET_KEY": "",
        # The exporter's service name resolves only inside the stack.
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, (
        "the pinned lock cannot load what docker-compose.yaml configures:\n" + proc.stderr[-3000:]
    )
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded["executor"].endswith(".CeleryExecutor"), loaded
    assert loaded["broker_transport"] == "kombu.transport.redis", loaded
    assert loaded["result_backend"] == "celery.backends.database.DatabaseBackend", loaded
    assert loaded["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2", loaded
    assert loaded["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] == "postgresql+psycopg", loaded
    assert loaded["result_backend_driver"].startswith("postgresql+"), loaded
    assert loaded["auth_manager"] == "SimpleAuthManager", loaded
    assert loaded["statsd"] == "SafeStatsdLogger", loaded
    assert loaded["NIGHTCAST_WAREHOUSE_URL"] == "postgresql+psycopg", loaded
    assert loaded["AIRFLOW_CONN_NIGHTCAST_DEMO_ERP"] == "mysql+pymysql", loaded


# A task's log through the S3 task handler the compose file configures, as a worker
# uploads it at the task's end and the api-server reads it for the UI.
_LOG_ROUND_TRIP = textwrap.dedent(
    """
    import json, os, pathlib, sys
    from airflow.config_templates import airflow_local_settings as settings
    log_io = settings.REMOTE_TASK_LOG
    relative = "dag_id=d/run_id=r/task_id=t/attempt=1.log"
    local = pathlib.Path(settings.BASE_LOG_FOLDER) / relative
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text("a line the worker wrote\\n")
    log_io.upload(local)
    sources, logs = log_io.read(relative, None)
    print(json.dumps({"handler": type(log_io).__name__, "sources": sources, "logs": logs}))
    """
)


def test_task_logs_reach_the_object_store_through_the_compose_settings(
    tmp_path: Path, s3_server: Any
) -> None:
    """The compose file's remote-logging settings (S3 task handler, connection
    ``nightcast_s3`` with its endpoint and path-style addressing) write a task log to a
    real S3-compatible store and read it back, the way the UI shows it."""
    store = s3_server.env()
    compose = _compose_env()
    # The stack's endpoint and keys swapped for the test store's: the same JSON otherwise.
    conn = json.loads(compose["AIRFLOW_CONN_NIGHTCAST_S3"])
    conn.update(login=store["AWS_ACCESS_KEY_ID"], password=store["AWS_SECRET_ACCESS_KEY"])
    conn["extra"]["endpoint_url"] = store["AWS_ENDPOINT_URL"]
    folder = f"s3://{s3_server.bucket}/compose-logs-{tmp_path.name}"
    env = {
        **compose,
        **store,
        "AIRFLOW_HOME": str(tmp_path),
        "PATH": str(Path(sys.executable).parent),
        "AIRFLOW__CORE__FERNET_KEY": "",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
        "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": folder,
        "AIRFLOW_CONN_NIGHTCAST_S3": json.dumps(conn),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _LOG_ROUND_TRIP],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["handler"] == "S3RemoteLogIO", out
    assert out["sources"] == [f"{folder}/dag_id=d/run_id=r/task_id=t/attempt=1.log"], out
    assert out["logs"] == ["a line the worker wrote\n"], out
