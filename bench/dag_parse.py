"""Benchmark: how long each DAG file takes to parse once Airflow is imported.

    .venv/bin/python bench/dag_parse.py [--repeat 20]

The DAG processor has Airflow imported already, so that is the cost each file
adds per parse loop. Prints the median and max of ``--repeat`` parses per file.
"""

from __future__ import annotations

import argparse
import runpy
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    t0 = time.perf_counter()
    import airflow.sdk  # noqa: F401

    print(f"import airflow.sdk: {time.perf_counter() - t0:.2f}s (paid once per process)")
    print("| DAG file | first parse | median | max |")
    print("|---|---:|---:|---:|")
    for path in sorted((ROOT / "dags").glob("*.py")):
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            runpy.run_path(str(path), run_name=f"bench_{path.stem}")
            times.append(time.perf_counter() - t)
        print(
            f"| {path.name} | {times[0] * 1000:.0f} ms | {statistics.median(times) * 1000:.1f} ms "
            f"| {max(times[1:] or times) * 1000:.1f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
