"""Extract: window planning, the window predicate, and landing a real SQLite table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, tzinfo
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from nightcast.sources import extract
from nightcast.sources.extract import (
    Window,
    extract_table,
    landed_parts,
    landing_path,
    plan_window,
    publish_parts,
    read_landed,
    window_sql,
)
from nightcast.sources.mapping import SourceMapping, TableMapping
from nightcast.storage import MANIFEST, Location, location

RUN_DATE = date(2024, 3, 5)


def _table(
    mode: str = "incremental",
    query: str = "select * from sales_line where {window} order by line_id",
    watermark: tuple[str, ...] = ("updated_at",),
) -> TableMapping:
    return TableMapping(
        table="order_lines", mode=mode, query=query, watermark_columns=watermark, columns={}
    )


def _source(tmp_path: Path) -> SourceMapping:
    return SourceMapping(
        source="acme", connection="acme_erp", pool="erp_acme", path=tmp_path / "acme.yaml"
    )


class _NoClock(datetime):
    """A datetime whose clock is off limits: windows depend on the run date only."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _NoClock:
        raise AssertionError("plan_window must not read the clock")

    @classmethod
    def utcnow(cls) -> _NoClock:
        raise AssertionError("plan_window must not read the clock")

    @classmethod
    def today(cls) -> _NoClock:
        raise AssertionError("plan_window must not read the clock")


@pytest.fixture
def no_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract, "datetime", _NoClock)


# --- plan_window ---------------------------------------------------------------------------


def test_full_mode_reads_everything(no_clock: None) -> None:
    window = plan_window(
        _table(mode="full", query="select * from product"),
        RUN_DATE,
        recorded=None,
        watermark=datetime(2024, 3, 1),
        lookback_days=3,
    )
    assert window == Window("full", None, None)


def test_first_incremental_run_reads_from_the_beginning_to_end_of_day(no_clock: None) -> None:
    window = plan_window(_table(), RUN_DATE, recorded=None, watermark=None, lookback_days=3)
    assert window == Window("incremental", None, datetime(2024, 3, 6, 0, 0))


def test_next_run_starts_at_watermark_minus_lookback(no_clock: None) -> None:
    window = plan_window(
        _table(), RUN_DATE, recorded=None, watermark=datetime(2024, 3, 4, 17, 30), lookback_days=3
    )
    assert window == Window("incremental", datetime(2024, 3, 1, 17, 30), datetime(2024, 3, 6))


def test_watermark_beyond_the_run_date_is_capped_at_end_of_day(no_clock: None) -> None:
    # Catching up an old night after later ones ran: never start after the window ends.
    window = plan_window(
        _table(), RUN_DATE, recorded=None, watermark=datetime(2024, 3, 20), lookback_days=2
    )
    assert window == Window("incremental", datetime(2024, 3, 4), datetime(2024, 3, 6))
    assert window.start is not None and window.end is not None
    assert window.start < window.end


def test_rerun_returns_the_recorded_window_unchanged(no_clock: None) -> None:
    recorded = Window("incremental", datetime(2024, 2, 28, 8, 15), datetime(2024, 3, 6))
    window = plan_window(
        _table(), RUN_DATE, recorded=recorded, watermark=datetime(2024, 3, 5, 23), lookback_days=3
    )
    assert window == recorded


def test_window_does_not_depend_on_when_it_is_planned(no_clock: None) -> None:
    # Same inputs, a run date long in the past: same answer, derived from the date alone.
    old = plan_window(_table(), date(2001, 1, 31), recorded=None, watermark=None, lookback_days=3)
    assert old.end == datetime(2001, 2, 1)


# --- window_sql ----------------------------------------------------------------------------


def test_window_sql_full_selects_everything() -> None:
    assert window_sql(_table(mode="full"), Window("full", None, None)) == ("1 = 1", {})


def test_window_sql_ors_every_watermark_column() -> None:
    table = _table(watermark=("l.updated_at", "o.updated_at"))
    predicate, params = window_sql(
        table, Window("incremental", datetime(2024, 3, 2, 6), datetime(2024, 3, 6))
    )
    assert predicate == (
        "((l.updated_at >= :lo and l.updated_at < :hi) or (o.updated_at >= :lo and o.updated_at < :hi))"
    )
    assert params == {"lo": "2024-03-02 06:00:00", "hi": "2024-03-06 00:00:00"}


def test_window_sql_without_start_has_only_an_upper_bound() -> None:
    table = _table(watermark=("l.updated_at", "o.updated_at"))
    predicate, params = window_sql(table, Window("incremental", None, datetime(2024, 3, 6)))
    assert predicate == "(l.updated_at < :hi or o.updated_at < :hi)"
    assert params == {"hi": "2024-03-06 00:00:00"}


# --- extract_table against a real SQLite file ---------------------------------------------

ROWS = [
    # line_id, qty, price, note, updated_at
    (1, 2, 9.5, "old", "2024-03-01 12:00:00"),
    (2, 1, 3.25, None, "2024-03-03 00:00:00"),  # exactly the window start: in
    (3, 5, 1.0, "edit", "2024-03-05 23:59:59"),  # last second of the day: in
    (4, 7, 2.5, "future", "2024-03-06 00:00:00"),  # exactly the window end: out
    (5, 1, 4.0, "late", "2024-03-07 09:00:00"),
]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'erp.sqlite'}")
    with eng.begin() as conn:
        conn.execute(
            sa.text(
                "create table sales_line (line_id integer primary key, qty integer, "
                "unit_price real, note text, updated_at text)"
            )
        )
        conn.execute(
            sa.text("insert into sales_line values (:i, :q, :p, :n, :u)"),
            [dict(zip("iqpnu", r, strict=True)) for r in ROWS],
        )
    yield eng
    eng.dispose()


def _window(start: datetime | None, end: datetime) -> Window:
    return Window("incremental", start, end)


def test_extract_lands_only_rows_in_the_window_as_strings(
    tmp_path: Path, engine: sa.Engine
) -> None:
    lake = tmp_path / "lake"
    result = extract_table(
        engine,
        _source(tmp_path),
        _table(),
        RUN_DATE,
        _window(datetime(2024, 3, 3), datetime(2024, 3, 6)),
        lake,
    )

    expected = location(lake / "raw" / "acme" / "order_lines" / "date=2024-03-05")
    assert result.path == expected == landing_path(lake, "acme", "order_lines", RUN_DATE)
    assert result.rows == 2
    landed = read_landed(expected)
    assert landed.column_names == ["line_id", "qty", "unit_price", "note", "updated_at"]
    assert all(f.type == pa.string() for f in landed.schema)
    assert landed.to_pylist() == [
        {
            "line_id": "2",
            "qty": "1",
            "unit_price": "3.25",
            "note": None,
            "updated_at": "2024-03-03 00:00:00",
        },
        {
            "line_id": "3",
            "qty": "5",
            "unit_price": "1.0",
            "note": "edit",
            "updated_at": "2024-03-05 23:59:59",
        },
    ]


def test_first_run_window_reads_everything_before_the_end(
    tmp_path: Path, engine: sa.Engine
) -> None:
    result = extract_table(
        engine, _source(tmp_path), _table(), RUN_DATE, _window(None, datetime(2024, 3, 6)), tmp_path
    )
    assert read_landed(result.path).column("line_id").to_pylist() == ["1", "2", "3"]


def test_full_mode_lands_every_row(tmp_path: Path, engine: sa.Engine) -> None:
    table = _table(
        mode="full", query="select line_id from sales_line order by line_id", watermark=()
    )
    result = extract_table(
        engine, _source(tmp_path), table, RUN_DATE, Window("full", None, None), tmp_path
    )
    assert result.rows == len(ROWS)
    assert read_landed(result.path).column("line_id").to_pylist() == ["1", "2", "3", "4", "5"]


def test_any_watermark_column_in_the_window_selects_the_row(tmp_path: Path) -> None:
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'two.sqlite'}")
    with eng.begin() as conn:
        conn.execute(sa.text("create table t (id integer, line_ts text, header_ts text)"))
        conn.execute(
            sa.text("insert into t values (:i, :l, :h)"),
            [
                {"i": 1, "l": "2024-03-05 10:00:00", "h": "2024-01-01 00:00:00"},  # line edited
                {"i": 2, "l": "2024-01-01 00:00:00", "h": "2024-03-05 10:00:00"},  # header edited
                {"i": 3, "l": "2024-01-01 00:00:00", "h": "2024-01-01 00:00:00"},  # neither
            ],
        )
    table = _table(
        query="select id from t where {window} order by id", watermark=("line_ts", "header_ts")
    )
    result = extract_table(
        eng,
        _source(tmp_path),
        table,
        RUN_DATE,
        _window(datetime(2024, 3, 4), datetime(2024, 3, 6)),
        tmp_path,
    )
    eng.dispose()
    assert read_landed(result.path).column("id").to_pylist() == ["1", "2"]


def test_extract_replaces_the_landing_file_atomically(tmp_path: Path, engine: sa.Engine) -> None:
    path = landing_path(tmp_path, "acme", "order_lines", RUN_DATE)
    _publish(path, tmp_path, {"stale": ["x"] * 10})

    result = extract_table(
        engine, _source(tmp_path), _table(), RUN_DATE, _window(None, datetime(2024, 3, 6)), tmp_path
    )

    assert result.path == path
    landed = read_landed(path)
    assert "stale" not in landed.column_names
    assert landed.num_rows == 3
    (part,) = landed_parts(path)
    assert [f.name for f in path.files("*")] == [MANIFEST, part.name]
    assert sorted(p.name for p in path.local_path().iterdir()) == [MANIFEST, part.name]


def test_broken_query_names_source_table_and_mapping_and_keeps_the_old_file(
    tmp_path: Path, engine: sa.Engine
) -> None:
    path = landing_path(tmp_path, "acme", "order_lines", RUN_DATE)
    (old,) = _publish(path, tmp_path, {"line_id": ["41", "42"]})
    table = _table(query="select * from no_such_table where {window}")

    with pytest.raises(RuntimeError) as info:
        extract_table(
            engine,
            _source(tmp_path),
            table,
            RUN_DATE,
            _window(None, datetime(2024, 3, 6)),
            tmp_path,
        )

    msg = str(info.value)
    assert "'acme'" in msg
    assert "'order_lines'" in msg
    assert "acme.yaml" in msg
    assert "no_such_table" in msg
    # The previous landing is untouched and no temporary file is left behind.
    assert read_landed(path).column("line_id").to_pylist() == ["41", "42"]
    assert sorted(p.name for p in path.local_path().iterdir()) == [MANIFEST, old.name]


def _publish(path: Location, tmp_path: Path, columns: dict[str, list[str]]) -> list[Location]:
    """Land ``columns`` as an earlier extract would have."""
    part = tmp_path / "earlier-part.parquet"
    pq.write_table(pa.table(columns), part)
    return publish_parts(path, [part])


def test_empty_window_lands_an_empty_file_with_the_columns(
    tmp_path: Path, engine: sa.Engine
) -> None:
    result = extract_table(
        engine,
        _source(tmp_path),
        _table(),
        RUN_DATE,
        _window(datetime(2030, 1, 1), datetime(2030, 1, 2)),
        tmp_path,
    )
    assert result.rows == 0
    landed = read_landed(result.path)
    assert landed.num_rows == 0
    assert landed.column_names == ["line_id", "qty", "unit_price", "note", "updated_at"]
    assert all(f.type == pa.string() for f in landed.schema)


def test_extract_streams_in_batches(
    tmp_path: Path, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extract, "BATCH_ROWS", 2)
    table = _table(
        mode="full", query="select line_id from sales_line order by line_id", watermark=()
    )
    result = extract_table(
        engine, _source(tmp_path), table, RUN_DATE, Window("full", None, None), tmp_path
    )
    assert result.rows == len(ROWS)
    assert read_landed(result.path).column("line_id").to_pylist() == ["1", "2", "3", "4", "5"]
