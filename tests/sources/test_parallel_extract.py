"""Parallel extraction: key-range splitting, multi-part landings, the mapping options.

The integration tests run against the real local PostgreSQL and MariaDB servers;
a missing server skips them, except under CI (env ``CI`` set) where it fails.
"""

from __future__ import annotations

import copy
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import yaml

from nightcast.sources import bulk, client_io, landing
from nightcast.sources import streams as planner
from nightcast.sources.extract import (
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
from nightcast.storage import MANIFEST, Location, StorageError, location

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


def _part(scratch: Path, ids: list[str]) -> Path:
    tmp = scratch / f"part-{len(ids)}-{ids[0]}.parquet"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": pa.array(ids, pa.string())}), tmp)
    return tmp


def _stored(folder: Location) -> list[str]:
    return sorted(f.name for f in folder.files("*"))


def test_read_landed_reads_every_part_in_part_order(store_root: Location, tmp_path: Path) -> None:
    path = landing_path(store_root, "acme", "order_lines", RUN)
    publish_parts(path, [_part(tmp_path / "s", [str(i)]) for i in range(12)])
    names = [p.name for p in landed_parts(path)]
    assert [n.split("-")[1] for n in names] == [str(i) for i in range(12)]
    assert read_landed(path).column("id").to_pylist() == [str(i) for i in range(12)]
    assert _stored(path) == sorted([MANIFEST, *names])


def test_a_rerun_with_fewer_streams_leaves_no_stale_part(
    store_root: Location, tmp_path: Path
) -> None:
    path = landing_path(store_root, "acme", "order_lines", RUN)
    publish_parts(path, [_part(tmp_path / "a", [c]) for c in "abc"])
    rerun = publish_parts(path, [_part(tmp_path / "b", ["x", "y"])])
    assert _stored(path) == sorted([MANIFEST, rerun[0].name])
    assert read_landed(path).column("id").to_pylist() == ["x", "y"]


@pytest.mark.parametrize("killed_after", [0, 1, 2])
def test_a_writer_killed_mid_partition_leaves_the_previous_landing_readable(
    store_root: Location, tmp_path: Path, killed_after: int
) -> None:
    """The new attempt's parts go up one by one under their own names and only the
    manifest makes them the landing: a writer killed after 0, 1 or all of its parts
    (before the manifest) leaves the previous landing whole, on S3 as on disk, and
    the rerun replaces it completely."""
    path = landing_path(store_root, "acme", "order_lines", RUN)
    publish_parts(path, [_part(tmp_path / "old", ["old-0"]), _part(tmp_path / "old", ["old-1"])])
    new = [_part(tmp_path / "new", ["new-0"]), _part(tmp_path / "new", ["new-1"])]
    real_put = Location.put_file
    put: list[Location] = []

    def killed(self: Location, local: Path, **kwargs: Any) -> None:
        if len(put) == killed_after:
            raise KeyboardInterrupt  # the worker is killed here
        put.append(self)
        real_put(self, local, **kwargs)

    with pytest.MonkeyPatch.context() as patch:  # (monkeypatch holds the store's env)
        patch.setattr(Location, "put_file", killed)
        if killed_after == 2:  # every part is up; killed before the manifest is written
            patch.setattr(landing, "commit_partition", _kill)
        with pytest.raises(KeyboardInterrupt):
            publish_parts(path, new)
    assert len(put) == killed_after  # the new attempt's parts are in the store ...
    assert all(p.is_file() for p in put)
    assert read_landed(path).column("id").to_pylist() == ["old-0", "old-1"]  # ... unread
    rerun = publish_parts(path, [_part(tmp_path / "rerun", ["rerun"])])
    assert read_landed(path).column("id").to_pylist() == ["rerun"]
    assert _stored(path) == sorted([MANIFEST, rerun[0].name])  # the debris is gone


def _kill(*args: Any, **kwargs: Any) -> None:
    raise KeyboardInterrupt


def test_an_extract_process_killed_mid_upload_leaves_the_previous_landing_readable(
    s3_root: str, tmp_path: Path
) -> None:
    """Not simulated: a process uploading a new landing to S3 is SIGKILLed mid-way."""
    path = landing_path(location(s3_root), "acme", "order_lines", RUN)
    publish_parts(path, [_part(tmp_path / "old", ["old"])])
    big = tmp_path / "big-0.parquet"
    ids = pa.array([f"{i:024d}" for i in range(2_000_000)], pa.string())
    pq.write_table(pa.table({"id": ids}), big, compression="none")
    copies = [big] + [big.with_name(f"big-{i}.parquet") for i in (1, 2)]
    for copy_ in copies[1:]:
        shutil.copyfile(big, copy_)
    started = tmp_path / "started"
    script = (
        "import pathlib\n"
        "from nightcast.sources.extract import publish_parts\n"
        "from nightcast.storage import location\n"
        f"pathlib.Path({str(started)!r}).touch()\n"
        f"publish_parts(location({path.url!r}), [pathlib.Path(p) for p in {[str(c) for c in copies]!r}])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.2)
    proc.kill()
    assert proc.wait() == -9, "the upload finished before the kill: make the parts bigger"
    assert read_landed(path).column("id").to_pylist() == ["old"]
    rerun = publish_parts(path, [_part(tmp_path / "rerun", ["rerun"])])
    assert read_landed(path).column("id").to_pylist() == ["rerun"]
    assert _stored(path) == sorted([MANIFEST, rerun[0].name])


def test_read_landed_without_a_landing_names_it(store_root: Location) -> None:
    path = landing_path(store_root, "acme", "order_lines", RUN)
    with pytest.raises(FileNotFoundError, match=r"no landing at .*order_lines/date=2024-03-05"):
        read_landed(path)


def test_a_part_deleted_behind_the_pipelines_back_is_named(
    store_root: Location, tmp_path: Path
) -> None:
    path = landing_path(store_root, "acme", "order_lines", RUN)
    parts = publish_parts(path, [_part(tmp_path, ["a"]), _part(tmp_path, ["bb"])])
    parts[1].delete()
    with pytest.raises(StorageError, match=rf"{parts[1].name}.*deleted outside the pipeline"):
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
    with pytest.raises(MappingError) as err:
        _load(tmp_path, doc)
    assert str(err.value) == (
        f"acme.yaml: tables.order_lines.parallel = {bad!r}: must be a whole number of "
        "extraction streams from 1 to 8 (1: one stream)"
    )


def test_parallel_without_a_split_column_is_rejected(tmp_path: Path) -> None:
    doc = _doc()
    doc["tables"]["order_lines"]["columns"]["order_line_id"] = {"value": "x", "type": "id"}
    doc["tables"]["order_lines"]["parallel"] = 2
    with pytest.raises(MappingError) as err:
        _load(tmp_path, doc)
    assert str(err.value) == (
        "acme.yaml: tables.order_lines.parallel = 2: needs 'split' (an integer column of the "
        "query's output): the key column 'order_line_id' is not read from one"
    )


def test_parallel_on_a_csv_folder_source_is_rejected(tmp_path: Path) -> None:
    doc = yaml.safe_load((DEMO_YAML.parent.parent / "examples/legacy_csv.yaml").read_text())
    table = next(iter(doc["tables"]))
    doc["tables"][table]["parallel"] = 2
    with pytest.raises(MappingError) as err:
        _load(tmp_path, doc)
    assert str(err.value) == (
        f"acme.yaml: tables.{table}.parallel = 2: applies to database (kind: sql) sources "
        "only; a csv_folder table is landed from its file(s) as they are"
    )


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
    res = extract_table(engine, source, table, RUN, ALL, location(lake))
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
    folder = landing_path(location(tmp_path), "acme", "order_lines", RUN)
    assert len(_stored(folder)) == 2  # the manifest and the rerun's one part


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
        # MySQL/MariaDB: one connectorx stream measured faster than two (docs/benchmarks.md "Extraction").
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
