"""Benchmark: loading one run's forecasts into the PostgreSQL warehouse.

    .venv/bin/python bench/load_postgres.py [--rows 10000000] [--repeat 3]
        [--url postgresql://postgres@127.0.0.1:5432/nightcast_bench_load]

Measures in the same run (medians of --repeat), on the same Arrow table:
  * reference A: plain ADBC ingest (binary COPY) into an empty unpartitioned table;
  * reference B: ``psql \\copy … from`` a CSV file of the same rows (if psql exists);
  * Nightcast: ``Warehouse.replace_partition`` — load a new table and swap it in
    as run D's partition of ``forecast.forecasts``, all in one transaction,
    replacing an existing partition of the same size (the rerun case).
Prints seconds, rows/s and the ratio to the fastest reference.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

from nightcast.warehouse.base import open_warehouse  # noqa: E402
from nightcast.warehouse.postgres import PostgresWarehouse  # noqa: E402

RUN = date(2025, 12, 1)


def forecast_rows(n: int) -> pa.Table:
    """n forecast rows shaped like the nightly output (30,000 series x 28 days per 840k rows)."""
    rng = np.random.default_rng(0)
    idx = np.arange(n)
    series, h = idx // 28, idx % 28 + 1
    p50 = rng.gamma(2.0, 2.0, n)
    return pa.table(
        {
            "run_date": pa.array([RUN] * n, pa.date32()),
            "item_id": pa.array(np.char.add("demo:", (series // 10).astype(str))),
            "location_id": pa.array(np.char.add("demo:", (series % 10).astype(str))),
            "forecast_date": pa.array([RUN + timedelta(days=int(x)) for x in h], pa.date32()),
            "horizon": pa.array(h.astype(np.int32)),
            "p10": pa.array(p50 * 0.5),
            "p50": pa.array(p50),
            "p90": pa.array(p50 * 1.8),
            "model_version": pa.array(["m20251201-abcdef12"] * n),
        }
    )


def timed(fn: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/nightcast_bench_load")
    args = p.parse_args()
    admin, db = args.url.rsplit("/", 1)
    with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
        conn.execute(f'drop database if exists "{db}" with (force)')
        conn.execute(f'create database "{db}"')
    t = time.perf_counter()
    data = forecast_rows(args.rows)
    print(
        f"built {args.rows:,} rows in Arrow in {time.perf_counter() - t:.1f}s ({data.nbytes / 2**20:.0f} MiB)"
    )

    results: dict[str, float] = {}
    with open_warehouse(args.url) as wh:
        assert isinstance(wh, PostgresWarehouse)
        wh.execute("create table public.ref_plain (like forecast.forecasts)")

        def plain() -> None:
            wh.execute("truncate public.ref_plain")
            with wh.conn.cursor() as cur:
                cur.adbc_ingest("ref_plain", data, mode="append", db_schema_name="public")

        results["reference A: ADBC ingest (binary COPY), plain table"] = timed(plain, args.repeat)

        psql = shutil.which("psql")
        if psql:
            with tempfile.TemporaryDirectory() as tmp:
                csv = Path(tmp) / "rows.csv"
                pacsv.write_csv(data, csv, pacsv.WriteOptions(include_header=False))

                def copy_csv() -> None:
                    wh.execute("truncate public.ref_plain")
                    subprocess.run(
                        [
                            psql,
                            args.url,
                            "-q",
                            "-c",
                            f"\\copy public.ref_plain from '{csv}' (format csv)",
                        ],
                        check=True,
                    )

                results["reference B: psql \\copy from CSV"] = timed(copy_csv, args.repeat)

        def swap() -> None:
            with wh.transaction():
                wh.replace_partition("forecast.forecasts", "run_date", RUN, data)

        swap()  # the partition exists from here on: each timed call replaces it, like a rerun
        results["Nightcast replace_partition (load + swap, one transaction)"] = timed(
            swap, args.repeat
        )
        count = wh.fetchone("select count(*) from forecast.forecasts where run_date = ?", [RUN])
        assert count and count[0] == args.rows, count

    best = min(v for k, v in results.items() if k.startswith("reference"))
    print(f"\n## PostgreSQL load: {args.rows:,} forecast rows, median of {args.repeat}")
    print("| method | seconds | rows/s | vs fastest reference |")
    print("|---|---:|---:|---:|")
    for name, secs in results.items():
        print(f"| {name} | {secs:.2f} | {args.rows / secs:,.0f} | {secs / best:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
