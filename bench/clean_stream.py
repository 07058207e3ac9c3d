"""Benchmark: the clean stage in batches (``clean_landed``) against the whole-table path.

    .venv/bin/python bench/clean_stream.py                      # 25M rows streamed, 1.5M whole
    .venv/bin/python bench/clean_stream.py --rows 2000000 --whole-rows 500000

Generates landed order lines (the demo ERP's ``order_lines`` columns, every value a
string as extract lands it; about 1% bad values to quarantine and 2% superseded
duplicate keys, many of them far apart in the file) in chunks, so generating stays
within memory too. Then, each in its own process so peak RSS is that path's own:

* ``streaming``: :func:`nightcast.cleaning.clean.clean_landed` on the big landing,
  batch by batch, writing the clean and quarantine Parquet files as it goes;
* ``whole``: the path before streaming, the landing read whole + ``clean_table`` + one Parquet write per
  output, on a landing it can hold (``--whole-rows``);
* ``streaming`` on that same small landing too, for a like-for-like comparison.

Prints rows, seconds, rows/s and peak RSS (``ru_maxrss`` of the child process).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_YAML = ROOT / "include" / "nightcast" / "sources" / "mappings" / "demo.yaml"
RUN_DATE = date(2025, 12, 1)
CHUNK = 1_000_000


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """``rows`` landed order lines in ``path`` (one Parquet part), written a chunk at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = np.datetime64("2025-11-01T00:00:00", "s").astype(np.int64)
    writer = None
    try:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            line = np.arange(start + 1, start + n + 1, dtype=np.int64)
            # ~2% re-send an earlier line (an edit): nearby or anywhere earlier in the file.
            dup = rng.random(n) < 0.02
            back = np.where(
                rng.random(n) < 0.5, rng.integers(1, 1000, n), rng.integers(1, start + n + 1, n)
            )
            line = np.where(dup, np.maximum(line - back, 1), line)
            order = line // 3 + 1
            ts = base + (order * 37) % (30 * 86400)
            upd = ts + rng.integers(0, 86400, n) + dup * 86400  # a re-sent line is newer
            qty = rng.integers(1, 20, n)
            price = rng.integers(50, 50000, n) / 100
            status = np.array(["open", "shipped", "cancelled", "returned"])[rng.integers(0, 4, n)]

            def text(values: np.ndarray) -> pa.Array:
                return pc.cast(pa.array(values), pa.string())

            def stamp(seconds: np.ndarray) -> pa.Array:
                return pc.strftime(pa.array(seconds.astype("datetime64[s]")), "%Y-%m-%d %H:%M:%S")

            cols = {
                "line_id": text(line),
                "order_id": text(order),
                "order_ts": stamp(ts),
                "product_id": text(rng.integers(1, 5000, n)),
                "store_id": text(rng.integers(1, 60, n)),
                "qty": text(qty),
                "unit_price": pc.cast(pa.array(np.round(price, 2)), pa.string()),
                "amount": pc.cast(pa.array(np.round(qty * price, 2)), pa.string()),
                "line_status": pa.array(status),
                "updated_at": stamp(upd),
            }
            # ~1% bad values, spread over the file: each lands in quarantine with a reason.
            for name, bad in (
                ("qty", "x2"),
                ("order_ts", "2025-02-30 10:00:00"),
                ("line_status", "lost"),
                ("store_id", ""),
            ):
                mask = pa.array(rng.random(n) < 0.0025)
                cols[name] = pc.if_else(mask, pa.scalar(bad), cols[name])
            table = pa.table(cols)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=CHUNK)
    finally:
        if writer is not None:
            writer.close()


def run_path(kind: str, landing: Path, out: Path, batch_rows: int) -> dict[str, float]:
    """One path, in this (child) process; returns its figures."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nightcast.cleaning.clean import clean_landed, clean_table
    from nightcast.sources.mapping import load_mapping

    table = load_mapping(DEMO_YAML).tables["order_lines"]
    clean_out, q_out = out / "clean.parquet", out / "quarantine.parquet"
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if kind == "streaming":
        s = clean_landed(
            [landing],  # one Parquet file of landed rows (generate())
            table,
            "demo",
            RUN_DATE,
            clean_out,
            q_out,
            batch_rows=batch_rows,
            timezone="UTC",
        )
        rows, clean, quarantined = s.rows_in, s.rows_clean, s.rows_quarantined
    else:  # the clean stage before streaming: whole table in, two whole frames out
        res = clean_table(pq.read_table(landing), table, "demo", RUN_DATE, landing, "UTC")
        for frame, path in ((res.clean, clean_out), (res.quarantine, q_out)):
            pq.write_table(
                pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd"
            )
        rows, clean, quarantined = res.rows_in, len(res.clean), res.rows_quarantined
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "rows": rows,
        "clean": clean,
        "quarantined": quarantined,
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mib": round(peak_kib / 1024),
    }


def child(kind: str, landing: Path, out: Path, batch_rows: int) -> dict[str, float]:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--landing",
            str(landing),
            "--out",
            str(out),
            "--batch-rows",
            str(batch_rows),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, default=25_000_000, help="rows cleaned in batches")
    p.add_argument(
        "--whole-rows", type=int, default=1_500_000, help="rows for the whole-table path"
    )
    p.add_argument("--batch-rows", type=int, default=250_000)
    p.add_argument("--dir", type=Path, default=ROOT / "data" / "bench-clean-stream")
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    p.add_argument("--child", choices=["streaming", "whole"], help=argparse.SUPPRESS)
    p.add_argument("--landing", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT / "include"))
        print(json.dumps(run_path(args.child, args.landing, args.out, args.batch_rows)))
        return 0

    big = args.dir / "raw" / f"rows={args.rows}" / "part-0.parquet"
    small = args.dir / "raw" / f"rows={args.whole_rows}" / "part-0.parquet"
    for path, rows in ((big, args.rows), (small, args.whole_rows)):
        if not path.exists():
            t = time.perf_counter()
            generate(path, rows)
            print(
                f"generated {rows:,} landed rows in {time.perf_counter() - t:.1f}s: {path}",
                flush=True,
            )
    runs = [
        ("whole", small, args.whole_rows),
        ("streaming", small, args.whole_rows),
        ("streaming", big, args.rows),
    ]
    print(
        f"{'path':<10} {'rows':>12} {'clean':>12} {'quarantined':>12} {'s':>8} {'rows/s':>9} {'peak RSS':>11}"
    )
    for kind, landing, _ in runs:
        r = child(
            kind, landing, args.dir / "out" / f"{kind}-{landing.parent.name}", args.batch_rows
        )
        print(
            f"{kind:<10} {r['rows']:>12,} {r['clean']:>12,} {r['quarantined']:>12,} "
            f"{r['seconds']:>8.1f} {r['rows_per_s']:>9,} {r['peak_rss_mib']:>7,} MiB",
            flush=True,
        )
    import pyarrow.parquet as pq

    same = all(
        pq.read_table(args.dir / "out" / f"whole-{small.parent.name}" / name).equals(
            pq.read_table(args.dir / "out" / f"streaming-{small.parent.name}" / name),
            check_metadata=True,
        )
        for name in ("clean.parquet", "quarantine.parquet")
    )
    print(f"streaming and whole-table files identical on {args.whole_rows:,} rows: {same}")
    if not args.keep:
        shutil.rmtree(args.dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
