"""The append-only audit trail: refused tampering, the publish record, the query CLI."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from _services import fresh_postgres_database

from nightcast import audit
from nightcast.cli import main
from nightcast.config import get_settings
from nightcast.pipeline.forecast import publish
from nightcast.sources.extract import publish_parts
from nightcast.storage import location
from nightcast.warehouse.base import Warehouse, open_warehouse

D = date(2025, 5, 1)
ITEMS = ["demo:1", "demo:2", "demo:3"]
FORECAST_DATE = date(2025, 5, 2)


def forecast_rows() -> pa.Table:
    n = len(ITEMS)
    return pa.table(
        {
            "run_date": [D] * n,
            "item_id": ITEMS,
            "location_id": ["demo:L1"] * n,
            "forecast_date": [FORECAST_DATE] * n,
            "horizon": pa.array([1] * n, pa.int32()),
            "p10": [0.5, 1.0, 2.0],
            "p50": [1.0, 2.25, 3.0],
            "p90": [2.0, 4.0, 6.5],
            "model_version": ["m1"] * n,
        }
    )


def expected_checksum() -> str:
    """Independent of the warehouse: the documented per-row text, hashed, sorted, hashed."""
    t = forecast_rows().to_pylist()
    digests = sorted(
        hashlib.sha256(
            "|".join(
                [
                    r["item_id"],
                    r["location_id"],
                    r["forecast_date"].isoformat(),
                    str(r["horizon"]),
                    repr(r["p10"]),
                    repr(r["p50"]),
                    repr(r["p90"]),
                    r["model_version"],
                ]
            ).encode()
        ).hexdigest()
        for r in reversed(t)  # order does not matter
    )
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def seed(wh: Warehouse, lake: Path) -> dict[str, str]:
    """A loaded (not yet published) run D: two landed files, one model, three forecast rows."""
    shas: dict[str, str] = {}
    lake.mkdir(parents=True, exist_ok=True)
    with wh.transaction():
        for table, body in (("order_lines", b"a,b\n1,2\n3,4\n"), ("items", b"id\nx\n")):
            part = lake / f"{table}.part"
            part.write_bytes(body)
            folder = location(lake) / "raw" / "demo" / table / f"date={D}"
            publish_parts(folder, [part])
            shas[table] = hashlib.sha256(body).hexdigest()
            wh.execute(
                "insert into ops.extract_windows values (?, ?, ?, ?, ?, ?, ?, ?)",
                ["demo", table, D, "full", None, None, body.count(b"\n") - 1, str(folder)],
            )
        wh.execute(
            "insert into forecast.model_registry (model_version, trained_for_run, params, "
            "artifact_path, checksum, status) values (?, ?, ?, ?, ?, ?)",
            ["m1", D, json.dumps({"seed": 7, "num_threads": 1}), "/models/m1", "abc", "champion"],
        )
        wh.execute(
            "insert into forecast.runs (run_date, model_version, status, rows_forecast) "
            "values (?, ?, ?, ?)",
            [D, "m1", "loaded", 3],
        )
        wh.replace_partition("forecast.forecasts", "run_date", D, forecast_rows())
    return shas


def check_published_row(wh: Warehouse, shas: dict[str, str]) -> dict[str, Any]:
    rows = audit.find_publications(wh, run_date=D)
    assert len(rows) == 1
    row = rows[0]
    assert row["decision"] == "published" and row["actor"] == "pipeline"
    assert row["model_version"] == "m1"
    assert json.loads(row["model_params"]) == {"m1": {"seed": 7, "num_threads": 1}}
    assert row["code_version"].startswith("nightcast ")
    assert row["forecast_rows"] == 3
    assert row["forecast_checksum"] == expected_checksum()
    snapshot = {f["table"]: f for f in json.loads(row["input_snapshot"])}
    assert {t: f["sha256"] for t, f in snapshot.items()} == shas
    assert snapshot["order_lines"]["rows"] == 2 and snapshot["order_lines"]["source"] == "demo"
    return row


# ------------------------------------------------------------------ PostgreSQL
@pytest.fixture(scope="module")
def pg_url() -> str:
    return fresh_postgres_database("nightcast_test_audit")


@pytest.fixture
def pg(pg_url: str) -> Iterator[Warehouse]:
    with open_warehouse(pg_url) as w:
        yield w


@pytest.mark.parametrize(
    "statement",
    [
        "update audit.overrides set actor = 'mallory'",
        "delete from audit.overrides",
        "truncate audit.overrides",
        "update audit.publications set decision = 'published'",
        "delete from audit.publications",
        "truncate table audit.publications",
    ],
)
def test_postgres_refuses_tampering_with_the_audit_tables(pg: Warehouse, statement: str) -> None:
    audit.record_override(pg, "promote", actor="alice", model_version="m9", reason="test")
    audit.record_held_back(pg, date(2024, 1, 1), "gate failed")
    before = pg.checksums(["audit"])
    with pytest.raises(Exception, match="append-only"):
        pg.execute(statement)
    with pytest.raises(Exception, match="append-only"), pg.transaction():
        pg.execute(statement)
    assert pg.checksums(["audit"]) == before
    assert pg.fetchone("select count(*) from audit.overrides where actor = 'alice'")[0] >= 1


def test_postgres_append_only_setup_is_idempotent(pg_url: str) -> None:
    for _ in range(2):
        with open_warehouse(pg_url) as w:
            triggers = w.fetchall(
                "select t.tgname from pg_trigger t join pg_class c on c.oid = t.tgrelid "
                "join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = 'audit' and not t.tgisinternal order by 1"
            )
    assert [t[0] for t in triggers] == [
        "overrides_append_only",
        "overrides_no_truncate",
        "publications_append_only",
        "publications_no_truncate",
    ]


def test_publish_writes_one_audit_row_with_the_snapshot_on_postgres(
    pg: Warehouse, pg_url: str, tmp_path: Path
) -> None:
    shas = seed(pg, tmp_path / "lake")
    settings = get_settings().model_copy(update={"warehouse_url": pg_url})
    publish(settings, D)
    check_published_row(pg, shas)
    assert pg.fetchone("select status from forecast.runs where run_date = ?", [D]) == ("published",)
    hits = audit.find_publications(
        pg, item="demo:2", location="demo:L1", forecast_date=FORECAST_DATE
    )
    assert [h["run_date"] for h in hits] == [D]
    assert audit.find_publications(pg, item="demo:nope") == []


def test_a_failed_publish_leaves_no_audit_row(pg: Warehouse, pg_url: str) -> None:
    settings = get_settings().model_copy(update={"warehouse_url": pg_url})
    with pytest.raises(RuntimeError, match="cannot be published"):
        publish(settings, date(2030, 1, 1))
    assert audit.find_publications(pg, run_date=date(2030, 1, 1)) == []


# ------------------------------------------------------------------ DuckDB
@pytest.fixture
def duck_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", url)
    return url


def test_duckdb_publish_and_the_audit_show_cli(
    duck_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_warehouse(duck_url) as w:
        shas = seed(w, tmp_path / "lake")
        # The dbt dimensions' names (dbt is not run here; these are the columns it builds).
        w.execute("create schema if not exists marts")
        w.execute("create table marts.dim_item (item_id varchar, item_name varchar)")
        w.execute("insert into marts.dim_item values ('demo:2', 'Pear'), ('demo:3', 'Plum')")
        w.execute("create table marts.dim_location (location_id varchar, location_name varchar)")
        w.execute("insert into marts.dim_location values ('demo:L1', 'North Store')")
    publish(get_settings(), D)
    with open_warehouse(duck_url) as w:
        row = check_published_row(w, shas)
        audit.record_held_back(w, date(2025, 5, 2), "gate: order_lines volume dropped 80%")
    capsys.readouterr()
    args = ["audit", "show", "--item", "demo:2", "--location", "demo:L1"]
    assert main([*args, "--date", FORECAST_DATE.isoformat()]) == 0
    lines = capsys.readouterr().out.splitlines()
    # The forecast first: the series by name and id, then its row (date, horizon, P10/P50/P90, model).
    assert lines[0].startswith(f"run {D.isoformat()}: published at ")
    assert lines[1] == "  forecast of Pear (demo:2) at North Store (demo:L1):"
    assert lines[2].split() == ["date", "h", "P10", "P50", "P90", "model"]
    assert lines[3].split() == [FORECAST_DATE.isoformat(), "1", "1.00", "2.25", "4.00", "m1"]
    # Then the provenance, compactly: no input file hash unless --files.
    out = "\n".join(lines[4:])
    assert row["event_id"] in out and "model:    m1" in out
    assert f"the run's 3 forecast rows, sha256 {expected_checksum()}" in out
    assert "inputs:   2 file(s), 3 rows, 2 sha256 recorded (demo.items, demo.order_lines)" in out
    assert not any(sha in out for sha in shas.values())
    assert len(lines) == 10, lines
    assert "held_back" not in out  # run 2025-05-02 did not forecast that item

    assert main([*args, "--files"]) == 0
    out = capsys.readouterr().out
    assert all(sha in out for sha in shas.values())

    assert main(["audit", "show", "--item", "demo:3"]) == 0
    out = capsys.readouterr().out
    assert "forecast of Plum (demo:3) at North Store (demo:L1):" in out
    assert "demo:2" not in out and "2.25" not in out  # only the item asked for
    assert main(["audit", "show", "--run-date", "2025-05-02"]) == 0
    out = capsys.readouterr().out
    assert "held_back" in out and "forecast of" not in out  # a run alone: no rows listed
    assert main(["audit", "show", "--item", "demo:nope"]) == 1


def test_duckdb_warehouse_refuses_changes_to_audit_rows(duck_url: str) -> None:
    with open_warehouse(duck_url) as w:
        audit.record_override(w, "rollback", actor="bob", model_version="m1", reason="bad night")
        for statement in (
            "update audit.overrides set actor = 'x'",
            "DELETE FROM audit.overrides",
            "truncate audit.publications",
            "  insert or replace into audit.overrides select * from audit.overrides",
            "drop table audit.overrides",
        ):
            with pytest.raises(PermissionError, match="append-only"):
                w.execute(statement)
        batch = pa.table({"event_id": ["x"]})
        with pytest.raises(PermissionError, match="append-only"):
            w.upsert_arrow("audit.overrides", batch, "event_id")
        with pytest.raises(PermissionError, match="append-only"):
            w.replace_partition("audit.overrides", "event_id", "x", batch)
        assert w.fetchall("select actor from audit.overrides") == [("bob",)]


class Recording(Warehouse):
    """Passes everything to a real warehouse and records every SQL statement."""

    def __init__(self, inner: Warehouse) -> None:
        self.inner, self.dialect, self.sql = inner, inner.dialect, []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.sql.append(sql)
        self.inner.execute(sql, params)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.sql.append(sql)
        return self.inner.fetchall(sql, params)

    def arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        self.sql.append(sql)
        return self.inner.arrow(sql, params)

    def transaction(self) -> AbstractContextManager[Warehouse]:
        return self.inner.transaction()

    def ensure_schema(self) -> None:
        self.inner.ensure_schema()

    def insert_arrow(self, qualified: str, data: pa.Table) -> int:
        self.sql.append(f"insert_arrow {qualified}")
        return self.inner.insert_arrow(qualified, data)

    def upsert_arrow(self, qualified: str, data: pa.Table, key: str) -> int:
        self.sql.append(f"upsert_arrow {qualified}")
        return self.inner.upsert_arrow(qualified, data, key)

    def replace_partition(self, qualified: str, column: str, value: Any, data: pa.Table) -> int:
        self.sql.append(f"replace_partition {qualified}")
        return self.inner.replace_partition(qualified, column, value, data)

    def checksums(
        self, schemas: Sequence[str], exclude_columns: Sequence[str] = ()
    ) -> dict[str, str]:
        return self.inner.checksums(schemas, exclude_columns)

    def close(self) -> None:
        self.inner.close()


def test_the_audit_writer_only_ever_inserts(duck_url: str, tmp_path: Path) -> None:
    with open_warehouse(duck_url) as inner:
        seed(inner, tmp_path / "lake")
        wh = Recording(inner)
        audit.record_publication(wh, D, "published")
        audit.record_publication(wh, D, "rolled_back", actor="carol", reason="wrong prices")
        audit.record_held_back(wh, D, "gate failed")
        audit.record_override(wh, "promote", model_version="m1", reason="ops override")
        audit.find_publications(wh, item="demo:1", forecast_date=FORECAST_DATE)
        with pytest.raises(ValueError, match="unknown audit decision"):
            audit.record_publication(wh, D, "deleted")
        touching = [s for s in wh.sql if re.search(r"\baudit\.", s)]
        writes = [s for s in touching if not s.lstrip().lower().startswith("select")]
        assert len(writes) == 4
        assert all(s.lstrip().lower().startswith("insert into audit.") for s in writes)
        assert not [
            s
            for s in wh.sql
            if re.match(r"\s*(update|delete|truncate)\b.*\baudit\.", s, re.I | re.S)
        ]
        counts = inner.fetchall(
            "select decision, count(*) from audit.publications group by 1 order by 1"
        )
        assert counts == [("held_back", 1), ("published", 1), ("rolled_back", 1)]
    source = "\n".join(p.read_text() for p in Path(audit.__file__).parent.glob("*.py"))
    assert not re.search(r"\b(update|delete from|truncate)\s+audit\.", source, re.I)


def test_a_multi_part_landing_is_hashed_over_every_part(tmp_path: Path) -> None:
    folder = location(tmp_path / "raw" / "erp" / "order_lines" / "date=2025-05-01")
    bodies = [b"part zero", b"part one", b"part two"]
    for k, body in enumerate(bodies):
        (tmp_path / f"p{k}").write_bytes(body)
    parts = publish_parts(folder, [tmp_path / f"p{k}" for k in range(3)])
    (folder / "part-1-killed.parquet").write_bytes(b"an unfinished attempt is not the landing")
    assert audit.records.landing_sha256(folder) == (hashlib.sha256(b"".join(bodies)).hexdigest(), 3)
    # Changing any later part changes the recorded hash: the whole landing is covered.
    parts[2].write_bytes(b"part 2!!")
    assert audit.records.landing_sha256(folder)[0] != hashlib.sha256(b"".join(bodies)).hexdigest()
    assert audit.records.landing_sha256(location(tmp_path / "gone")) == (None, 0)
