"""The audit trail's hash chain: `nightcast audit verify` catches a superuser's change, deletion
or reordering of audit rows, on DuckDB and PostgreSQL; racing writers never fork the chain."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import psycopg
import pytest
from _services import fresh_postgres_database

from nightcast import audit
from nightcast.cli import main
from nightcast.warehouse.base import open_warehouse

GENESIS = "0" * 64


@dataclass
class Target:
    url: str
    superuser: Callable[[str], None]  # runs SQL past every guard: triggers, refusals, roles


def _duck_superuser(path: Path) -> Callable[[str], None]:
    def run(sql: str) -> None:
        con = duckdb.connect(str(path))
        try:
            con.execute(sql)
        finally:
            con.close()

    return run


def _pg_superuser(url: str) -> Callable[[str], None]:
    def run(sql: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            # What a superuser can always do: triggers off for this session.
            conn.execute("set session_replication_role = replica")
            conn.execute(sql)

    return run


@pytest.fixture(params=["duckdb", "postgres"])
def target(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Target]:
    if request.param == "duckdb":
        path = tmp_path / "wh.duckdb"
        t = Target(f"duckdb:///{path}", _duck_superuser(path))
    else:
        url = fresh_postgres_database("nightcast_test_audit_chain")
        t = Target(url, _pg_superuser(url))
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", t.url)
    yield t


def _record(url: str, publications: int = 5, overrides: int = 2) -> list[str]:
    """Publication events of runs 2025-05-01, -02, …, then a few overrides; their event ids."""
    events = []
    with open_warehouse(url) as wh:
        for k in range(publications):
            decision = "held_back" if k % 3 == 2 else "published"
            events.append(
                audit.record_publication(
                    wh, date(2025, 5, 1 + k), decision, reason=f"night {k}" if k % 2 else None
                )
            )
        for k in range(overrides):
            audit.record_override(wh, "promote", actor="alice", model_version=f"m{k}", reason="ok")
    return events


def _verify(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", "verify"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_an_untouched_chain_verifies(target: Target, capsys: pytest.CaptureFixture[str]) -> None:
    _record(target.url)
    code, out = _verify(capsys)
    assert code == 0, out
    assert "audit.publications: 5 rows, chain intact" in out
    assert "audit.overrides: 2 rows, chain intact" in out
    with open_warehouse(target.url) as wh:
        seqs = wh.fetchall("select seq from audit.publications order by seq")
    assert [s[0] for s in seqs] == [1, 2, 3, 4, 5]


TAMPERING = {
    # what a superuser does → the first row verify must name
    "update": (["update audit.publications set reason = 'all fine' where seq = 3"], 3),
    "delete": (["delete from audit.publications where seq = 2"], 2),
    "swap": (
        [
            "update audit.publications set seq = -1 where seq = 2",
            "update audit.publications set seq = 2 where seq = 4",
            "update audit.publications set seq = 4 where seq = -1",
        ],
        2,
    ),
}


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_verify_names_the_first_row_a_superuser_changed(
    target: Target, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    events = _record(target.url)
    statements, first_bad = TAMPERING[kind]
    for sql in statements:
        target.superuser(sql)
    code, out = _verify(capsys)
    assert code == 1, out
    line = next(x for x in out.splitlines() if x.startswith("audit.publications"))
    assert f"seq {first_bad}" in line and "BROKEN" in line, out
    if kind != "delete":
        assert events[first_bad - 1 if kind == "update" else 3] in line  # the row now at seq N
    assert "audit.overrides: 2 rows, chain intact" in out


def test_a_change_to_an_override_is_caught_too(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    _record(target.url)
    target.superuser("update audit.overrides set actor = 'mallory' where seq = 1")
    code, out = _verify(capsys)
    assert code == 1 and "audit.overrides" in out and "seq 1" in out, out


def test_the_row_hash_is_sha256_of_the_previous_hash_and_the_canonical_row(
    target: Target,
) -> None:
    """The documented serialization, recomputed independently of the package."""
    with open_warehouse(target.url) as wh:
        audit.record_override(
            wh,
            "rollback",
            actor="bob",
            model_version="m7",
            run_date=date(2025, 5, 3),
            reason="bad night, é",
            now=datetime(2025, 5, 4, 6, 30, 1, 250),
        )
        audit.record_override(wh, "promote", actor="carol", now=datetime(2025, 5, 5, 7, 0))
        rows = wh.fetchall(
            "select event_id, seq, prev_hash, row_hash from audit.overrides order by seq"
        )
    (first_event, seq1, prev1, hash1), (_, seq2, prev2, hash2) = rows
    canonical = json.dumps(
        [
            "audit.overrides",
            {
                "event_id": first_event,
                "recorded_at": "2025-05-04 06:30:01.000250",
                "actor": "bob",
                "action": "rollback",
                "model_version": "m7",
                "run_date": "2025-05-03",
                "reason": "bad night, é",
                "seq": 1,
            },
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert (seq1, prev1) == (1, GENESIS)
    assert hash1 == hashlib.sha256(f"{GENESIS}\n{canonical}".encode()).hexdigest()
    assert (seq2, prev2) == (2, hash1) and hash2 != hash1


def test_old_audit_tables_get_their_chain_when_the_warehouse_opens(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    """A warehouse from before the chain: its rows are chained in time order, then appended to."""
    target.superuser("create schema if not exists audit")
    target.superuser(
        "create table audit.publications (event_id varchar not null primary key, run_date date "
        "not null, decided_at timestamp not null, decision varchar not null, model_version "
        "varchar, model_params varchar, code_version varchar, input_snapshot varchar, "
        "forecast_rows bigint, forecast_checksum varchar, actor varchar not null, reason varchar)"
    )
    target.superuser(
        "create table audit.overrides (event_id varchar not null primary key, recorded_at "
        "timestamp not null, actor varchar not null, action varchar not null, model_version "
        "varchar, run_date date, reason varchar)"
    )
    for k, when in enumerate(["2025-05-02 06:00:00", "2025-05-01 06:00:00"]):
        target.superuser(
            "insert into audit.publications (event_id, run_date, decided_at, decision, actor) "
            f"values ('old{k}', date '2025-05-01', timestamp '{when}', 'published', 'pipeline')"
        )
    _record(target.url, publications=1, overrides=1)
    code, out = _verify(capsys)
    assert code == 0, out
    assert "audit.publications: 3 rows, chain intact" in out
    with open_warehouse(target.url) as wh:
        order = wh.fetchall("select event_id from audit.publications order by seq")
    assert [r[0] for r in order][:2] == ["old1", "old0"]  # oldest decision first


def test_racing_publications_never_fork_the_chain(capsys: pytest.CaptureFixture[str]) -> None:
    """Two writers append at once, each inside a transaction that stays open a while."""
    url = fresh_postgres_database("nightcast_test_audit_race")
    with open_warehouse(url):
        pass
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(name: str) -> None:
        try:
            with open_warehouse(url, ensure=False) as wh:
                start.wait()
                for k in range(5):
                    with wh.transaction():
                        audit.record_override(wh, "promote", actor=name, reason=f"{name} {k}")
                        time.sleep(0.05)  # others try to append meanwhile
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(f"w{k}",)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with open_warehouse(url) as wh:
        seqs = [r[0] for r in wh.fetchall("select seq from audit.overrides order by seq")]
    assert seqs == list(range(1, 11))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NIGHTCAST_WAREHOUSE_URL", url)
        code, out = _verify(capsys)
    assert code == 0 and "audit.overrides: 10 rows, chain intact" in out, out


def test_verify_on_an_empty_trail(target: Target, capsys: pytest.CaptureFixture[str]) -> None:
    with open_warehouse(target.url):
        pass
    code, out = _verify(capsys)
    assert code == 0 and "audit.publications: 0 rows, chain intact" in out, out
