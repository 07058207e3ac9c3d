"""PostgreSQL: the audit schema belongs to a role nobody logs in as; the pipeline's role may
only INSERT and SELECT there (`nightcast audit setup`, for servers that already run Nightcast)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import pytest
from _services import fresh_postgres_database, postgres_admin_url

from nightcast import audit
from nightcast.audit.roles import separation_problems
from nightcast.cli import main
from nightcast.warehouse.base import open_warehouse


@dataclass
class Server:
    admin_url: str  # the superuser, on the warehouse database
    writer: str  # the role the pipeline logs in as; owns the database, as in docker-compose
    writer_url: str
    owner: str  # the audit owner role `audit setup` creates


@pytest.fixture
def server() -> Iterator[Server]:
    tag = uuid.uuid4().hex[:8]
    db, writer, owner = f"nightcast_test_audit_roles_{tag}", f"nc_pipe_{tag}", f"nc_audit_{tag}"
    admin = postgres_admin_url()
    admin_url = fresh_postgres_database(db)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"create role {writer} login password 'pipe-pw'")
        conn.execute(f'alter database "{db}" owner to {writer}')
    host = admin.split("@", 1)[1].rsplit("/", 1)[0]
    try:
        yield Server(admin_url, writer, f"postgresql://{writer}:pipe-pw@{host}/{db}", owner)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{db}" with (force)')
            for role in (owner, writer):
                conn.execute(f"drop role if exists {role}")


def _setup(server: Server, monkeypatch: pytest.MonkeyPatch, url: str | None = None) -> int:
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", url or server.admin_url)
    return main(["audit", "setup", "--writer", server.writer, "--owner", server.owner])


TAMPERING = (
    "alter table audit.publications disable trigger publications_append_only",
    "drop trigger publications_append_only on audit.publications",
    "alter table audit.publications rename to publications_old",
    "drop table audit.publications",
    "create table audit.publications_new (x int)",
    "update audit.publications set reason = 'x'",
    "delete from audit.publications",
    "truncate audit.overrides",
    "alter table audit.overrides add column note varchar",
    "create or replace function audit.reject_change() returns trigger language plpgsql "
    "as $$ begin return new; end $$",
    "alter schema audit rename to audit_old",
    "set role {owner}",
)


def test_setup_takes_the_trail_away_from_the_pipeline_role(
    server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A server that already ran Nightcast: its pipeline role created (and owns) the trail.
    with open_warehouse(server.writer_url) as wh:
        audit.record_publication(wh, date(2025, 5, 1), "published")
    assert _setup(server, monkeypatch) == 0
    assert _setup(server, monkeypatch) == 0  # a rerun changes nothing and passes
    out = capsys.readouterr().out
    assert f"audit schema owned by {server.owner}" in out and server.writer in out

    with psycopg.connect(server.writer_url, autocommit=True) as conn:
        for sql in TAMPERING:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.format(owner=server.owner))
    # The pipeline goes on: opens the warehouse, appends, reads, verifies.
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", server.writer_url)
    with open_warehouse(server.writer_url) as wh:
        audit.record_publication(wh, date(2025, 5, 2), "published")
        audit.record_override(wh, "promote", model_version="m2", reason="ops")
        assert [r["run_date"] for r in audit.find_publications(wh)] == [
            date(2025, 5, 2),
            date(2025, 5, 1),
        ]
        assert separation_problems(wh, server.writer, server.owner) == []
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert "audit.publications: 2 rows, chain intact" in out and "warning" not in out.lower()
    with psycopg.connect(server.admin_url) as conn:
        login = conn.execute(
            "select rolcanlogin from pg_roles where rolname = %s", [server.owner]
        ).fetchone()
    assert login == (False,)


def test_verify_warns_while_the_pipeline_role_owns_the_trail(
    server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_warehouse(server.writer_url) as wh:
        audit.record_override(wh, "promote", model_version="m1")
        problems = separation_problems(wh, server.writer)
    assert any("owns" in p and server.writer in p for p in problems), problems
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", server.writer_url)
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0  # the chain is intact; the ownership is a warning
    out = capsys.readouterr().out
    assert "warning" in out.lower() and "nightcast audit setup" in out


def test_setup_refuses_to_run_as_the_pipeline_role(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _setup(server, monkeypatch, url=server.writer_url)
    message = str(exit_info.value.code)
    assert "superuser" in message and server.writer in message and "\n" not in message.strip()


def test_setup_on_a_fresh_database_before_the_first_night(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _setup(server, monkeypatch) == 0
    with open_warehouse(server.writer_url) as wh:  # the first night creates everything else
        audit.record_held_back(wh, date(2025, 5, 1), "gate failed")
        assert separation_problems(wh, server.writer, server.owner) == []
        assert wh.fetchone("select count(*) from audit.publications") == (1,)


def test_setup_is_postgresql_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", f"duckdb:///{tmp_path}/wh.duckdb")
    with pytest.raises(SystemExit, match="PostgreSQL"):
        main(["audit", "setup", "--writer", "nightcast"])
