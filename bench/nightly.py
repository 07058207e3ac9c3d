"""Benchmark: the nightly DAG end to end through Airflow, per stage.

    .venv/bin/python bench/nightly.py --size default --nights 3
    .venv/bin/python bench/nightly.py --size medium --nights 1

Runs the same flow as ``make demo`` in its own data folder (``data/bench-<size>``)
and prints, per night, the wall time of each stage as recorded in
``ops.task_runs`` plus the whole ``airflow dags test`` wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", default="default")
    p.add_argument("--nights", type=int, default=3)
    p.add_argument("--first-night", type=date.fromisoformat, default=date(2025, 12, 1))
    args = p.parse_args()

    data = ROOT / "data" / f"bench-{args.size}"
    os.environ["NIGHTCAST_DATA_DIR"] = str(data)
    os.environ["NIGHTCAST_WAREHOUSE_PATH"] = str(data / "warehouse.duckdb")
    os.environ["AIRFLOW_CONN_NIGHTCAST_DEMO_ERP"] = f"sqlite:///{data / 'demo_erp.sqlite'}"
    from nightcast.cli import _apply_defaults

    _apply_defaults()
    from nightcast.config import get_settings
    from nightcast.demo import run_demo
    from nightcast.warehouse.base import open_warehouse

    started = time.monotonic()
    run_demo(size=args.size, nights=args.nights, first_night=args.first_night)
    total = time.monotonic() - started

    with open_warehouse(get_settings().warehouse_url, ensure=False) as wh:
        rows = wh.fetchall(
            "select run_date, task, sum(seconds), sum(rows_out) from ops.task_runs "
            "group by 1, 2 order by 1, min(finished_at)"
        )
        series = wh.fetchall("select run_date, series_count from forecast.runs order by 1")
    print(f"\n## nightly benchmark: size={args.size}, nights={args.nights}, cpu={os.cpu_count()}")
    print("| run date | stage | seconds | rows out |")
    print("|---|---|---:|---:|")
    for day, task, secs, out in rows:
        print(f"| {day} | {task} | {secs or 0:.1f} | {out or 0:,} |")
    print(f"series forecast per night: {dict((str(d), s) for d, s in series)}")
    print(f"total wall time (ERP generation, Airflow setup, {args.nights} nights): {total:.0f}s")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS of the largest child process (airflow dags test): {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "include"))
    raise SystemExit(main())
