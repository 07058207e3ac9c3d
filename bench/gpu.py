"""Benchmark: LightGBM training time of the nightly model on CPU and on GPU.

    .venv/bin/python bench/gpu.py                               # 30,000 series x 730 days
    .venv/bin/python bench/gpu.py --series 2000 --days 400 --rounds 50 --threads 2
    .venv/bin/python bench/gpu.py --devices cpu,cuda

Builds a synthetic M5-like daily panel (Poisson demand with store/item levels,
weekly and yearly seasonality, promotions, stock-outs, intermittent series; the
columns the nightly history frame has) and runs the nightly recipe's ``fit``
(``ForecastModel(horizon=28).fit(..., static_cols=STATIC_COLS,
exog_cols=["on_promo"])``, one round per candidate) once to get the engine's
own training set: the design matrix, targets and weights of the P50 booster (at
most ``max_train_rows`` = 1,000,000 rows; the other quantiles are calibrated
offsets, not boosters). Then each device trains that booster for ``--rounds``
from those arrays (dataset construction included) and the script prints the
seconds per device, the ratio to CPU, and how far the device's P50 is from the
CPU's. A device that cannot train here (see ``nightcast.forecasting.device``) is
reported and skipped; with no GPU at all it prints "no GPU here: CPU only" and
exits 0. Built for < 3 minutes on a one-GPU machine with the defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from nightcast.forecasting import ForecastModel
from nightcast.forecasting.device import probe
from nightcast.pipeline.forecast import STATIC_COLS

HORIZON = 28
COUNTRIES = ("US", "DE", "FR", "GB")


def synthetic_history(n_series: int, n_days: int, seed: int = 0) -> pd.DataFrame:
    """Daily demand, one row per series and day with a sale or a stock-out (as the
    nightly history frame); grain: ``unique_id`` = item|store, 10 stores."""
    rng = np.random.default_rng(seed)
    n_stores = min(10, n_series)
    n_items = -(-n_series // n_stores)
    sid = np.arange(n_series)
    item, store = sid // n_stores, sid % n_stores
    dates = pd.date_range(end="2025-12-30", periods=n_days, freq="D")
    t = np.arange(n_days)
    level = rng.lognormal(-0.3, 1.0, n_items)[item] * rng.lognormal(0, 0.3, n_stores)[store]
    weekly = np.array([0.8, 0.8, 0.9, 1.0, 1.2, 1.5, 0.8])[dates.day_of_week.to_numpy()]
    yearly = 1 + 0.25 * np.sin(2 * np.pi * (t / 365.25 + rng.random(n_series)[:, None]))
    promo = rng.random((n_series, n_days)) < 0.05
    lam = level[:, None] * weekly[None, :] * yearly * np.where(promo, 1.8, 1.0)
    y = rng.poisson(lam).astype(np.float32)
    stockout = rng.random((n_series, n_days)) < 0.01
    y[stockout] = 0.0
    s_idx, d_idx = np.nonzero((y > 0) | stockout)
    ids = np.char.add(np.char.add("I", item.astype(str)), np.char.add("|S", store.astype(str)))
    dept = np.array([f"D{i % 7}" for i in range(n_items)])
    cat = np.array([f"C{i % 31}" for i in range(n_items)])
    frame = {
        "unique_id": pd.Categorical(ids[s_idx]),
        "ds": dates[d_idx],
        "y": y[s_idx, d_idx].astype(np.float64),
        "on_promo": promo[s_idx, d_idx].astype(np.float64),
        "is_stockout": stockout[s_idx, d_idx].astype(np.float64),
        "item_id": pd.Categorical(np.char.add("I", item.astype(str))[s_idx]),
        "location_id": pd.Categorical(np.char.add("S", store.astype(str))[s_idx]),
        "department": pd.Categorical(dept[item][s_idx]),
        "category": pd.Categorical(cat[item][s_idx]),
        "location_type": pd.Categorical(np.where(store % 3 == 0, "mall", "street")[s_idx]),
        "country": pd.Categorical(np.array(COUNTRIES)[store % len(COUNTRIES)][s_idx]),
    }
    return pd.DataFrame(frame)


def training_sets(
    history: pd.DataFrame, params: dict[str, Any]
) -> list[tuple[dict[str, Any], lgb.Dataset]]:
    """The (params, dataset) of the booster the nightly recipe's fit trains last (the P50)."""
    captured: list[tuple[dict[str, Any], lgb.Dataset]] = []

    def capture(p: dict[str, Any], data: lgb.Dataset) -> lgb.Booster:
        captured.append((p, data))
        return lgb.train({**p, "num_iterations": 1}, data)

    model = ForecastModel(params, horizon=HORIZON, trainer=capture)
    model.fit(history, static_cols=STATIC_COLS, exog_cols=["on_promo"])
    return captured


def train_all(
    sets: list[tuple[dict[str, Any], lgb.Dataset]], device: str, threads: int, n_rounds: int
) -> tuple[float, list[lgb.Booster]]:
    """Seconds to build the datasets and train every booster on ``device``."""
    rounds = {"num_iterations": n_rounds}
    t0 = time.perf_counter()
    boosters = []
    for p, data in sets:
        ds = lgb.Dataset(
            data.data,
            data.label,
            weight=data.weight,
            feature_name=data.feature_name,
            categorical_feature=data.categorical_feature,
            params={"verbosity": -1},
        )
        boosters.append(
            lgb.train({**p, "device_type": device, "num_threads": threads, **rounds}, ds)
        )
    return time.perf_counter() - t0, boosters


def p50_gap(cpu: list[lgb.Booster], other: list[lgb.Booster], x: np.ndarray) -> float:
    """Mean |P50 difference| / mean |P50| on the training rows (0 = identical)."""
    a, b = np.asarray(cpu[0].predict(x)), np.asarray(other[0].predict(x))
    return float(np.abs(a - b).mean() / max(np.abs(a).mean(), 1e-12))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=30_000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--rounds", type=int, default=300, help="boosting rounds of the booster")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    ap.add_argument("--devices", default="cpu,gpu,cuda", help="comma-separated, cpu first")
    args = ap.parse_args(argv)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    if "cpu" not in devices:
        devices.insert(0, "cpu")
    runnable = ["cpu"]
    for d in devices:
        if d == "cpu":
            continue
        found = probe(d)
        print(f"{d}: {'available' if found.ok else 'skipped: ' + found.reason}", flush=True)
        if found.ok:
            runnable.append(d)
    if runnable == ["cpu"]:
        print("no GPU here: CPU only", flush=True)

    t0 = time.perf_counter()
    history = synthetic_history(args.series, args.days)
    # One round per validation candidate: only the training set is wanted here.
    params = {"num_iterations": 1, "seed": 7, "num_threads": args.threads}
    sets = training_sets(history, params)
    x = np.asarray(sets[0][1].data)  # the P50 booster's rows
    rows, cols = x.shape
    print(
        f"training set: {args.series} series x {args.days} days, {len(history):,} history rows "
        f"-> {rows:,} training rows x {cols} features, {len(sets)} boosters x {args.rounds} "
        f"rounds (built in {time.perf_counter() - t0:.1f}s)",
        flush=True,
    )
    results: dict[str, dict[str, float]] = {}
    cpu_boosters: list[lgb.Booster] = []
    for d in runnable:
        seconds, boosters = train_all(sets, d, args.threads, args.rounds)
        if d == "cpu":
            cpu_boosters = boosters
        gap = p50_gap(cpu_boosters, boosters, x)
        results[d] = {"seconds": round(seconds, 2), "p50_gap_vs_cpu": round(gap, 4)}
    cpu_s = results["cpu"]["seconds"]
    for d, r in results.items():
        r["speedup_vs_cpu"] = round(cpu_s / r["seconds"], 2)
        print(
            f"{d:>4}: {r['seconds']:8.2f}s  speed-up vs cpu {r['speedup_vs_cpu']:5.2f}x  "
            f"P50 gap vs cpu {r['p50_gap_vs_cpu']:.2%}",
            flush=True,
        )
    print("RESULT " + json.dumps({"args": vars(args), "devices": results}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
