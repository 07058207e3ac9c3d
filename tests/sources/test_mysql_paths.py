"""The two MySQL/MariaDB bulk paths land identical strings: connectorx and the client.

connectorx reads typed Arrow that :mod:`nightcast.sources.client_io` renders as the
``mariadb --batch`` client prints it; these tests read the same tricky rows both
ways on the local MariaDB and compare every value. A missing server skips, except
under CI (env ``CI`` set) where it fails, as does a missing connectorx.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from nightcast.sources import bulk
from nightcast.sources.client_io import cx_unsupported, mariadb_double

DB = "nightcast_test_mysql_paths"
ADMIN = "mysql+pymysql://root@127.0.0.1:3306/?charset=utf8mb4"
TEXTS = ["a\tb", "line1\nline2\r\nend", "back\\slash \\N \\t", "é€😀 漢字", "", None, "NULL"]
DOUBLES = [0.25, -0.0, 1e20, 1e15, 1e14, 1e-5, 2.5e-300, -1.7976931348623157e308, 0.1]
DDL = """
create table tricky (
  id int primary key, s longtext, n decimal(10,2), n0 decimal(12,0), n9 decimal(21,9),
  f double, ts datetime, ts3 datetime(3), ts6 datetime(6), tz timestamp(2) null,
  d date, b boolean, y year, u bigint unsigned, e enum('a','b'), j json, bt bit(3)
) character set utf8mb4
"""
ROW = (
    "insert into tricky values (:id, :s, :n, :n0, :n9, :f, :ts, :ts3, :ts6, :tz, :d, :b, :y,"
    " :u, :e, :j, b'101')"
)


def _rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(max(len(TEXTS), len(DOUBLES))):
        rows.append(
            {
                "id": i,
                "s": TEXTS[i % len(TEXTS)],
                "n": None if i == 5 else f"-{i}.05",
                "n0": i * 1000,
                "n9": {3: "0", 4: "-0.000000002"}.get(i, f"{i}.000000001"),
                "f": DOUBLES[i % len(DOUBLES)],
                "ts": f"2024-03-0{i % 9 + 1} 12:30:15",
                "ts3": f"2024-03-01 12:30:15.{i:03d}",
                "ts6": None if i == 2 else f"2024-03-01 12:30:15.{i:06d}",
                "tz": "2024-03-01 12:30:15.10",
                "d": "2024-02-29",
                "b": i % 2,
                "y": 0 if i == 0 else 2024,
                "u": 18446744073709551615 if i == 1 else i,
                "e": "ab"[i % 2],
                "j": '{"k": [1, "x\\ty"]}',
            }
        )
    return rows


@pytest.fixture(scope="module")
def my() -> Iterator[sa.Engine]:
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"drop database if exists {DB}"))
            conn.execute(sa.text(f"create database {DB}"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI"):
            pytest.fail(f"MariaDB not reachable under CI: {exc}")
        pytest.skip(f"MariaDB not reachable: {str(exc).splitlines()[0]}")
    engine = sa.create_engine(ADMIN.replace("/?", f"/{DB}?"))
    with engine.begin() as conn:
        conn.execute(sa.text(DDL))
        conn.execute(sa.text(ROW), _rows())
        # A zero date: connectorx panics on it, so the reader must fall back.
        conn.execute(sa.text("set session sql_mode = ''"))
        conn.execute(sa.text("create table zero (id int, at datetime, t time, g float)"))
        conn.execute(
            sa.text("insert into zero values (1, '0000-00-00 00:00:00', '-838:59:59', 0.1)")
        )
        conn.execute(
            sa.text("insert into zero values (2, '2024-01-01 00:00:00', '12:00:00', 1e20)")
        )
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"drop database if exists {DB}"))
        admin.dispose()


@pytest.fixture(autouse=True)
def _connectorx() -> None:
    try:
        import connectorx  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"connectorx is in requirements.txt but not installed: {exc}")
        pytest.skip("connectorx not installed")


def _land(
    engine: sa.Engine, query: str, tmp_path: Path, method: str | None, **params: Any
) -> pa.Table:
    path = tmp_path / f"{method}.parquet"
    rows = bulk.read_mysql(engine, query, params, path, lambda n: None, method=method)
    table = pq.read_table(path)
    assert rows == table.num_rows
    assert all(f.type == pa.string() for f in table.schema)
    return table


def test_connectorx_lands_exactly_what_the_client_lands(my: sa.Engine, tmp_path: Path) -> None:
    query = "select * from tricky order by id"
    client = _land(my, query, tmp_path, "client").to_pylist()
    cx = _land(my, query, tmp_path, "connectorx").to_pylist()
    assert len(cx) == len(_rows())
    for want, got in zip(client, cx, strict=True):
        assert got == want, {k: (want[k], got[k]) for k in want if want[k] != got[k]}
    first = cx[0]
    assert (first["s"], first["n"], first["n0"], first["n9"]) == (
        "a\tb",
        "-0.05",
        "0",
        "0.000000001",
    )
    assert (first["ts"], first["ts3"], first["tz"]) == (
        "2024-03-01 12:30:15",
        "2024-03-01 12:30:15.000",
        "2024-03-01 12:30:15.10",
    )
    assert [r["n9"] for r in cx[2:5]] == ["2.000000001", "0.000000000", "-0.000000002"]
    assert (first["y"], first["bt"], cx[1]["u"]) == ("0000", "\x05", "18446744073709551615")
    assert [r["s"] for r in cx[:7]] == [*TEXTS[:6], None]  # the text 'NULL' lands as null
    assert [r["f"] for r in cx] == [
        "0.25", "0", "1e20", "1e15", "100000000000000", "0.00001", "2.5e-300",
        "-1.7976931348623157e308", "0.1",
    ]  # fmt: skip


def test_zero_dates_time_and_float_fall_back_to_the_client(my: sa.Engine, tmp_path: Path) -> None:
    for query in ("select id, at from zero order by id", "select * from zero order by id"):
        client = _land(my, query, tmp_path, "client").to_pylist()
        assert _land(my, query, tmp_path, "connectorx").to_pylist() == client
    assert client[0] == {"id": "1", "at": "0000-00-00 00:00:00", "t": "-838:59:59", "g": "0.1"}


def test_connectorx_is_the_default_when_installed(
    my: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_client(*args: object) -> int:
        raise AssertionError("the client path ran")

    monkeypatch.setattr(bulk, "_read_client", no_client)
    landed = _land(my, "select id, s from tricky where id < :n", tmp_path, None, n=2)
    assert landed.column("id").to_pylist() == ["0", "1"]
    monkeypatch.setattr(bulk, "MYSQL_METHOD", "client")
    with pytest.raises(AssertionError, match="client path ran"):
        _land(my, "select id from tricky", tmp_path, None)


def test_mariadb_double_follows_the_server_notation() -> None:
    assert [mariadb_double(x) for x in DOUBLES] == [
        "0.25", "0", "1e20", "1e15", "100000000000000", "0.00001", "2.5e-300",
        "-1.7976931348623157e308", "0.1",
    ]  # fmt: skip
    assert mariadb_double(1.2345678901234568e-10) == "0.00000000012345678901234568"
    assert mariadb_double(1.5e-15) == "0.0000000000000015"  # as `select 1.5e-15` prints
    assert mariadb_double(1.5e-16) == "1.5e-16"
    assert mariadb_double(-48986194852.11566) == "-48986194852.11566"


def test_unrenderable_columns_name_the_column() -> None:
    def desc(code: int, scale: int) -> list[tuple[Any, ...]]:
        return [("id", 3, None, 11, 11, 0, False), ("x", code, None, 10, 10, scale, True)]

    assert cx_unsupported(desc(246, 9)) is None
    assert cx_unsupported(desc(5, 31)) is None
    assert "'x' is DECIMAL with scale 12" in (cx_unsupported(desc(246, 12)) or "")
    assert "'x' is DOUBLE with 2 fixed decimals" in (cx_unsupported(desc(5, 2)) or "")
    assert "'x' has MySQL field type 4" in (cx_unsupported(desc(4, 31)) or "")  # FLOAT
    assert "'x' has MySQL field type 11" in (cx_unsupported(desc(11, 0)) or "")  # TIME


def test_connection_options_connectorx_cannot_take_go_through_the_client(
    my: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_connectorx(*args: object) -> object:
        raise AssertionError("connectorx ran without the URL's connection options")

    monkeypatch.setattr(bulk, "connectorx_batches", no_connectorx)
    # e.g. TLS settings: dropping them silently would connect in the clear.
    with_options = sa.create_engine(my.url.update_query_dict({"connect_timeout": "10"}))
    try:
        landed = _land(with_options, "select id from tricky where id < 2", tmp_path, None)
    finally:
        with_options.dispose()
    assert landed.column("id").to_pylist() == ["0", "1"]


def test_the_client_gets_the_urls_tls_settings() -> None:
    url = sa.make_url(
        'mysql+pymysql://etl:p"w@erp.example:3307/erp?ssl_ca=/etc/ca.pem&ssl_verify_cert=true'
    )
    assert bulk.client_options(url) == [
        "[client]",
        'host="erp.example"',
        'port="3307"',
        'user="etl"',
        'password="p\\"w"',
        'ssl-ca="/etc/ca.pem"',
        "ssl-verify-server-cert",
    ]
