"""Fuzz the intake invariant (issue 11) over thousands of generated CSV exports.

    .venv/bin/python bench/fuzz_intake.py --files 10000 [--warehouse duckdb|postgres]
        [--jobs 2] [--seed 0] [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]

Generates ``--files`` messy exports of the ``acme.order_lines`` table with the strategy of
``tests/pipeline/_csv_fuzz.py`` (the one ``tests/pipeline/test_intake_fuzz.py`` uses) and
runs each as one night through the real stages (extract → clean → load) on one warehouse
per worker (a temporary DuckDB file, or a fresh PostgreSQL database per worker). Each night
must either stop with an error naming source, table and file and leave ``raw.order_lines``
and the watermark unchanged, or load + quarantine exactly the records Python's strict
``csv`` reader finds in the file, every loaded value being the file's.

Prints files generated, records, loaded, quarantined, refused files (by error type),
invariant violations (must be 0; the first ones are printed in full) and files/s.
Exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "include", ROOT / "tests", ROOT / "tests" / "pipeline"):
    sys.path.insert(0, str(_p))


def _worker(args: tuple[int, int, int, str, str, int]) -> dict[str, Any]:
    index, files, seed, warehouse, pg_url, progress = args
    began = time.monotonic()
    logging.disable(logging.ERROR)  # the nights' own warnings (quarantines, drift) are expected
    from _csv_fuzz import Export, FuzzWorld, exports
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    url = None
    if warehouse == "postgres":
        import psycopg

        name = f"nightcast_fuzz_bench_{index}"
        with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
            conn.execute(f'create database "{name}"')
        url = pg_url.rsplit("/", 1)[0] + f"/{name}"
    with tempfile.TemporaryDirectory(prefix=f"nightcast-fuzz-{index}-") as tmp:
        world = FuzzWorld(Path(tmp), url)
        try:

            @hseed(seed * 1000 + index)
            @settings(
                max_examples=files,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(exports())
            def nights(export: Export) -> None:
                world.night(export)  # violations are tallied, not raised: keep going
                t = world.tally
                if t.files % progress == 0:
                    print(
                        f"[worker {index}] files {t.files} records {t.records} loaded {t.loaded} "
                        f"quarantined {t.quarantined} refused {t.refused} violations "
                        f"{len(t.violations)} ({t.files / (time.monotonic() - began):.2f} files/s)",
                        flush=True,
                    )

            nights()
        finally:
            world.close()
    t = world.tally
    return {
        "files": t.files,
        "records": t.records,
        "loaded": t.loaded,
        "quarantined": t.quarantined,
        "refused": t.refused,
        "refusals": t.refusals,
        "violations": t.violations,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--warehouse", choices=("duckdb", "postgres"), default="duckdb")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (one warehouse each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--show", type=int, default=5, help="violations to print in full")
    ap.add_argument("--progress", type=int, default=250, help="a progress line every N files")
    opts = ap.parse_args()

    jobs = max(1, min(opts.jobs, opts.files))
    shares = [opts.files // jobs + (1 if i < opts.files % jobs else 0) for i in range(jobs)]
    work = [
        (i, n, opts.seed, opts.warehouse, opts.pg_url, opts.progress) for i, n in enumerate(shares)
    ]
    started = time.monotonic()
    if jobs == 1:
        results = [_worker(work[0])]
    else:
        with mp.get_context("spawn").Pool(jobs) as pool:
            results = pool.map(_worker, work)
    seconds = time.monotonic() - started

    total: dict[str, Any] = {k: 0 for k in ("files", "records", "loaded", "quarantined")}
    total |= {"refused": 0, "refusals": {}, "violations": []}
    for r in results:
        for k in ("files", "records", "loaded", "quarantined", "refused"):
            total[k] += r[k]
        for kind, n in r["refusals"].items():
            total["refusals"][kind] = total["refusals"].get(kind, 0) + n
        total["violations"] += r["violations"]
    print(f"warehouse:            {opts.warehouse} ({jobs} worker(s), seed {opts.seed})")
    print(f"files generated:      {total['files']}")
    print(f"records (csv strict): {total['records']} in the files that loaded")
    print(f"loaded:               {total['loaded']}")
    print(f"quarantined:          {total['quarantined']}")
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(total["refusals"].items()))
    print(f"refused files:        {total['refused']} (night stopped with an error: {kinds})")
    print(f"invariant violations: {len(total['violations'])}")
    print(f"seconds:              {seconds:.1f}")
    print(f"files/s:              {total['files'] / seconds:.1f}")
    for v in total["violations"][: opts.show]:
        print("\nVIOLATION", v[:3000])
    return 1 if total["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
