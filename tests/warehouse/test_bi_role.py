"""`nightcast bi-role` on a real PostgreSQL warehouse: as the warehouse owner (CREATEROLE, no
superuser) and as a superuser, rerun, across real `dbt build`s of dbt_project.

The warehouse here is set up the way production runs it: a database owned by a login role
without SUPERUSER that the pipeline and dbt both write with.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from urllib.parse import quote

import psycopg
import pyarrow as pa
import pytest
from _services import fresh_postgres_database, postgres_admin_url

from nightcast.cli import main
from nightcast.warehouse.base import open_warehouse

REPO_ROOT = Path(__file__).resolve().parents[2]
D = date(2025, 5, 1)
BI_PASSWORD = "bi:p@ss/w%rd'"  # URL-special characters and a quote: neither may break anything


@dataclass
class Server:
    admin_db_url: str  # the superuser, connected to the warehouse database
    owner: str
    owner_url: str  # the warehouse owner: CREATEROLE, not a superuser
    bi: str
    bi_url: str
    db: str


def _psql(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


@pytest.fixture
def server() -> Iterator[Server]:
    tag = uuid.uuid4().hex[:8]
    owner, bi, db = f"nc_wh_owner_{tag}", f"nc_bi_{tag}", f"nightcast_test_bi_{tag}"
    admin = postgres_admin_url()
    fresh_postgres_database(db)  # skips (or fails under CI) without a server
    _psql(
        admin,
        f"create role {owner} login createrole password 'owner-pw'",
        f'alter database "{db}" owner to {owner}',
    )
    host = admin.split("@", 1)[1].rsplit("/", 1)[0]
    try:
        yield Server(
            admin_db_url=admin.rsplit("/", 1)[0] + f"/{db}",
            owner=owner,
            owner_url=f"postgresql://{owner}:owner-pw@{host}/{db}",
            bi=bi,
            bi_url=f"postgresql://{bi}:{quote(BI_PASSWORD, safe='')}@{host}/{db}",
            db=db,
        )
    finally:
        _psql(admin, f'drop database if exists "{db}" with (force)')
        for role in (bi, owner):
            _psql(admin, f"drop role if exists {role}")


def _bi_role(monkeypatch: pytest.MonkeyPatch, url: str, role: str, *extra: str) -> int:
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", url)
    monkeypatch.setenv("NIGHTCAST_BI_PASSWORD", BI_PASSWORD)
    return main(["bi-role", "--role", role, *extra])


def _assert_bi_reads_the_marts_and_nothing_else(s: Server) -> None:
    with psycopg.connect(s.bi_url, autocommit=True) as conn:
        for sql in (
            "create temporary table scratch (x int)",  # no TEMP: BI cannot write anywhere
            "select * from raw.items",
            "select * from forecast.forecasts",
            "select * from ops.quarantine",
            "select * from audit.publications",
            "create table marts.mine (x int)",
            "create table public.mine (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)


def test_bi_role_runs_as_the_warehouse_owner_and_reruns(
    server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_warehouse(server.owner_url):
        pass  # the pipeline's first night creates its schemas
    for _ in range(3):  # a rerun (e.g. to rotate the password) passes
        assert _bi_role(monkeypatch, server.owner_url, server.bi) == 0
    assert f"role {server.bi}: select on marts.* only" in capsys.readouterr().out
    with psycopg.connect(server.admin_db_url) as conn:
        attrs = conn.execute(
            "select rolsuper, rolcreaterole, rolcreatedb, rolcanlogin from pg_roles "
            "where rolname = %s",
            [server.bi],
        ).fetchone()
    assert attrs == (False, False, False, True)
    _assert_bi_reads_the_marts_and_nothing_else(server)


def test_bi_role_without_createrole_says_what_is_missing_in_one_line(
    server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _psql(postgres_admin_url(), f"alter role {server.owner} nocreaterole")
    with pytest.raises(SystemExit) as exit_info:
        _bi_role(monkeypatch, server.owner_url, server.bi)
    message = str(exit_info.value.code)
    assert "CREATEROLE" in message and server.owner in message and server.bi in message
    assert "\n" not in message.strip() and "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------- across dbt rebuilds
def _seed_a_published_run(owner_url: str) -> None:
    with open_warehouse(owner_url) as wh, wh.transaction():
        wh.execute(
            "insert into raw.items (source, item_id, name, category, _run_date) "
            "values ('demo', 'demo:1', 'Widget', 'Tools', ?)",
            [D],
        )
        wh.execute(
            "insert into raw.locations (source, location_id, name, location_type, _run_date) "
            "values ('demo', 'demo:L1', 'Main street', 'store', ?)",
            [D],
        )
        wh.execute(
            "insert into forecast.runs (run_date, model_version, status, rows_forecast, "
            "published_at) values (?, 'm1', 'published', 2, ?)",
            [D, datetime(2025, 5, 2, 5, 0)],
        )
        wh.replace_partition(
            "forecast.forecasts",
            "run_date",
            D,
            pa.table(
                {
                    "run_date": [D, D],
                    "item_id": ["demo:1", "demo:1"],
                    "location_id": ["demo:L1", "demo:L1"],
                    "forecast_date": [date(2025, 5, 2), date(2025, 5, 3)],
                    "horizon": pa.array([1, 2], pa.int32()),
                    "p10": [1.0, 1.0],
                    "p50": [2.0, 2.0],
                    "p90": [3.0, 3.0],
                    "model_version": ["m1", "m1"],
                }
            ),
        )


def _dbt_build_as(s: Server, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> float:
    """A real `dbt build` of dbt_project, connected as the warehouse owner (like the pipeline)."""
    from dbt.cli.main import dbtRunner

    host, port = postgres_admin_url().split("@", 1)[1].rsplit("/", 1)[0].split(":")
    for key, value in {
        "NIGHTCAST_DBT_TARGET": "postgres",
        "NIGHTCAST_PG_HOST": host,
        "NIGHTCAST_PG_PORT": port,
        "NIGHTCAST_PG_USER": s.owner,
        "NIGHTCAST_PG_PASSWORD": "owner-pw",
        "NIGHTCAST_PG_DBNAME": s.db,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }.items():
        monkeypatch.setenv(key, value)
    started = time.perf_counter()
    project = str(REPO_ROOT / "dbt_project")
    args = ["build", "--project-dir", project, "--profiles-dir", project, "--target", "postgres"]
    args += ["--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")]
    result = dbtRunner().invoke([*args, "--no-use-colors"])
    assert result.success, result.exception or [
        f"{r.node.unique_id}: {r.message}"
        for r in result.result.results
        if str(r.status) in ("error", "fail")
    ]
    return time.perf_counter() - started


def _bi_reads_forecast_latest(s: Server) -> int:
    with psycopg.connect(s.bi_url) as conn:
        row = conn.execute("select count(*) from marts.forecast_latest").fetchone()
        conn.execute("select count(*) from marts.dim_item")  # a table mart, rebuilt each time
    return int(row[0]) if row else -1


def test_bi_keeps_its_grants_across_dbt_rebuilds(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with open_warehouse(server.owner_url):
        pass
    _seed_a_published_run(server.owner_url)
    # An administrator runs it as the superuser: the grants must still follow what dbt
    # (connected as the warehouse owner) creates later, not what the superuser creates.
    assert _bi_role(monkeypatch, server.admin_db_url, server.bi) == 0
    _dbt_build_as(server, tmp_path / "first", monkeypatch)
    assert _bi_reads_forecast_latest(server) == 2
    _dbt_build_as(server, tmp_path / "second", monkeypatch)
    assert _bi_reads_forecast_latest(server) == 2
    # Rerun by the warehouse owner itself, then another rebuild.
    assert _bi_role(monkeypatch, server.owner_url, server.bi) == 0
    _dbt_build_as(server, tmp_path / "third", monkeypatch)
    assert _bi_reads_forecast_latest(server) == 2
    _assert_bi_reads_the_marts_and_nothing_else(server)
