"""Parallel PostgreSQL streams of one table read one exported snapshot.

Runs against the real local PostgreSQL (``tests/_services.py``): skipped when it is
missing, except under CI where it fails.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from _services import fresh_postgres_database

from nightcast.sources import bulk
from nightcast.sources.extract import Window, extract_table, landed_parts, read_landed
from nightcast.sources.mapping import ColumnRule, SourceMapping, TableMapping

RUN = date(2024, 3, 5)
ALL = Window("incremental", None, datetime(2030, 1, 1))
ODD_IDS = list(range(1, 3000, 2))  # two streams split them at id 1500


@pytest.fixture(scope="module")
def engine() -> Iterator[sa.Engine]:
    url = fresh_postgres_database("nightcast_test_stream_snapshot")
    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield eng
    eng.dispose()


@pytest.fixture
def erp(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        conn.execute(sa.text("drop table if exists erp_lines"))
        conn.execute(sa.text("create table erp_lines (id bigint primary key, s text, u timestamp)"))
        rows = [{"id": i, "s": f"v{i}", "u": datetime(2024, 3, 1)} for i in ODD_IDS]
        conn.execute(sa.text("insert into erp_lines values (:id, :s, :u)"), rows)
    return engine


@pytest.fixture(params=["psql", "psycopg"])
def method(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(bulk, "PG_METHOD", request.param)
    return str(request.param)


def _table(query: str = "select id, s, u from erp_lines where {window}") -> TableMapping:
    cols = {"order_line_id": ColumnRule("order_line_id", "id", "id")}
    return TableMapping("order_lines", "incremental", query, ("u",), cols, parallel=2, split="id")


def _land(engine: sa.Engine, lake: Path, table: TableMapping) -> tuple[int, pa.Table]:
    source = SourceMapping(source="acme", connection="c", pool="p", path=lake / "acme.yaml")
    res = extract_table(engine, source, table, RUN, ALL, lake)
    return len(landed_parts(res.path)), read_landed(res.path)


def _write_before_streams_start(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, *statements: str
) -> list[dict[str, Any]]:
    """Delay every stream until another connection has committed ``statements`` (once)."""
    real = bulk.read_postgres
    lock = threading.Lock()
    calls: list[dict[str, Any]] = []

    def delayed(*args: Any, **kwargs: Any) -> int:
        with lock:
            if not calls:
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    for statement in statements:
                        conn.execute(sa.text(statement))
            calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(bulk, "read_postgres", delayed)
    return calls


def test_writes_after_the_snapshot_are_seen_by_no_stream(
    erp: sa.Engine, method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _write_before_streams_start(
        erp,
        monkeypatch,
        "insert into erp_lines values (1000, 'new', '2024-03-01'), (2000, 'new', '2024-03-01')",
        "update erp_lines set s = 'changed' where id in (1, 2001)",
        "delete from erp_lines where id in (3, 2999)",
    )
    parts, landed = _land(erp, tmp_path, _table())
    assert parts == 2 and len(calls) == 2
    assert {c["snapshot"] for c in calls} == {calls[0]["snapshot"]}  # both import one
    ids = sorted(int(v) for v in landed.column("id").to_pylist())
    assert ids == ODD_IDS  # no new row, no deleted row missing, none twice
    values = dict(zip(landed.column("id").to_pylist(), landed.column("s").to_pylist(), strict=True))
    assert (values["1"], values["2001"]) == ("v1", "v2001")  # the values at the snapshot


def test_the_coordinating_transaction_leaves_pooled_connections_as_they_were(
    erp: sa.Engine, method: str, tmp_path: Path
) -> None:
    _land(erp, tmp_path, _table())
    with erp.connect() as conn:
        isolation = conn.execute(sa.text("show transaction_isolation")).scalar()
        read_only = conn.execute(sa.text("show transaction_read_only")).scalar()
    assert (isolation, read_only) == ("read committed", "off")


def test_a_failing_stream_is_named_with_its_key_range(
    erp: sa.Engine, method: str, tmp_path: Path
) -> None:
    query = "select id, s, u, 1 / (id - 2001) as boom from erp_lines where {window}"
    with pytest.raises(
        RuntimeError,
        match=r"source 'acme' table 'order_lines'.*stream 2 of 2 \(rows with id >= 1500\)"
        r".*division by zero",
    ):
        _land(erp, tmp_path, _table(query))


def test_a_snapshot_id_that_is_not_one_is_refused(erp: sa.Engine, tmp_path: Path) -> None:
    with pytest.raises(bulk.BulkReadError, match="not a PostgreSQL snapshot id"):
        bulk.read_postgres(
            erp, "select 1", {}, tmp_path / "x.parquet", lambda n: None, snapshot="1' or '1"
        )
