"""Benchmark: the forecasting engine at M5 scale (30,000 series x 2 years daily).

    .venv/bin/python bench/m5_scale.py                      # 30,000 series, 730 days
    .venv/bin/python bench/m5_scale.py --series 10000
    .venv/bin/python bench/m5_scale.py --erp data/bench-m5/erp.sqlite --threads 1

Uses the demo ERP of size ``m5`` (3,000 products x 10 stores, generated into
``--erp`` with ``nightcast.demo_erp.generate`` when the file is missing) and
builds the daily history frame as the nightly pipeline sees it
(``pipeline.forecast.history_frame`` over the dbt marts): one row per item,
location and day with order-line activity or a stock-out; demand = quantity of
open/shipped lines (cancelled orders/lines and returns are not demand); on_promo
from promotions (a promotion without a store applies to all stores); is_stockout
from ``stock_out``; only active series (not discontinued, sold in the last 91
days). 10,000 series = the first 1,000 products of the m5 ERP x its 10 stores.

Each phase runs in its own child process, so the peak RSS reported is that
phase's own (``ru_maxrss`` of the child):

- ``history``: the SQL aggregation (SQLite) to a parquet cache next to the ERP;
- ``fit``: the nightly recipe, ``ForecastModel(params={"num_threads": threads,
  "seed": 7}, horizon=28).fit(history, static_cols=STATIC_COLS,
  exog_cols=["on_promo"])``, saved for the next phase;
- ``predict``: the nightly forecast from the saved model: future on_promo frame
  (``pipeline.forecast.future_frame``) + 28-day P10/P50/P90 for every series;
- ``retrain``: the weekly retrain's compute (``pipeline.retrain``): a challenger
  fitted up to the holdout start, then the holdout windows forecast and scored
  for the challenger and for the champion (the ``fit`` phase's model).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import pandas as pd

    from nightcast.forecasting import ForecastModel
    from nightcast.warehouse.base import Warehouse

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ERP = ROOT / "data" / "bench-m5" / "erp.sqlite"
ERP_START, ERP_END = date(2024, 1, 1), date(2025, 12, 30)
HORIZON = 28
SOURCE = "demo"  # the demo mapping's source name: ids are "demo:<erp id>"
ACTIVE_WITHIN_DAYS = 91  # as pipeline.forecast.ACTIVE_WITHIN_DAYS
# The reference (the default recipe, one core).
REF_ROWS_PER_S = 210_000
REF = {10_000: {"fit_s": 33.0, "predict_s": 0.8}, 30_000: {"fit_s": 109.0, "peak_gb": 3.5}}


# ----------------------------------------------------------------------------- helpers
def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB


def emit(result: dict[str, Any]) -> None:
    result["peak_rss_gb"] = round(peak_rss_gb(), 3)
    print("RESULT " + json.dumps(result), flush=True)


def paths(args: argparse.Namespace) -> dict[str, Path]:
    base = Path(args.erp).absolute().parent
    tag = f"{args.series}s-{args.days}d"
    return {
        "history": base / f"history-{tag}.parquet",
        "promotions": base / "promotions.parquet",
        "model": base / f"model-{tag}-t{args.threads}",
        "challenger": base / f"challenger-{tag}-t{args.threads}",
    }


def load_history(args: argparse.Namespace) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(paths(args)["history"]).to_pandas()


# ----------------------------------------------------------------------------- phase: history
def build_history(args: argparse.Namespace) -> dict[str, Any]:
    """The nightly history frame from the ERP (SQL aggregation in SQLite + pandas)."""
    import numpy as np
    import pandas as pd

    t0 = time.perf_counter()
    con = sqlite3.connect(f"file:{args.erp}?mode=ro", uri=True)
    con.execute("pragma cache_size = -1000000")  # 1 GB page cache
    con.execute("pragma temp_store = memory")
    products = pd.read_sql_query(
        "select product_id, department, category, discontinued_on from product order by product_id",
        con,
    )
    n_products = args.series // 10 if args.series < 30_000 else len(products)
    products = products.iloc[:n_products]
    max_pid = int(products["product_id"].max())
    stores = pd.read_sql_query("select store_id, kind, country from store order by store_id", con)
    # the run date = the ERP's last business day (ERP_END for a freshly generated m5 ERP)
    run_date = date.fromisoformat(
        con.execute("select max(substr(order_ts, 1, 10)) from sales_order").fetchone()[0]
    )
    first_day = run_date - timedelta(days=args.days - 1)
    epoch = date(1970, 1, 1)
    d_first, d_run = (first_day - epoch).days, (run_date - epoch).days

    # Daily activity per product, store and order date (any line status: the dbt
    # int_sales_daily_activity grain), with demand = open + shipped quantity. A
    # cancelled order header cancels all its lines (the demo mapping's rule).
    sql = """
        select l.product_id, o.store_id,
               cast(julianday(substr(o.order_ts, 1, 10)) - 2440587.5 as integer) as d,
               sum(case when o.status = 'cancelled' then 0
                        when lower(l.line_status) in ('open', 'shipped') then l.qty
                        else 0 end) as q
        from sales_order_line as l
        join sales_order as o on o.order_id = l.order_id
        where l.product_id <= ?
        group by l.product_id, o.store_id, d
    """
    cur = con.execute(sql, [max_pid])
    parts = []
    while True:
        rows = cur.fetchmany(1_000_000)
        if not rows:
            break
        parts.append(np.array(rows, dtype=np.float64))
    act = np.concatenate(parts)
    t_sql = time.perf_counter() - t0
    activity = pd.DataFrame(
        {
            "p": act[:, 0].astype(np.int64),
            "s": act[:, 1].astype(np.int64),
            "d": act[:, 2].astype(np.int64),
            "y": act[:, 3],
        }
    )
    del act, parts
    activity = activity[(activity["d"] >= d_first) & (activity["d"] <= d_run)]
    so = pd.read_sql_query(
        "select distinct product_id as p, store_id as s, "
        "cast(julianday(day) - 2440587.5 as integer) as d from stock_out where product_id <= ?",
        con,
        params=[max_pid],
    )
    so = so[(so["d"] >= d_first) & (so["d"] <= d_run)]
    so["is_stockout"] = 1.0
    # series days = activity days union stock-out days
    df = activity.merge(so, on=["p", "s", "d"], how="outer")
    df["y"] = df["y"].fillna(0.0)
    df["is_stockout"] = df["is_stockout"].fillna(0.0)

    # Promotions: one flag per series day inside [starts_on, ends_on]; store NULL = all stores.
    promos = pd.read_sql_query(
        "select product_id as p, store_id as s, "
        "cast(julianday(starts_on) - 2440587.5 as integer) as d0, "
        "cast(julianday(ends_on) - 2440587.5 as integer) as d1 from promotion",
        con,
    )
    # cached for the predict phase's future frame (raw.promotions, dates as in the warehouse)
    pd.DataFrame(
        {
            "item_id": SOURCE + ":" + promos["p"].astype(str),
            "location_id": np.where(
                promos["s"].isna(), None, SOURCE + ":" + promos["s"].astype("Int64").astype(str)
            ),
            "start_date": pd.to_datetime(promos["d0"], unit="D").dt.date,
            "end_date": pd.to_datetime(promos["d1"], unit="D").dt.date,
        }
    ).to_parquet(paths(args)["promotions"], index=False)
    promos = promos[promos["p"] <= max_pid]
    length = (promos["d1"] - promos["d0"] + 1).clip(lower=0).to_numpy()
    idx = np.repeat(np.arange(len(promos)), length)
    offs = np.arange(len(idx)) - np.repeat(np.cumsum(length) - length, length)
    pdays = pd.DataFrame(
        {
            "p": promos["p"].to_numpy()[idx],
            "s": promos["s"].to_numpy()[idx],
            "d": promos["d0"].to_numpy()[idx] + offs,
        }
    )
    local = pdays[pdays["s"].notna()].astype({"s": np.int64}).drop_duplicates()
    everywhere = pdays[pdays["s"].isna()][["p", "d"]].drop_duplicates()
    df = df.merge(local.assign(pl=1.0), on=["p", "s", "d"], how="left")
    df = df.merge(everywhere.assign(pe=1.0), on=["p", "d"], how="left")
    df["on_promo"] = ((df["pl"] == 1.0) | (df["pe"] == 1.0)).astype(np.float64)
    df = df.drop(columns=["pl", "pe"])

    # Active series: sold (quantity > 0) within 91 days of the run date, item not discontinued.
    sold = df[df["y"] > 0].groupby(["p", "s"])["d"].max()
    active = sold[sold > d_run - ACTIVE_WITHIN_DAYS].reset_index()[["p", "s"]]
    disc = pd.to_datetime(products["discontinued_on"])
    live = products.loc[disc.isna() | (disc > pd.Timestamp(run_date)), "product_id"]
    active = active[active["p"].isin(live)]
    df = df.merge(active, on=["p", "s"])

    # Static columns (dim_item / dim_location), ids as the demo mapping writes them.
    items = products.rename(columns={"product_id": "p"})
    locs = stores.rename(columns={"store_id": "s"})
    df = df.merge(items[["p", "department", "category"]], on="p", how="left")
    df = df.merge(locs, on="s", how="left")
    item_id = SOURCE + ":" + df["p"].astype(str)
    location_id = SOURCE + ":" + df["s"].astype(str)
    out = pd.DataFrame(
        {
            "unique_id": item_id + "|" + location_id,
            "ds": pd.to_datetime(df["d"].to_numpy(), unit="D"),
            "y": df["y"].astype(np.float64),
            "on_promo": df["on_promo"],
            "is_stockout": df["is_stockout"],
            "item_id": item_id,
            "location_id": location_id,
            "department": df["department"].fillna("UNKNOWN"),
            "category": df["category"].fillna("UNKNOWN"),
            "location_type": df["kind"].fillna("UNKNOWN"),
            "country": df["country"].fillna("UNKNOWN"),
        }
    )
    out = out.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    out.to_parquet(paths(args)["history"], index=False)
    return {
        "phase": "history",
        "seconds": round(time.perf_counter() - t0, 1),
        "sql_seconds": round(t_sql, 1),
        "rows": len(out),
        "series": int(out["unique_id"].nunique()),
        "start": str(out["ds"].min().date()),
        "end": str(out["ds"].max().date()),
        "promo_days": int(out["on_promo"].sum()),
        "stockout_days": int(out["is_stockout"].sum()),
    }


# ----------------------------------------------------------------------------- phase: fit
def new_model(args: argparse.Namespace) -> ForecastModel:
    from nightcast.forecasting import ForecastModel

    return ForecastModel(params={"num_threads": args.threads, "seed": 7}, horizon=HORIZON)


def _time_lgb_train() -> list[float]:
    """Wrap ``lightgbm.train`` (in this child only) to split fit time: LightGBM vs the rest."""
    import lightgbm

    spent: list[float] = []
    real = lightgbm.train

    def timed(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return real(*a, **k)
        finally:
            spent.append(time.perf_counter() - t)

    lightgbm.train = timed
    return spent


def fit_phase(args: argparse.Namespace) -> dict[str, Any]:
    import shutil

    from nightcast.pipeline.forecast import STATIC_COLS

    t_load = time.perf_counter()
    history = load_history(args)
    t_load = time.perf_counter() - t_load
    model = new_model(args)
    lgb_spent = _time_lgb_train()
    t0 = time.perf_counter()
    model.fit(history, static_cols=STATIC_COLS, exog_cols=["on_promo"])
    fit_s = time.perf_counter() - t0
    out = paths(args)["model"]
    shutil.rmtree(out, ignore_errors=True)
    model.save(out)
    info = model.train_info
    return {
        "phase": "fit",
        "seconds": round(fit_s, 2),
        "load_seconds": round(t_load, 2),
        "rows": len(history),
        "series": info["series"],
        "train_rows": info["train_rows"],
        "origins": info["origins"],
        "features": len(model.feature_names),
        "lgb_train_seconds": round(sum(lgb_spent), 2),
        "panel_features_seconds": round(fit_s - sum(lgb_spent), 2),
    }


# ----------------------------------------------------------------------------- phase: predict
class _PromoWarehouse:
    """Just enough of a Warehouse for ``future_frame``: ``raw.promotions`` in DuckDB."""

    def __init__(self, promotions: pd.DataFrame) -> None:
        import duckdb

        self.con = duckdb.connect()
        self.con.execute("create schema raw")
        self.con.register("_promos", promotions)
        self.con.execute("create table raw.promotions as select * from _promos")

    def df(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        return self.con.execute(sql, list(params)).df()


def predict_phase(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    from nightcast.forecasting import ForecastModel
    from nightcast.pipeline.forecast import future_frame

    t_all = time.perf_counter()
    history = load_history(args)
    promotions = pd.read_parquet(paths(args)["promotions"])
    t_load = time.perf_counter() - t_all
    run_date = pd.Timestamp(history["ds"].max()).date()
    t0 = time.perf_counter()
    series = history[["unique_id", "item_id", "location_id"]].drop_duplicates()
    future = future_frame(cast("Warehouse", _PromoWarehouse(promotions)), series, run_date, HORIZON)
    t_future = time.perf_counter() - t0
    model = ForecastModel.load(paths(args)["model"])
    t1 = time.perf_counter()
    pred = model.predict(history, future, cutoff=pd.Timestamp(run_date))
    predict_s = time.perf_counter() - t1
    # the published grain (pipeline.forecast._forecast_rows)
    out = pred.merge(series, on="unique_id", how="left")
    return {
        "phase": "predict",
        "seconds": round(predict_s, 2),
        "future_seconds": round(t_future, 2),
        "load_seconds": round(t_load, 2),
        "total_seconds": round(time.perf_counter() - t_all, 2),
        "rows": len(history),
        "series": int(pred["unique_id"].nunique()),
        "forecast_rows": len(out),
        "future_promo_days": int(future["on_promo"].sum()),
    }


# ----------------------------------------------------------------------------- phase: retrain
def retrain_phase(args: argparse.Namespace) -> dict[str, Any]:
    import shutil

    import pandas as pd

    from nightcast.forecasting import ForecastModel
    from nightcast.forecasting.lifecycle import PromotionPolicy, decide_promotion
    from nightcast.pipeline.forecast import STATIC_COLS
    from nightcast.pipeline.retrain import holdout_cutoffs, holdout_forecasts, holdout_metrics

    t_all = time.perf_counter()
    history = load_history(args)
    t_load = time.perf_counter() - t_all
    data_end = pd.Timestamp(history["ds"].max()).date()
    cutoffs = holdout_cutoffs(data_end, HORIZON)
    # train_challenger
    t0 = time.perf_counter()
    train_part = history[history["ds"] <= pd.Timestamp(cutoffs[0])]
    challenger = new_model(args).fit(train_part, static_cols=STATIC_COLS, exog_cols=["on_promo"])
    fit_s = time.perf_counter() - t0
    out = paths(args)["challenger"]
    shutil.rmtree(out, ignore_errors=True)
    challenger.save(out)
    # evaluate: both models over the same holdout windows; decide
    t1 = time.perf_counter()
    challenger = ForecastModel.load(out)
    m_ch = holdout_metrics(holdout_forecasts(challenger, history, cutoffs))
    champion = ForecastModel.load(paths(args)["model"])
    m_champ = holdout_metrics(holdout_forecasts(champion, history, cutoffs))
    decision = decide_promotion(m_ch, m_champ, PromotionPolicy.from_env())
    eval_s = time.perf_counter() - t1
    return {
        "phase": "retrain",
        "seconds": round(time.perf_counter() - t_all - t_load, 2),
        "fit_seconds": round(fit_s, 2),
        "evaluate_seconds": round(eval_s, 2),
        "load_seconds": round(t_load, 2),
        "rows": len(train_part),
        "series": challenger.train_info["series"],
        "train_rows": challenger.train_info["train_rows"],
        "cutoffs": [c.isoformat() for c in cutoffs],
        "challenger_wape": m_ch.as_json()["wape"],
        "champion_wape": m_champ.as_json()["wape"],
        "promote": bool(decision.promote),
    }


PHASES = {
    "history": build_history,
    "fit": fit_phase,
    "predict": predict_phase,
    "retrain": retrain_phase,
}


# ----------------------------------------------------------------------------- driver
def ensure_erp(erp: Path) -> None:
    if erp.exists():
        return
    from nightcast.demo_erp import generate

    erp.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating the m5 demo ERP into {erp} (a few minutes) ...", flush=True)
    t0 = time.perf_counter()
    generate(f"sqlite:///{erp}", size="m5", start=ERP_START, end=ERP_END, seed=42)
    print(f"  done in {time.perf_counter() - t0:.0f}s", flush=True)


def run_child(args: argparse.Namespace, phase: str) -> dict[str, Any]:
    cmd = [
        sys.executable, __file__, "--phase", phase, "--series", str(args.series),
        "--days", str(args.days), "--erp", str(args.erp), "--threads", str(args.threads),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"phase {phase} failed (exit {proc.returncode})")
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT ") :])
    result["process_wall_s"] = round(wall, 1)
    print(f"  {phase}: {json.dumps(result)}", flush=True)
    return result


def fmt_rate(rows: float, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if seconds > 0 else "-"


def table(args: argparse.Namespace, res: dict[str, dict[str, Any]]) -> str:
    ref = REF.get(args.series, {})
    lines = [
        "| phase | series | input rows | training rows | seconds | input rows/s | training rows/s "
        "| series x days /s | peak RSS | reference (issue, 1 core) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    h = res.get("history")
    if h:
        lines.append(
            f"| history (SQLite -> frame) | {h['series']:,} | {h['rows']:,} | - | {h['seconds']:.1f} "
            f"| - | - | - | {h['peak_rss_gb']:.2f} GB | - |"
        )
    f = res.get("fit")
    if f:
        r = [f"{REF_ROWS_PER_S:,} rows/s"]
        if "fit_s" in ref:
            r.append(f"{ref['fit_s']:.0f} s fit")
        if "peak_gb" in ref:
            r.append(f"{ref['peak_gb']} GB peak")
        lines.append(
            f"| fit (nightly recipe) | {f['series']:,} | {f['rows']:,} | {f['train_rows']:,} "
            f"| {f['seconds']:.1f} | {fmt_rate(f['rows'], f['seconds'])} "
            f"| {fmt_rate(f['train_rows'], f['seconds'])} | {fmt_rate(f['series'] * args.days, f['seconds'])} "
            f"| {f['peak_rss_gb']:.2f} GB | {', '.join(r)} |"
        )
    p = res.get("predict")
    if p:
        pref = f"{ref['predict_s']} s predict" if "predict_s" in ref else "-"
        lines.append(
            f"| nightly predict 28 d (model.predict) | {p['series']:,} | {p['rows']:,} "
            f"| - | {p['seconds']:.1f} | {fmt_rate(p['rows'], p['seconds'])} | - | - "
            f"| {p['peak_rss_gb']:.2f} GB | {pref} |"
        )
        lines.append(
            f"| nightly predict, whole phase (read + future_frame + predict) | {p['series']:,} "
            f"| {p['rows']:,} | - | {p['total_seconds']:.1f} | - | - | - | {p['peak_rss_gb']:.2f} GB | - |"
        )
    w = res.get("retrain")
    if w:
        lines.append(
            f"| weekly retrain: challenger fit | {w['series']:,} | {w['rows']:,} | {w['train_rows']:,} "
            f"| {w['fit_seconds']:.1f} | {fmt_rate(w['rows'], w['fit_seconds'])} "
            f"| {fmt_rate(w['train_rows'], w['fit_seconds'])} "
            f"| {fmt_rate(w['series'] * (args.days - HORIZON - 7 * (len(w['cutoffs']) - 1)), w['fit_seconds'])} | - | {REF_ROWS_PER_S:,} rows/s |"
        )
        lines.append(
            f"| weekly retrain: evaluate (2 models x {len(w['cutoffs'])} windows) | {w['series']:,} "
            f"| - | - | {w['evaluate_seconds']:.1f} | - | - | - | - | - |"
        )
        lines.append(
            f"| weekly retrain, whole (fit + save + evaluate + decide) | {w['series']:,} | {w['rows']:,} "
            f"| {w['train_rows']:,} | {w['seconds']:.1f} | - | - | - | {w['peak_rss_gb']:.2f} GB | - |"
        )
    if f:
        lines.append(
            f"\nfit split: LightGBM training (validation candidates + the P50) {f['lgb_train_seconds']:.1f} s, "
            f"panel + features + Dataset prep {f['panel_features_seconds']:.1f} s"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--series", type=int, choices=(10_000, 30_000), default=30_000)
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--erp", type=Path, default=DEFAULT_ERP)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rebuild-history", action="store_true", help="ignore the cached history")
    p.add_argument("--phases", default="history,fit,predict,retrain", help="comma-separated subset")
    p.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)  # child mode
    args = p.parse_args()
    args.erp = args.erp.absolute()

    if args.phase:
        emit(PHASES[args.phase](args))
        return 0

    ensure_erp(args.erp)
    wanted = [x.strip() for x in args.phases.split(",") if x.strip()]
    res: dict[str, dict[str, Any]] = {}
    print(
        f"m5_scale: {args.series:,} series, {args.days} days, {args.threads} thread(s), ERP {args.erp}"
    )
    for phase in ("history", "fit", "predict", "retrain"):
        if phase not in wanted:
            continue
        if phase == "history" and paths(args)["history"].exists() and not args.rebuild_history:
            print(f"  history: cached {paths(args)['history']} (--rebuild-history to rebuild)")
            continue
        res[phase] = run_child(args, phase)
    print()
    print(table(args, res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
