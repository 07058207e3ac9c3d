"""Run the dbt project in-process (dbt-core's programmatic runner)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from typing import Any

from nightcast.config import SettingError, Settings
from nightcast.errors import DeterministicError

log = logging.getLogger("nightcast.transform")


class DbtBuildError(RuntimeError):
    """``dbt build`` failed: a model errored (perhaps the warehouse connection) and is retried."""


class DbtTestFailed(DbtBuildError, DeterministicError):
    """A dbt test found failing rows: the same data fails it again, so it is not retried."""


def build_error(results: Iterable[Any], exception: object = None) -> DbtBuildError:
    """The error for a failed build, naming each failed node.

    dbt's status tells the cases apart: ``fail`` is a test that ran and found rows
    (deterministic); ``error`` is a node that could not run, which includes a lost
    connection, so only a build with at least one ``fail`` skips the retries.
    """
    failed = []
    tests_failed = False
    for r in results:
        status = str(r.status)
        if status in ("error", "fail"):
            tests_failed |= status == "fail"
            failed.append(
                f"{r.node.resource_type} {r.node.name}: {(r.message or '').strip()[:300]}"
            )
    detail = "\n  ".join(failed) or str(exception or "unknown error (see the dbt log above)")
    kind = DbtTestFailed if tests_failed else DbtBuildError
    return kind(
        f"dbt build failed ({len(failed)} node(s)); nothing downstream was published:\n  {detail}\n"
        "Fix the model or the data, then clear this task in the Airflow UI to rerun it."
    )


def release_duckdb() -> None:
    """Close dbt-duckdb's database handle, which it keeps in the process after a build.

    An in-process build (``airflow dags test``, ``dag.test()``, ``make demo``) otherwise
    holds the DuckDB file's lock until the process exits, and the on-call commands of
    another process (``nightcast quarantine replay``, ``summary``) wait for it, then fail.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # the PostgreSQL image need not ship dbt-duckdb
        return
    env = getattr(DuckDBConnectionManager, "_ENV", None)
    if env is not None:
        env.close()
        DuckDBConnectionManager.close_all_connections()


def profile_env(settings: Settings) -> dict[str, str]:
    """What ``dbt_project/profiles.yml`` reads, derived from ``NIGHTCAST_WAREHOUSE_URL``:
    the target, and the DuckDB file or the PostgreSQL host, port, user, password and
    database. The warehouse is configured once; dbt gets the same one as the pipeline."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.warehouse_url)
    if url.get_backend_name() == "duckdb":
        path = url.database or str(settings.warehouse_path)
        return {"NIGHTCAST_DBT_TARGET": "duckdb", "NIGHTCAST_WAREHOUSE_PATH": path}
    if url.get_backend_name() == "postgresql":
        return {
            "NIGHTCAST_DBT_TARGET": "postgres",
            "NIGHTCAST_PG_HOST": url.host or "localhost",
            "NIGHTCAST_PG_PORT": str(url.port or 5432),
            "NIGHTCAST_PG_USER": url.username or "",
            "NIGHTCAST_PG_PASSWORD": url.password or "",
            "NIGHTCAST_PG_DBNAME": url.database or "",
        }
    raise SettingError(
        f"NIGHTCAST_WAREHOUSE_URL: dbt has no profile for {url.get_backend_name()!r} "
        "(duckdb:///path or postgresql+psycopg://... )"
    )


def dbt_build(
    settings: Settings, *, select: str | None = None, target: str | None = None
) -> dict[str, Any]:
    """``dbt build`` against the configured warehouse; raises naming each failed node."""
    from dbt.cli.main import dbtRunner  # heavy: imported only when a build runs

    # dbt runs in this process and its profile reads these variables.
    os.environ.update(profile_env(settings))
    work = settings.data_dir / "dbt"
    args = [
        "build",
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(settings.dbt_project_dir),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
    ]
    if target or settings.dbt_target:
        args += ["--target", target or str(settings.dbt_target)]  # an explicit override
    if select:
        args += ["--select", select]
    started = time.monotonic()
    try:
        res = dbtRunner().invoke(args)
    finally:
        release_duckdb()
    seconds = time.monotonic() - started
    results = list(getattr(res.result, "results", None) or [])
    statuses: dict[str, int] = {}
    for r in results:
        status = str(r.status)
        statuses[status] = statuses.get(status, 0) + 1
    # dbt's threads finish in any order: sort so a rerun records the same summary.
    statuses = dict(sorted(statuses.items()))
    log.info("dbt build: %s in %.1fs", statuses, seconds)
    if not res.success:
        raise build_error(results, res.exception)
    return {"statuses": statuses, "seconds": round(seconds, 2)}
