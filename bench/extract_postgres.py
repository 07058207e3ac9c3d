"""Benchmark: PostgreSQL extraction into landing Parquet against a binary COPY, same run.

    .venv/bin/python bench/extract_postgres.py                 # 10,000,000 order lines
    .venv/bin/python bench/extract_postgres.py --rows 2000000 --repeat 3

Loads N rows shaped like the demo ERP's ``sales_order_line`` into database
``nightcast_bench`` (server-side ``generate_series``; reused when the count
matches), then times, interleaved, medians of ``--repeat``:

* reference: ``psql -c "COPY (select …) TO STDOUT (FORMAT binary)" > /dev/null``
* ``COPY … (FORMAT csv)`` to /dev/null (what the fast path reads; informative)
* Nightcast ``extract_table`` with ``parallel: N`` for each N of ``--streams``
  (default 2), split on ``line_id`` (psql → pyarrow → Parquet parts), and
  single-stream (``parallel: 1``)
* with ``--psycopg``: the single-stream psycopg ``cursor.copy`` variant
* with ``--generic``: the generic SQLAlchemy ``fetchmany`` path (slow)

Each extraction runs in a child process that reports its own peak RSS (its
``psql`` children included). The load average before and after is printed: the
machine is shared, so the ratio to the reference measured in the same run is
what counts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _extract_bench import measure, peak_rss, print_table, timed

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
QUERY = "select * from sales_order_line"


def psql(db: str, *args: str) -> list[str]:
    return ["psql", "-X", "-q", "-h", HOST, "-U", "postgres", "-d", db, *args]


def load(db: str, rows: int) -> None:
    exists = subprocess.run(
        psql("postgres", "-Atc", f"select 1 from pg_database where datname = '{db}'"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not exists:
        subprocess.run(psql("postgres", "-c", f"create database {db}"), check=True)
    have = subprocess.run(
        psql(db, "-Atc", "select count(*) from sales_order_line"), capture_output=True, text=True
    )
    if have.returncode == 0 and have.stdout.strip() == str(rows):
        return
    started = time.monotonic()
    sql = f"""
    drop table if exists sales_order_line;
    create table sales_order_line (
      line_id integer primary key, order_id integer not null, line_no integer not null,
      product_id integer not null, qty double precision not null,
      unit_price double precision not null, discount_pct double precision not null,
      line_status varchar(16) not null, created_at timestamp not null,
      updated_at timestamp not null);
    insert into sales_order_line
    select g, g / 3 + 1, g % 3 + 1, g % 5000 + 1, g % 7 + 1,
           round(((g % 1000) / 10.0 + 0.99)::numeric, 2)::float8, (g % 4) * 5,
           (array['open','shipped','cancelled','returned'])[g % 4 + 1],
           timestamp '2024-01-01' + g * interval '1 second',
           timestamp '2024-01-01' + g * interval '1 second' + interval '1 hour'
    from generate_series(1, {rows}) as g;
    """
    subprocess.run(psql(db, "-v", "ON_ERROR_STOP=1", "-c", sql), check=True)
    subprocess.run(psql(db, "-c", "vacuum analyze sales_order_line"), check=True)
    print(f"loaded {rows:,} rows in {time.monotonic() - started:.1f}s", file=sys.stderr)


def child(method: str, db: str, out: str) -> None:
    """Run one extraction; print seconds, rows and peak RSS as JSON."""
    from datetime import date

    import sqlalchemy as sa

    from nightcast.sources import bulk, extract
    from nightcast.sources.mapping import SourceMapping, TableMapping

    engine = sa.create_engine(f"postgresql+psycopg://postgres@{HOST}/{db}")
    parallel = int(method.removeprefix("parallel-")) if method.startswith("parallel-") else 1
    table = TableMapping("order_lines", "full", QUERY, (), {}, parallel=parallel, split="line_id")
    mapping = SourceMapping("bench", "bench", "bench", Path("bench.yaml"))
    started = time.monotonic()
    if method == "generic":
        rows = extract._extract_generic(engine, QUERY, {}, Path(out) / "g.parquet", lambda n: None)
    else:
        bulk.PG_METHOD = "psycopg" if method == "psycopg" else "psql"
        window = extract.Window("full", None, None)
        rows = extract.extract_table(
            engine, mapping, table, date(2024, 1, 1), window, Path(out)
        ).rows
    seconds = time.monotonic() - started
    print(json.dumps({"seconds": seconds, "rows": rows, "rss": peak_rss()}))


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--db", default="nightcast_bench")
    p.add_argument("--streams", default="2", help="parallel streams, comma-separated (default 2)")
    p.add_argument("--psycopg", action="store_true", help="also time the psycopg copy variant")
    p.add_argument("--generic", action="store_true", help="also time the generic fetchmany path")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child)
        return 0
    load(args.db, args.rows)
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    methods = (
        [f"parallel-{n}" for n in args.streams.split(",")]
        + ["psql"]
        + ["psycopg"] * args.psycopg
        + ["generic"] * args.generic
    )
    references = {
        f"copy-{fmt}": (
            lambda fmt=fmt: timed(psql(args.db, "-c", f"COPY ({QUERY}) TO STDOUT (FORMAT {fmt})"))
        )
        for fmt in ("binary", "csv")
    }
    times, rss = measure(__file__, args.db, args.rows, args.repeat, methods, references)
    labels = {
        **{
            f"parallel-{n}": f"Nightcast extract_table, parallel: {n} (psql COPY csv → Arrow → Parquet)"
            for n in args.streams.split(",")
        },
        "copy-binary": "reference: psql COPY (FORMAT binary) > /dev/null",
        "copy-csv": "psql COPY (FORMAT csv) > /dev/null",
        "psql": "Nightcast extract_table, parallel: 1",
        "psycopg": "Nightcast, parallel: 1, psycopg cursor.copy variant",
        "generic": "Nightcast generic SQLAlchemy fetchmany path",
    }
    print_table(
        "PostgreSQL extraction",
        "binary COPY",
        args.rows,
        args.repeat,
        times,
        rss,
        labels,
        "copy-binary",
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "include"))
    sys.exit(main())
