"""Cleaning in batches (``clean_landed``) writes exactly what cleaning the whole landing does."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nightcast.cleaning import clean as clean_module
from nightcast.cleaning.clean import clean_table
from nightcast.sources.mapping import TableMapping, load_mapping
from nightcast.storage import TMP_MARK

DEMO_YAML = Path(__file__).resolve().parents[2] / "include/nightcast/sources/mappings/demo.yaml"
RUN_DATE = date(2024, 3, 5)


@pytest.fixture(scope="module")
def lines() -> TableMapping:
    return load_mapping(DEMO_YAML).tables["order_lines"]


def _rows(n: int, seed: int) -> list[dict[str, str | None]]:
    """Order lines with keys repeated far apart (across batches), ties on updated_at,
    missing keys and updated_at, and bad values spread over the whole file."""
    rng = random.Random(seed)

    def pick(good: str | None, *bad: str | None) -> str | None:
        return rng.choice(bad) if rng.random() < 0.04 else good

    rows = []
    for i in range(n):
        line = pick(str(rng.randrange(n // 3)), None, "\x01", str(10**6 + i))
        rows.append(
            {
                "line_id": line,
                "order_id": str(rng.randrange(50)),
                "order_ts": pick("2024-03-05 10:15:00", "2024-02-30", "05/03/2024"),
                "product_id": str(rng.randrange(20)),
                "store_id": pick("2", None, ""),
                "qty": pick(rng.choice(["3", "1", "-1"]), "2.5x", "1e400", "1,5"),
                "unit_price": pick("2.50", "", "NULL", "abc"),
                "amount": "7.50",
                "line_status": pick(rng.choice(["open", "shipped"]), "weird"),
                "updated_at": pick(f"2024-03-05 1{rng.randrange(3)}:00:00", None, "bad"),
                "extra": pick("a", "b\x00c"),
            }
        )
    return rows


def _land(rows: list[dict[str, str | None]], folder: Path, parts: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    cols = list(rows[0])
    paths = []
    size = -(-len(rows) // parts)
    for p in range(parts):
        chunk = rows[p * size : (p + 1) * size]
        table = pa.table({c: pa.array([r[c] for r in chunk], pa.string()) for c in cols})
        path = folder / f"part-{p}.parquet"
        pq.write_table(table, path, row_group_size=7)
        paths.append(path)
    return paths


def _as_file(frame: pd.DataFrame, folder: Path) -> pa.Table:
    path = folder / "whole.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd")
    return pq.read_table(path)


@pytest.mark.parametrize(("n", "parts", "batch"), [(400, 1, 37), (401, 3, 50), (60, 2, 1000)])
def test_batches_write_what_the_whole_table_gives(
    tmp_path: Path, lines: TableMapping, n: int, parts: int, batch: int
) -> None:
    rows = _rows(n, seed=n)
    paths = _land(rows, tmp_path / "raw", parts)
    whole = clean_table(
        pa.concat_tables([pq.read_table(p) for p in paths]), lines, "demo", RUN_DATE, paths[0]
    )
    assert whole.rows_quarantined and len(whole.clean)
    assert (whole.quarantine["reason"] == "duplicate_key_superseded").sum() > 3
    clean_out, quarantine_out = tmp_path / "clean.parquet", tmp_path / "q.parquet"
    summary = clean_module.clean_landed(
        paths, lines, "demo", RUN_DATE, clean_out, quarantine_out, batch_rows=batch
    )
    # Exactly the files the whole-table stage writes (same rows, order, types, metadata).
    assert pq.read_table(clean_out).equals(_as_file(whole.clean, tmp_path), check_metadata=True)
    assert pq.read_table(quarantine_out).equals(
        _as_file(whole.quarantine, tmp_path), check_metadata=True
    )
    assert (summary.rows_in, summary.rows_clean, summary.rows_quarantined) == (
        n,
        len(whole.clean),
        whole.rows_quarantined,
    )
    assert summary.reasons == whole.quarantine.groupby(["column_name", "reason"]).size().to_dict()
    assert summary.unexpected_columns == whole.unexpected_columns == ["extra"]
    assert not [p for p in tmp_path.iterdir() if TMP_MARK in p.name]  # scratch gone


@pytest.mark.parametrize("bad_rows", [range(0, 120), range(0, 200)])
def test_batches_with_no_accepted_row(tmp_path: Path, lines: TableMapping, bad_rows: range) -> None:
    """Whole batches quarantined (the first ones, or every one): the same files again."""
    rows = _rows(200, seed=3)
    for i in bad_rows:
        rows[i]["qty"] = "x"
    paths = _land(rows, tmp_path / "raw", 1)
    whole = clean_table(pq.read_table(paths[0]), lines, "demo", RUN_DATE, paths[0])
    clean_out, quarantine_out = tmp_path / "clean.parquet", tmp_path / "q.parquet"
    summary = clean_module.clean_landed(
        paths, lines, "demo", RUN_DATE, clean_out, quarantine_out, batch_rows=40
    )
    assert pq.read_table(clean_out).equals(_as_file(whole.clean, tmp_path), check_metadata=True)
    assert pq.read_table(quarantine_out).equals(
        _as_file(whole.quarantine, tmp_path), check_metadata=True
    )
    assert summary.rows_clean == len(whole.clean)
    assert summary.rows_quarantined == whole.rows_quarantined


def test_an_empty_landing(tmp_path: Path, lines: TableMapping) -> None:
    path = tmp_path / "part-0.parquet"
    pq.write_table(pa.table({c: pa.array([], pa.string()) for c in _rows(3, 1)[0]}), path)
    whole = clean_table(pq.read_table(path), lines, "demo", RUN_DATE, path)
    clean_out, quarantine_out = tmp_path / "clean.parquet", tmp_path / "q.parquet"
    summary = clean_module.clean_landed([path], lines, "demo", RUN_DATE, clean_out, quarantine_out)
    assert pq.read_table(clean_out).equals(_as_file(whole.clean, tmp_path), check_metadata=True)
    assert pq.read_table(quarantine_out).equals(
        _as_file(whole.quarantine, tmp_path), check_metadata=True
    )
    assert (summary.rows_in, summary.rows_clean, summary.rows_quarantined) == (0, 0, 0)
