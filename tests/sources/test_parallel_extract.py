"""Parallel extraction: key-range splitting, multi-part landings, the mapping options.

The integration tests run against the real local PostgreSQL and MariaDB servers;
a missing server skips them, except under CI (env ``CI`` set) where it fails.
"""

from __future__ import annotations

import copy
import os
import random
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import yaml

from nightcast.monitoring.alerts import rerun_targets
from nightcast.sources import bulk, client_io
from nightcast.sources import streams as planner
from nightcast.sources.extract import (
    IncompleteLanding,
    Window,
    extract_table,
    landed_parts,
    landing_path,
    publish_parts,
    read_landed,
    split_bounds,
    stream_sql,
)
from nightcast.sources.mapping import (
    ColumnRule,
    MappingError,
    SourceMapping,
    TableMapping,
    load_mapping,
)

RUN = date(2024, 3, 5)
ALL = Window("incremental", None, datetime(2030, 1, 1))
DEMO_YAML = Path(__file__).parents[2] / "include/nightcast/sources/mappings/demo.yaml"
DB = "nightcast_test_parallel"
# Skewed keys: a dense block, a sparse tail, one far outlier, negatives; k also has nulls.
KEYS = [*range(1, 1_500), *range(10_000, 200_000, 997), 2_000_000_000, -7, -3]
SERVERS = {
    "pg": (
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB}",
    ),
    "mysql": (
        "mysql+pymysql://root@127.0.0.1:3306/?charset=utf8mb4",
        f"mysql+pymysql://root@127.0.0.1:3306/{DB}?charset=utf8mb4",
    ),
}


# --- range splitting (no server) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi", "streams", "bounds"),
    [
        (1, 100, 2, [51]),
        (1, 100, 4, [26, 51, 76]),
        (-10, 9, 2, [0]),
        (5, 5, 3, []),  # one key: one stream
        (1, 2, 4, [2]),  # two keys: two streams, never an empty range by construction
        (1, 10**12, 3, [333333333334, 666666666667]),
    ],
)
def test_split_bounds_cut_the_key_range_evenly(
    lo: int, hi: int, streams: int, bounds: list[int]
) -> None:
    assert split_bounds(lo, hi, streams) == bounds


def test_every_row_falls_in_exactly_one_stream_whatever_the_keys() -> None:
    """Skewed keys, nulls, and keys outside the sampled min/max (rows written after it)."""
    rng = random.Random(7)
    db = sqlite3.connect(":memory:")
    db.execute("create table t (id integer primary key, k integer)")
    keys: list[int | None] = [*KEYS, None, None, 3 * 10**9, -(10**6)]
    keys += [rng.choice([rng.randint(0, 50), rng.randint(0, 10**9)]) for _ in range(2_000)]
    db.executemany("insert into t values (?, ?)", list(enumerate(keys)))
    for streams in (2, 3, 5, 8):
        queries = stream_sql(
            "select id, k from t order by id", '"k"', split_bounds(-7, 2 * 10**9, streams)
        )
        assert len(queries) == streams
        landed = [row_id for q in queries for (row_id, _) in db.execute(q)]
        assert sorted(landed) == list(range(len(keys))), f"{streams} streams: a row lost or twice"


def test_one_stream_runs_the_query_unchanged() -> None:
    assert stream_sql("select 1", '"k"', []) == ["select 1"]


# --- multi-part landings (no server) -------------------------------------------------------


def _part(path: Path, ids: list[str]) -> Path:
    tmp = path.with_name(f"{path.name}.tmp{len(ids)}-{ids[0]}")
    pq.write_table(pa.table({"id": pa.array(ids, pa.string())}), tmp)
    return tmp


def test_read_landed_reads_every_part_in_part_order(tmp_path: Path) -> None:
    path = landing_path(tmp_path, "acme", "order_lines", RUN)
    path.parent.mkdir(parents=True)
    publish_parts(path, [_part(path, [str(i)]) for i in range(12)])
    assert [p.name for p in landed_parts(path)][-3:] == [
        "part-9.parquet",
        "part-10.parquet",
        "part-11.parquet",
    ]
    assert read_landed(path).column("id").to_pylist() == [str(i) for i in range(12)]


def test_a_rerun_with_fewer_streams_leaves_no_stale_part(tmp_path: Path) -> None:
    path = landing_path(tmp_path, "acme", "order_lines", RUN)
    path.parent.mkdir(parents=True)
    publish_parts(path, [_part(path, ["a"]), _part(path, ["b"]), _part(path, ["c"])])
    publish_parts(path, [_part(path, ["x", "y"])])
    assert [p.name for p in path.parent.iterdir()] == ["part-0.parquet"]
    assert read_landed(path).column("id").to_pylist() == ["x", "y"]


def test_a_writer_stopped_while_publishing_leaves_a_landing_readers_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts move into place one by one: stopped in between, the folder mixes two
    attempts (new part-0, old part-1). Readers refuse it until the extract reruns."""
    path = landing_path(tmp_path, "acme", "order_lines", RUN)
    path.parent.mkdir(parents=True)
    publish_parts(path, [_part(path, ["old-0"]), _part(path, ["old-1"])])
    new = [_part(path, ["new-0"]), _part(path, ["new-1"])]
    real_replace = Path.replace
    moved: list[Path] = []

    def stop_after_one(self: Path, target: Any) -> Path:
        if moved:
            raise KeyboardInterrupt  # the worker is killed between two moves
        moved.append(self)
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        publish_parts(path, new)
    monkeypatch.undo()
    assert pq.read_table(path).column("id").to_pylist() == ["new-0"]  # the mix is on disk
    with pytest.raises(
        IncompleteLanding, match=r"incomplete.*2 part\(s\).*Rerun the extract"
    ) as err:
        read_landed(path)
    assert err.value.sources == ("acme",) and err.value.rerun_from == "extract"
    # On-call's alert clears the source's extract (with downstream), not the reader.
    assert rerun_targets("clean_acme", err.value) == ("extract_acme",)
    publish_parts(path, [_part(path, ["rerun"])])  # the rerun replaces every part
    assert read_landed(path).column("id").to_pylist() == ["rerun"]
    assert sorted(p.name for p in path.parent.iterdir() if ".tmp" not in p.name) == [
        "part-0.parquet"
    ]


def test_read_landed_without_a_landing_names_the_file(tmp_path: Path) -> None:
    path = landing_path(tmp_path, "acme", "order_lines", RUN)
    with pytest.raises(FileNotFoundError, match=r"part-0\.parquet"):
        read_landed(path)


# --- mapping options -------------------------------------------------------------------------


def _doc() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(DEMO_YAML.read_text()))


def _load(tmp_path: Path, doc: dict[str, Any]) -> SourceMapping:
    path = tmp_path / "acme.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_mapping(path)


def test_split_defaults_to_the_key_column_of_incremental_tables(tmp_path: Path) -> None:
    mapping = _load(tmp_path, _doc())
    lines = mapping.tables["order_lines"]
    assert (lines.parallel, lines.split) == (None, "line_id")
    assert mapping.tables["items"].split is None  # full dimension: one stream


def test_parallel_and_split_are_read(tmp_path: Path) -> None:
    doc = _doc()
    doc["tables"]["order_lines"].update(parallel=4, split="order_id")
    doc["tables"]["items"]["parallel"] = 2
    mapping = _load(tmp_path, doc)
    assert (mapping.tables["order_lines"].parallel, mapping.tables["order_lines"].split) == (
        4,
        "order_id",
    )
    assert mapping.tables["items"].split == "product_id"


@pytest.mark.parametrize("bad", [0, -1, 9, "two", True, 1.5])
def test_bad_parallel_is_rejected_naming_table_and_value(tmp_path: Path, bad: object) -> None:
    doc = _doc()
    doc["tables"]["order_lines"]["parallel"] = bad
    with pytest.raises(MappingError, match=r"acme.yaml: table 'order_lines': 'parallel' must"):
        _load(tmp_path, doc)


def test_parallel_without_a_split_column_is_rejected(tmp_path: Path) -> None:
    doc = _doc()
    doc["tables"]["order_lines"]["columns"]["order_line_id"] = {"value": "x", "type": "id"}
    doc["tables"]["order_lines"]["parallel"] = 2
    with pytest.raises(MappingError, match="needs 'split'"):
        _load(tmp_path, doc)


def test_parallel_on_a_csv_folder_source_is_rejected(tmp_path: Path) -> None:
    doc = yaml.safe_load((DEMO_YAML.parent.parent / "examples/legacy_csv.yaml").read_text())
    table = next(iter(doc["tables"]))
    doc["tables"][table]["parallel"] = 2
    with pytest.raises(MappingError, match=r"database \(kind: sql\) sources only"):
        _load(tmp_path, doc)


# --- PostgreSQL and MariaDB ------------------------------------------------------------------


def _server(kind: str) -> Iterator[sa.Engine]:
    admin_url, url = SERVERS[kind]
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"drop database if exists {DB}"))
            conn.execute(sa.text(f"create database {DB}"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI"):
            pytest.fail(f"{kind} server not reachable under CI: {exc}")
        pytest.skip(f"{kind} server not reachable: {str(exc).splitlines()[0]}")
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.execute(
            sa.text(
                "create table erp_lines (id bigint primary key, k integer, s varchar(20), u timestamp null)"
            )
        )
        rows = [
            {
                "id": key,
                "k": None if i % 97 == 0 else key % 1000,
                "s": f"v{key}",
                "u": datetime(2024, 3, 1),
            }
            for i, key in enumerate(KEYS)
        ]
        conn.execute(sa.text("insert into erp_lines values (:id, :k, :s, :u)"), rows)
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"drop database if exists {DB}"))
        admin.dispose()


@pytest.fixture(scope="module", params=["pg", "mysql"])
def engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    yield from _server(request.param)


def _table(parallel: int | None, split: str | None = "id") -> TableMapping:
    cols = {"order_line_id": ColumnRule("order_line_id", "id", "id", null_tokens=("NULL",))}
    query = "select id, k, s, u from erp_lines where {window}"
    return TableMapping(
        "order_lines", "incremental", query, ("u",), cols, parallel=parallel, split=split
    )


def _land(engine: sa.Engine, lake: Path, table: TableMapping) -> tuple[int, pa.Table]:
    source = SourceMapping(source="acme", connection="c", pool="p", path=lake / "acme.yaml")
    res = extract_table(engine, source, table, RUN, ALL, lake)
    landed = read_landed(res.path)
    assert res.rows == landed.num_rows
    return len(landed_parts(res.path)), landed.sort_by("id")


def _ids(landed: pa.Table) -> list[int]:
    return sorted(int(v) for v in landed.column("id").to_pylist())


def test_parallel_lands_exactly_the_rows_of_one_stream(engine: sa.Engine, tmp_path: Path) -> None:
    parts1, single = _land(engine, tmp_path / "one", _table(1))
    parts3, parallel = _land(engine, tmp_path / "three", _table(3))
    assert (parts1, parts3) == (1, 3)
    assert _ids(parallel) == sorted(KEYS)  # every row once, none twice
    assert sorted(parallel.to_pylist(), key=str) == sorted(single.to_pylist(), key=str)


def test_split_on_a_column_with_nulls_keeps_the_null_rows(
    engine: sa.Engine, tmp_path: Path
) -> None:
    parts, landed = _land(engine, tmp_path, _table(4, split="k"))
    assert parts == 4
    assert _ids(landed) == sorted(KEYS)
    assert landed.column("k").null_count == sum(1 for i in range(len(KEYS)) if i % 97 == 0)


def test_rerun_with_fewer_streams_replaces_all_parts(engine: sa.Engine, tmp_path: Path) -> None:
    _land(engine, tmp_path, _table(3))
    parts, landed = _land(engine, tmp_path, _table(1))
    assert parts == 1
    assert _ids(landed) == sorted(KEYS)
    folder = landing_path(tmp_path, "acme", "order_lines", RUN).parent
    assert sorted(p.name for p in folder.iterdir()) == ["part-0.parquet"]


def test_split_on_a_text_column_fails_naming_it(engine: sa.Engine, tmp_path: Path) -> None:
    with pytest.raises(
        RuntimeError,
        match=r"'acme'.*'order_lines'.*column 's'.*of type (varchar|var_string), not an integer",
    ):
        _land(engine, tmp_path, _table(2, split="s"))


def test_split_on_a_missing_column_fails_naming_it(engine: sa.Engine, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="split column 'nope'"):
        _land(engine, tmp_path, _table(2, split="nope"))


def test_small_windows_stay_single_stream_by_default(engine: sa.Engine, tmp_path: Path) -> None:
    parts, landed = _land(engine, tmp_path, _table(None))
    assert parts == 1 and _ids(landed) == sorted(KEYS)


def test_large_windows_get_three_streams_by_default_on_postgres(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planner, "AUTO_MIN_ROWS", 100)
    pg = engine.dialect.name == "postgresql"
    # At most the worker's cores + 1 (each stream parses on the worker).
    for cores, streams in ((4, 3), (1, 2)):
        monkeypatch.setattr(planner.os, "cpu_count", lambda cores=cores: cores)
        parts, landed = _land(engine, tmp_path, _table(None))
        # MySQL/MariaDB: one connectorx stream measured faster than two (README "Extraction").
        assert parts == (streams if pg else 1) and _ids(landed) == sorted(KEYS)
    assert planner.AUTO_STREAMS == 3
    assert planner.estimate_rows(engine, "select * from erp_lines", {}) is not None


def test_without_the_client_binaries_the_fallbacks_land_the_same_rows(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "PG_METHOD", "psycopg")  # no psql: psycopg cursor.copy streams
    monkeypatch.setattr(bulk, "mysql_client", lambda: None)  # no mariadb client binary
    # With connectorx installed MySQL keeps its parallel streams without the client.
    parts, landed = _land(engine, tmp_path, _table(3))
    assert parts == 3
    assert _ids(landed) == sorted(KEYS)
    # Neither the client nor connectorx: the generic batched cursor, one stream.
    monkeypatch.setattr(client_io, "has_connectorx", lambda: False)
    parts, landed = _land(engine, tmp_path, _table(3))
    assert parts == (3 if engine.dialect.name == "postgresql" else 1)
    assert _ids(landed) == sorted(KEYS)
