"""The DuckDB warehouse: schema bootstrap, transactions, upserts, checksums and locking."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from nightcast.warehouse import duck
from nightcast.warehouse.duck import (
    connect,
    ensure_schema,
    insert_arrow,
    table_checksums,
    transaction,
    upsert_arrow,
)
from nightcast.warehouse.schema import ALL_TABLES


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "select table_schema || '.' || table_name from information_schema.tables"
    ).fetchall()
    return {r[0] for r in rows}


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    c.execute("create schema s")
    c.execute("create table s.t (id varchar primary key, qty double, note varchar)")
    yield c
    c.close()


def _rows(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute("select id, qty, note from s.t order by id").fetchall()


def test_ensure_schema_creates_every_table_and_is_idempotent(tmp_path: Path) -> None:
    expected = {f"{schema}.{table}" for schema, tables in ALL_TABLES.items() for table in tables}
    with connect(tmp_path / "wh.duckdb") as c:
        ensure_schema(c)
        assert expected <= _tables(c)
        c.execute(
            "insert into forecast.runs (run_date, status) values (date '2024-03-05', 'published')"
        )
    with connect(tmp_path / "wh.duckdb") as c:
        ensure_schema(c)  # a second bootstrap keeps the data
        assert expected <= _tables(c)
        assert c.execute("select count(*) from forecast.runs").fetchone() == (1,)


def test_transaction_commits(con: duckdb.DuckDBPyConnection) -> None:
    with transaction(con):
        con.execute("insert into s.t values ('a', 1, null)")
    assert _rows(con) == [("a", 1.0, None)]


def test_crash_mid_load_leaves_the_previous_state(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("insert into s.t values ('a', 1, 'old'), ('b', 2, 'old')")
    with pytest.raises(RuntimeError, match="worker died"), transaction(con):
        con.execute("delete from s.t")
        insert_arrow(con, "s.t", pa.table({"id": ["c"], "qty": [3.0], "note": ["new"]}))
        assert _rows(con) == [("c", 3.0, "new")]  # visible inside the transaction ...
        raise RuntimeError("worker died")
    assert _rows(con) == [("a", 1.0, "old"), ("b", 2.0, "old")]  # ... and gone after
    # The connection is usable again afterwards.
    with transaction(con):
        con.execute("insert into s.t values ('d', 4, null)")
    assert len(_rows(con)) == 3


def test_upsert_replaces_rows_by_key(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("insert into s.t values ('a', 1, 'old'), ('b', 2, 'old')")
    batch = pa.table({"id": ["b", "c"], "qty": [20.0, 30.0], "note": ["new", "new"]})
    with transaction(con):
        assert upsert_arrow(con, "s.t", batch, "id") == 2
    assert _rows(con) == [("a", 1.0, "old"), ("b", 20.0, "new"), ("c", 30.0, "new")]
    # Running the same upsert again changes nothing: reruns are idempotent.
    with transaction(con):
        upsert_arrow(con, "s.t", batch, "id")
    assert _rows(con) == [("a", 1.0, "old"), ("b", 20.0, "new"), ("c", 30.0, "new")]


def test_upsert_of_an_empty_batch_is_a_no_op(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("insert into s.t values ('a', 1, 'old')")
    empty = pa.table({"id": pa.array([], pa.string()), "qty": pa.array([], pa.float64())})
    assert upsert_arrow(con, "s.t", empty, "id") == 0
    assert _rows(con) == [("a", 1.0, "old")]


def test_insert_arrow_matches_columns_by_name(con: duckdb.DuckDBPyConnection) -> None:
    batch = pa.table({"note": ["n"], "id": ["a"]})  # another order, a column left out
    assert insert_arrow(con, "s.t", batch) == 1
    assert _rows(con) == [("a", None, "n")]


def test_insert_arrow_rejects_unknown_columns(con: duckdb.DuckDBPyConnection) -> None:
    batch = pa.table({"id": ["a"], "colour": ["red"], "weight": [1.0]})
    with pytest.raises(ValueError) as info:
        insert_arrow(con, "s.t", batch)
    msg = str(info.value)
    assert "s.t" in msg and "colour" in msg and "weight" in msg
    assert _rows(con) == []


def test_insert_arrow_into_a_missing_table(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(LookupError, match=r"s\.nope"):
        insert_arrow(con, "s.nope", pa.table({"id": ["a"]}))


def _two_warehouses() -> tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection]:
    cons = []
    for _ in range(2):
        c = duckdb.connect()
        c.execute("create schema s")
        c.execute("create table s.t (id varchar, qty double, published_at timestamp)")
        c.execute("create table s.u (k integer)")
        cons.append(c)
    return cons[0], cons[1]


def test_checksums_are_order_independent() -> None:
    a, b = _two_warehouses()
    a.execute(
        "insert into s.t values ('x', 1, '2024-01-01'), ('y', 2, '2024-01-01'), ('z', 3, null)"
    )
    b.execute(
        "insert into s.t values ('z', 3, null), ('x', 1, '2024-01-01'), ('y', 2, '2024-01-01')"
    )
    sums = table_checksums(a, ["s"])
    assert set(sums) == {"s.t", "s.u"}
    assert sums == table_checksums(b, ["s"])


def test_checksums_change_when_a_value_changes() -> None:
    a, b = _two_warehouses()
    a.execute("insert into s.t values ('x', 1, null), ('y', 2, null)")
    b.execute("insert into s.t values ('x', 1, null), ('y', 2.5, null)")
    sa_, sb = table_checksums(a, ["s"]), table_checksums(b, ["s"])
    assert sa_["s.t"] != sb["s.t"]
    assert sa_["s.u"] == sb["s.u"]


def test_checksums_see_duplicated_rows() -> None:
    a, b = _two_warehouses()
    a.execute("insert into s.t values ('x', 1, null)")
    b.execute("insert into s.t values ('x', 1, null), ('x', 1, null)")
    assert table_checksums(a, ["s"])["s.t"] != table_checksums(b, ["s"])["s.t"]


def test_checksums_ignore_excluded_columns() -> None:
    a, b = _two_warehouses()
    a.execute("insert into s.t values ('x', 1, '2024-03-05 02:00:00')")
    b.execute("insert into s.t values ('x', 1, '2024-03-06 02:17:00')")
    assert table_checksums(a, ["s"]) != table_checksums(b, ["s"])
    assert table_checksums(a, ["s"], exclude_columns=["published_at"]) == table_checksums(
        b, ["s"], exclude_columns=["published_at"]
    )


def test_checksums_only_cover_the_requested_schemas() -> None:
    a, _ = _two_warehouses()
    a.execute("create schema other")
    a.execute("create table other.v (k integer)")
    assert set(table_checksums(a, ["s"])) == {"s.t", "s.u"}


_HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("create table held (x integer)")
    con.execute("insert into held values (42)")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


def test_connect_waits_for_a_lock_held_by_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duck, "LOCK_WAIT_SECONDS", 20.0)  # fail fast if it never frees
    path = tmp_path / "wh.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), "1.0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        # The lock really is held: a plain open fails right now.
        with pytest.raises(duckdb.IOException, match=r"(?i)lock"):
            duckdb.connect(str(path)).close()
        started = time.monotonic()
        with connect(path) as c:
            waited = time.monotonic() - started
            assert c.execute("select x from held").fetchall() == [(42,)]
    finally:
        holder.wait(timeout=20)
    assert holder.returncode == 0
    assert waited > 0.1


def test_connect_does_not_retry_other_errors(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db.duckdb"
    path.write_bytes(b"this is not a duckdb file" * 100)
    started = time.monotonic()
    with pytest.raises(duckdb.Error), connect(path):
        pass
    assert time.monotonic() - started < 5
