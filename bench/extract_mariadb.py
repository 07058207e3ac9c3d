"""Benchmark: MariaDB extraction into landing Parquet against ``mariadb --quick``, same run.

    .venv/bin/python bench/extract_mariadb.py                  # 2,000,000 order lines
    .venv/bin/python bench/extract_mariadb.py --rows 500000 --repeat 3

Loads N rows shaped like the demo ERP's ``sales_order_line`` into database
``nightcast_bench`` (server-side ``seq_1_to_N``; reused when the count matches),
then times, interleaved, medians of ``--repeat``: the reference
``mariadb --quick -e "select …" > /dev/null``, Nightcast's ``extract_table`` (the
batch client → pyarrow → Parquet parts) with ``parallel: N`` for each N of
``--streams`` (default 2), split on ``line_id``, and single-stream (``parallel: 1``:
connectorx → Arrow → Parquet when connectorx is installed), the single-stream client
path (``mariadb --batch`` → Arrow → Parquet, the fallback) and, with ``--generic``, the
generic PyMySQL path. Each extraction runs in a child process that reports its own
peak RSS (plus its largest client child). The load
average is printed: the machine is shared, so the ratio to the reference of the
same run is what counts.
"""

from __future__ import annotations

import argparse
import importlib.util
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


def client(db: str, sql: str) -> list[str]:
    return ["mariadb", "-h", HOST, "-uroot", "--quick", db, "-e", sql]


def load(db: str, rows: int) -> None:
    subprocess.run(client("", f"create database if not exists {db}"), check=True)
    have = subprocess.run(
        ["mariadb", "-h", HOST, "-uroot", "-N", db, "-e", "select count(*) from sales_order_line"],
        capture_output=True,
        text=True,
    )
    if have.returncode == 0 and have.stdout.strip() == str(rows):
        return
    started = time.monotonic()
    sql = f"""
    drop table if exists sales_order_line;
    create table sales_order_line (
      line_id integer primary key, order_id integer not null, line_no integer not null,
      product_id integer not null, qty double not null, unit_price double not null,
      discount_pct double not null, line_status varchar(16) not null,
      created_at datetime not null, updated_at datetime not null) engine=InnoDB;
    insert into sales_order_line
    select seq, seq div 3 + 1, seq % 3 + 1, seq % 5000 + 1, seq % 7 + 1,
           round((seq % 1000) / 10.0 + 0.99, 2), (seq % 4) * 5,
           elt(seq % 4 + 1, 'open', 'shipped', 'cancelled', 'returned'),
           timestamp '2024-01-01 00:00:00' + interval seq second,
           timestamp '2024-01-01 00:00:00' + interval seq second + interval 1 hour
    from seq_1_to_{rows};
    analyze table sales_order_line;
    """
    subprocess.run(client(db, sql), check=True, stdout=subprocess.DEVNULL)
    print(f"loaded {rows:,} rows in {time.monotonic() - started:.1f}s", file=sys.stderr)


def child(method: str, db: str, out: str) -> None:
    """Run one extraction; print seconds, rows and peak RSS as JSON."""
    from datetime import date

    import sqlalchemy as sa

    from nightcast.sources import bulk, extract
    from nightcast.sources.mapping import SourceMapping, TableMapping

    engine = sa.create_engine(f"mysql+pymysql://root@{HOST}/{db}?charset=utf8mb4")
    if method == "client":
        bulk.MYSQL_METHOD = "client"
    parallel = int(method.removeprefix("parallel-")) if method.startswith("parallel-") else 1
    table = TableMapping("order_lines", "full", QUERY, (), {}, parallel=parallel, split="line_id")
    mapping = SourceMapping("bench", "bench", "bench", Path("bench.yaml"))
    started = time.monotonic()
    if method == "generic":
        rows = extract._extract_generic(engine, QUERY, {}, Path(out) / "g.parquet", lambda n: None)
    else:
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
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--db", default="nightcast_bench")
    p.add_argument("--streams", default="2", help="parallel streams, comma-separated (default 2)")
    p.add_argument("--generic", action="store_true", help="also time the generic PyMySQL path")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child)
        return 0
    load(args.db, args.rows)
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    methods = (
        [f"parallel-{n}" for n in args.streams.split(",")]
        + ["bulk", "client"]
        + (["generic"] if args.generic else [])
    )
    references = {"reference": lambda: timed(client(args.db, QUERY))}
    times, rss = measure(__file__, args.db, args.rows, args.repeat, methods, references)
    cx = importlib.util.find_spec("connectorx") is not None
    default = "connectorx → Arrow → Parquet" if cx else "mariadb --batch → Arrow → Parquet"
    labels = {
        **{
            f"parallel-{n}": f"Nightcast extract_table, parallel: {n}"
            for n in args.streams.split(",")
        },
        "reference": 'reference: mariadb --quick -e "select …" > /dev/null',
        "bulk": f"Nightcast extract_table, parallel: 1 ({default})",
        "client": "Nightcast extract_table, parallel: 1, mariadb --batch client fallback",
        "generic": "Nightcast generic PyMySQL fetchmany path",
    }
    print_table(
        "MariaDB extraction",
        "mariadb --quick",
        args.rows,
        args.repeat,
        times,
        rss,
        labels,
        "reference",
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "include"))
    sys.exit(main())
