"""Real database servers for integration tests (PostgreSQL, MariaDB on this machine).

A missing server fails the test under CI (``CI`` set; ``.ci/run`` starts the
servers) and skips it on a laptop that has none.
"""

from __future__ import annotations

import os


def _service_unavailable(what: str, err: Exception) -> None:
    """A missing database server fails under CI (CI=true) and skips on a laptop."""
    import pytest

    msg = (
        f"{what} is not reachable ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; CI must run against it (.ci/run starts it)")
    pytest.skip(msg)


def postgres_admin_url() -> str:
    return os.environ.get("NIGHTCAST_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def fresh_postgres_database(name: str) -> str:
    """Drop and create database ``name`` on the test server; returns its URL."""
    import psycopg

    admin = postgres_admin_url()
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
            conn.execute(f'create database "{name}"')
    except psycopg.OperationalError as err:
        _service_unavailable("PostgreSQL", err)
    return admin.rsplit("/", 1)[0] + f"/{name}"


def mariadb_admin_url() -> str:
    return os.environ.get("NIGHTCAST_TEST_MY_URL", "mysql+pymysql://root@127.0.0.1:3306/")


def fresh_mariadb_database(name: str) -> str:
    """Drop and create database ``name`` on the MariaDB test server; returns its URL."""
    import sqlalchemy as sa

    admin = sa.create_engine(mariadb_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"drop database if exists `{name}`"))
            conn.execute(sa.text(f"create database `{name}` character set utf8mb4"))
    except sa.exc.OperationalError as err:
        _service_unavailable("MariaDB", err)
    finally:
        admin.dispose()
    return mariadb_admin_url().rstrip("/") + f"/{name}"
