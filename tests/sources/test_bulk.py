"""Bulk readers against the real local PostgreSQL and MariaDB servers.

A missing server skips these tests, except under CI (env ``CI`` set) where it fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from nightcast.cleaning.clean import clean_table
from nightcast.sources import bulk, extract
from nightcast.sources.extract import Window, extract_table, landed_parts, read_landed
from nightcast.sources.mapping import ColumnRule, SourceMapping, TableMapping

DB = "nightcast_test_bulk"
RUN_DATE = date(2024, 3, 5)
LONG = 'ab,"c\n' * 40_000
# id, s (text), n (decimal), f (double), ts, d, b, updated_at
TEXTS = {
    1: None,
    2: "",
    3: 'he said "hi", ok',
    4: "a\tb",
    5: "line1\nline2\r\nend",
    6: "back\\slash \\N \\t",
    7: "'single' ; -- not sql",
    8: "é€😀 漢字",
    9: LONG,
    10: "NULL",
    11: " padded ",
}
SERVERS = {
    "postgresql": f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB}",
    "mysql": f"mysql+pymysql://root@127.0.0.1:3306/{DB}?charset=utf8mb4",
}
ADMIN = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/?charset=utf8mb4",
}
DDL = {
    "postgresql": "create table tricky (id integer primary key, s text, n numeric(10,2), "
    "f double precision, ts timestamp, d date, b boolean, updated_at timestamp)",
    "mysql": "create table tricky (id integer primary key, s longtext, n decimal(10,2), "
    "f double, ts datetime, d date, b boolean, updated_at datetime) character set utf8mb4",
}


def _rows() -> list[dict[str, object]]:
    out = []
    for i, s in TEXTS.items():
        out.append(
            {
                "id": i,
                "s": s,
                "n": None if i == 3 else f"{i}.50",
                "f": None if i == 4 else i / 4,
                "ts": None if i == 5 else datetime(2024, 3, i, 12, 30, 15),
                "d": None if i == 6 else date(2024, 2, i),
                "b": None if i == 7 else i % 2 == 0,
                "updated_at": datetime(2024, 3, i, 8),
            }
        )
    return out


def _server(kind: str) -> Iterator[sa.Engine]:
    admin = sa.create_engine(ADMIN[kind], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"drop database if exists {DB}"))
            conn.execute(sa.text(f"create database {DB}"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI"):
            pytest.fail(f"{kind} server not reachable under CI: {exc}")
        pytest.skip(f"{kind} server not reachable: {str(exc).splitlines()[0]}")
    eng = sa.create_engine(SERVERS[kind])
    with eng.begin() as conn:
        conn.execute(sa.text(DDL[kind]))
        conn.execute(
            sa.text("insert into tricky values (:id, :s, :n, :f, :ts, :d, :b, :updated_at)"),
            _rows(),
        )
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"drop database if exists {DB}"))
        admin.dispose()


@pytest.fixture(scope="module")
def pg() -> Iterator[sa.Engine]:
    yield from _server("postgresql")


@pytest.fixture(scope="module")
def my() -> Iterator[sa.Engine]:
    yield from _server("mysql")


@pytest.fixture(params=["pg-psql", "pg-psycopg", "mysql"])
def backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, sa.Engine]:
    name: str = request.param
    if name.startswith("pg"):
        monkeypatch.setattr(bulk, "PG_METHOD", name.removeprefix("pg-"))
        return name, request.getfixturevalue("pg")
    return name, request.getfixturevalue("my")


def _source(tmp_path: Path) -> SourceMapping:
    return SourceMapping(source="acme", connection="c", pool="p", path=tmp_path / "acme.yaml")


def _table(query: str, mode: str = "incremental") -> TableMapping:
    null = ("NULL",)
    cols = {
        "order_line_id": ColumnRule("order_line_id", "id", "id", null_tokens=null),
        "text": ColumnRule("text", "string", "s", null_tokens=null),
        "amount": ColumnRule("amount", "float", "n", null_tokens=null),
        "ratio": ColumnRule("ratio", "float", "f", null_tokens=null),
        "at": ColumnRule("at", "timestamp", "ts", null_tokens=null),
        "day": ColumnRule("day", "date", "d", null_tokens=null),
        "flag": ColumnRule("flag", "string", "b", null_tokens=null),
        "updated_at": ColumnRule("updated_at", "timestamp", "updated_at", null_tokens=null),
    }
    return TableMapping("order_lines", mode, query, ("updated_at",), cols)


QUERY = "select * from tricky where {window} order by id"
ALL = Window("incremental", None, datetime(2030, 1, 1))


def _land(engine: sa.Engine, tmp_path: Path, table: TableMapping, window: Window) -> pa.Table:
    result = extract_table(engine, _source(tmp_path), table, RUN_DATE, window, tmp_path / "lake")
    landed = read_landed(result.path)
    assert result.rows == landed.num_rows
    assert all(f.type == pa.string() for f in landed.schema)
    return landed


def test_tricky_values_land_as_the_right_strings(
    backend: tuple[str, sa.Engine], tmp_path: Path
) -> None:
    name, engine = backend
    landed = _land(engine, tmp_path, _table(QUERY), ALL).to_pydict()
    assert landed["id"] == [str(i) for i in TEXTS]
    expected = dict(TEXTS)
    if name == "mysql":
        expected[10] = None  # the batch client prints NULL and 'NULL' alike (documented)
    assert landed["s"] == list(expected.values())
    assert landed["s"][1] == "" and landed["s"][0] is None
    assert landed["n"][:4] == ["1.50", "2.50", None, "4.50"]
    assert float(landed["f"][0]) == 0.25 and landed["f"][3] is None
    assert landed["ts"][0] == "2024-03-01 12:30:15" and landed["ts"][4] is None
    assert landed["d"][0] == "2024-02-01" and landed["d"][5] is None
    bools = ["False", "True"] if name.startswith("pg") else ["0", "1"]
    assert landed["b"][:2] == bools and landed["b"][6] is None


def test_window_params_are_applied(backend: tuple[str, sa.Engine], tmp_path: Path) -> None:
    _, engine = backend
    window = Window("incremental", datetime(2024, 3, 3, 8), datetime(2024, 3, 6))
    landed = _land(engine, tmp_path, _table(QUERY), window)
    assert landed.column("id").to_pylist() == ["3", "4", "5"]


def test_empty_result_writes_the_columns(backend: tuple[str, sa.Engine], tmp_path: Path) -> None:
    _, engine = backend
    window = Window("incremental", datetime(2031, 1, 1), datetime(2031, 1, 2))
    landed = _land(engine, tmp_path, _table(QUERY), window)
    assert landed.num_rows == 0
    assert landed.column_names == ["id", "s", "n", "f", "ts", "d", "b", "updated_at"]


def test_large_result_is_written_in_several_row_groups(
    backend: tuple[str, sa.Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, engine = backend
    monkeypatch.setattr(bulk, "BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr(bulk, "ROW_GROUP_ROWS", 5_000)
    series = (
        "select g as id, concat('row ', g) as s from generate_series(1, 50000) as g order by g"
        if name.startswith("pg")
        else "select seq as id, concat('row ', seq) as s from seq_1_to_50000 order by seq"
    )
    table = TableMapping("order_lines", "full", series, (), {})
    result = extract_table(engine, _source(tmp_path), table, RUN_DATE, ALL, tmp_path)
    (part,) = landed_parts(result.path)
    with part.open_input() as f:
        meta = pq.ParquetFile(f).metadata
    assert result.rows == meta.num_rows == 50_000
    assert meta.num_row_groups >= 5
    ids = read_landed(result.path).column("id").to_pylist()
    assert ids == [str(i) for i in range(1, 50_001)]


def test_clean_values_equal_the_generic_path(
    backend: tuple[str, sa.Engine], tmp_path: Path
) -> None:
    _, engine = backend
    table = _table(QUERY)
    fast = _land(engine, tmp_path / "fast", table, ALL)
    predicate, params = extract.window_sql(table, ALL)
    tmp = tmp_path / "generic.parquet"
    extract._extract_generic(
        engine, QUERY.replace("{window}", predicate), params, tmp, lambda n: None
    )
    generic = pq.read_table(tmp)
    assert generic.column_names == fast.column_names
    clean_fast = clean_table(fast, table, "acme", RUN_DATE, tmp)
    clean_generic = clean_table(generic, table, "acme", RUN_DATE, tmp)
    pd.testing.assert_frame_equal(clean_fast.clean, clean_generic.clean)
    assert len(clean_fast.quarantine) == len(clean_generic.quarantine) == 0


def test_broken_query_raises_naming_source_and_keeps_no_temp_file(
    backend: tuple[str, sa.Engine], tmp_path: Path
) -> None:
    _, engine = backend
    table = _table("select * from no_such_table where {window}")
    with pytest.raises(RuntimeError) as info:
        extract_table(engine, _source(tmp_path), table, RUN_DATE, ALL, tmp_path)
    assert "'acme'" in str(info.value) and "acme.yaml" in str(info.value)
    assert "no_such_table" in str(info.value)
    folder = extract.landing_path(tmp_path, "acme", "order_lines", RUN_DATE)
    assert list(folder.local_path().iterdir()) == []  # no part, no scratch folder


def test_render_params_inlines_literals_and_keeps_casts() -> None:
    text = bulk.render_params(
        "select x::text from t where a >= :lo and b < :hi and c = '\\:keep'",
        {"lo": "2024-01-01", "hi": "o'k"},
        lambda v: "'" + str(v).replace("'", "''") + "'",
    )
    assert text == "select x::text from t where a >= '2024-01-01' and b < 'o''k' and c = ':keep'"
    with pytest.raises(bulk.BulkReadError):
        bulk.render_params("select :missing", {}, str)


def test_mysql_fast_path_needs_null_as_a_null_token(tmp_path: Path) -> None:
    table = _table(QUERY)
    assert bulk.mysql_fast_path_ok(_source(tmp_path), table)
    strict = TableMapping(
        "order_lines", "full", QUERY, (), {"x": ColumnRule("x", "string", "s", null_tokens=("",))}
    )
    assert not bulk.mysql_fast_path_ok(_source(tmp_path), strict)
