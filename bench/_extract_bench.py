"""What the extraction benchmarks share: child runs, reference timing and the table.

Each Nightcast method runs in its own child process (``--child METHOD DB OUT``) so
its peak RSS is its own; the reference command is timed in the same loop, so the
printed ratios hold on a noisy machine.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable


def peak_rss() -> int:
    """Peak RSS in bytes of this process plus its largest finished child (a client)."""
    return sum(
        resource.getrusage(who).ru_maxrss * 1024
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )


def timed(cmd: list[str]) -> float:
    """Seconds ``cmd`` takes with its output thrown away."""
    started = time.monotonic()
    with open(os.devnull, "wb") as null:
        subprocess.run(cmd, stdout=null, check=True)
    return time.monotonic() - started


def measure(
    script: str,
    db: str,
    rows: int,
    repeat: int,
    methods: list[str],
    references: dict[str, Callable[[], float]],
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Interleave ``repeat`` rounds of every reference and every method's child run."""
    times: dict[str, list[float]] = {}
    rss: dict[str, int] = {}
    for _ in range(repeat):
        for key, run in references.items():
            times.setdefault(key, []).append(run())
        for method in methods:
            with tempfile.TemporaryDirectory() as out:
                cmd = [sys.executable, script, "--child", method, db, out]
                res = json.loads(subprocess.run(cmd, capture_output=True, check=True).stdout)
            assert res["rows"] == rows, res
            times.setdefault(method, []).append(res["seconds"])
            rss[method] = max(rss.get(method, 0), res["rss"])
    return times, rss


def print_table(
    title: str,
    versus: str,
    rows: int,
    repeat: int,
    times: dict[str, list[float]],
    rss: dict[str, int],
    labels: dict[str, str],
    reference: str,
) -> None:
    """Median seconds, rows/s, peak RSS and the ratio to ``reference``, one row per method."""
    ref = statistics.median(times[reference])
    load_after = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n## {title}: {rows:,} rows, median of {repeat}, "
        f"cpu={os.cpu_count()}, load average after: {load_after}"
    )
    print(f"| method | seconds | rows/s | peak RSS | vs {versus} |")
    print("|---|---:|---:|---:|---:|")
    for key, values in times.items():
        sec = statistics.median(values)
        mem = f"{rss[key] / 2**20:,.0f} MiB" if key in rss else "-"
        print(f"| {labels[key]} | {sec:.2f} | {rows / sec:,.0f} | {mem} | {sec / ref:.2f}x |")
