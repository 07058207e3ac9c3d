"""Backtest the engine on any long-format file (the ``nightcast backtest`` command).

:func:`load_series` reads a CSV or Parquet file, renames the chosen columns to
``unique_id, ds, y`` and validates them, raising :class:`InputError` with a
one-line message that names the column, the offending value and an example
key. :func:`run_backtest` runs :meth:`ForecastModel.backtest` (which scores
the naive, seasonal naive and moving-average baselines on the same windows)
and returns a JSON-ready report; :func:`format_report` renders it as text.

Defaults: the horizon is 28 periods for daily and 8 for weekly data; the
number of windows is 3, or as many as the history allows (at least 1); the
windows are ``horizon`` periods apart and the last one ends at the last date.
Weekly seasonal naive needs 52 weeks of history before each target week: where
there is less it falls back to naive, and the report says for how many rows.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nightcast.forecasting.metrics import (
    coverage,
    pinball,
    segment_versus,
    summarize,
    versus_table,
)
from nightcast.forecasting.model import ForecastModel
from nightcast.forecasting.panel import DS, ID, Y, freq_spec

MODELS = {
    "engine": "p50",
    "naive": "naive",
    "seasonal_naive": "seasonal_naive",
    "moving_average": "moving_average",
}
DEFAULT_HORIZON = {"D": 28, "W": 8}
DEFAULT_WINDOWS = 3


class InputError(ValueError):
    """Input data the backtest cannot use (reported without a traceback)."""


def _key(df: pd.DataFrame, i: Any, id_col: str, date_col: str) -> str:
    return f"{id_col}={df.at[i, id_col]!r}, {date_col}={df.at[i, date_col]!r}"


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a ``.csv`` (optionally compressed) or ``.parquet`` file."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"input file not found: {p}")
    name = p.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(p)
        if name.endswith((".csv", ".csv.gz", ".csv.zip", ".csv.bz2", ".txt")):
            return pd.read_csv(p)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {p}: {first}") from exc
    raise InputError(f"unsupported input format {p.suffix!r}: use .csv or .parquet")


def prepare(
    raw: pd.DataFrame, id_col: str, date_col: str, target_col: str, freq: str
) -> pd.DataFrame:
    """Validate ``raw`` and return ``unique_id, ds, y`` (ids as strings, y float)."""
    cols = [id_col, date_col, target_col]
    if len(set(cols)) < 3:
        raise InputError(f"--id-col, --date-col and --target-col must differ, got {cols}")
    missing = [c for c in cols if c not in raw.columns]
    if missing:
        raise InputError(
            f"column(s) {missing} not in the input; it has {list(map(str, raw.columns))}"
        )
    if len(raw) == 0:
        raise InputError("the input has no rows")
    df = raw[cols].copy()
    if df[id_col].isna().any():
        i = df.index[df[id_col].isna()][0]
        raise InputError(
            f"id column {id_col!r} has {int(df[id_col].isna().sum())} missing value(s), "
            f"e.g. row {i} ({date_col}={df.at[i, date_col]!r})"
        )
    ds = pd.to_datetime(df[date_col], errors="coerce")
    bad = ds.isna()
    if bad.any():
        i = df.index[bad][0]
        raise InputError(
            f"date column {date_col!r} has {int(bad.sum())} missing or unparseable value(s), "
            f"e.g. {df.at[i, date_col]!r} ({id_col}={df.at[i, id_col]!r})"
        )
    if getattr(ds.dt, "tz", None) is not None:
        ds = ds.dt.tz_localize(None)
    y = df[target_col]
    if pd.api.types.is_bool_dtype(y):
        raise InputError(f"target column {target_col!r} must be numeric, got booleans")
    y_num = pd.to_numeric(y, errors="coerce")
    bad = y_num.isna() & y.notna()
    if bad.any():
        i = df.index[bad][0]
        raise InputError(
            f"target column {target_col!r} must be numeric: {int(bad.sum())} value(s) are not, "
            f"e.g. {y[i]!r} at ({_key(df, i, id_col, date_col)})"
        )
    if y_num.isna().any():
        i = df.index[y_num.isna()][0]
        raise InputError(
            f"target column {target_col!r} has {int(y_num.isna().sum())} missing value(s), "
            f"e.g. at ({_key(df, i, id_col, date_col)}); fill them (0 = no demand) or drop the rows"
        )
    if not np.isfinite(y_num.to_numpy(np.float64)).all():
        i = df.index[~np.isfinite(y_num.to_numpy(np.float64))][0]
        raise InputError(
            f"target column {target_col!r} has infinite value(s), "
            f"e.g. {y[i]!r} at ({_key(df, i, id_col, date_col)})"
        )
    out = pd.DataFrame({ID: df[id_col].astype(str), DS: ds, Y: y_num.astype(np.float64)})
    dup = out.duplicated([ID, DS], keep=False)
    if dup.any():
        first = out[dup].iloc[0]
        n_keys = int(out.duplicated([ID, DS]).sum())
        times = int(((out[ID] == first[ID]) & (out[DS] == first[DS])).sum())
        raise InputError(
            f"{n_keys} duplicated ({id_col}, {date_col}) key(s), e.g. "
            f"({first[ID]!r}, {first[DS].date()}) appears {times} times; "
            "aggregate to one row per series and period first"
        )
    _check_grid(out, freq, date_col)
    return out.sort_values([ID, DS], ignore_index=True)


def _check_grid(df: pd.DataFrame, freq: str, date_col: str) -> None:
    spec = freq_spec(freq)
    start = df[DS].min()
    off = (df[DS] - start) % spec.step
    bad = off != pd.Timedelta(0)
    if bad.any():
        ex = df.loc[bad].iloc[0]
        what = "midnight dates" if spec.daily else f"one date per week, on a {start.day_name()}"
        raise InputError(
            f"date column {date_col!r} is not on a regular {'daily' if spec.daily else 'weekly'} "
            f"grid (expected {what}): e.g. {ex[DS]} for {ex[ID]!r}"
        )


def max_windows(df: pd.DataFrame, model: ForecastModel, step: int) -> int:
    """How many backtest windows the history of ``df`` allows (0 = not even one)."""
    n_periods = int((df[DS].max() - df[DS].min()) / model.spec.step) + 1
    need = model.spec.scale_window + 2  # periods up to and including the first cutoff
    spare = n_periods - need - model.horizon
    return 0 if spare < 0 else spare // step + 1


def run_backtest(
    df: pd.DataFrame,
    freq: str = "D",
    horizon: int | None = None,
    windows: int | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Backtest the engine and the baselines on ``df`` (``unique_id, ds, y``)."""
    key = freq_spec(freq).name
    h = DEFAULT_HORIZON[key] if horizon is None else int(horizon)
    if h < 1:
        raise InputError(f"--horizon must be >= 1, got {h}")
    model = ForecastModel(params, horizon=h, freq=key)
    n_periods = int((df[DS].max() - df[DS].min()) / model.spec.step) + 1
    possible = max_windows(df, model, h)
    need = model.spec.scale_window + 2 + h
    if possible < 1:
        raise InputError(
            f"history too short: {n_periods} {'days' if key == 'D' else 'weeks'} in all, a "
            f"backtest with horizon {h} needs at least {need} (try a smaller --horizon)"
        )
    if windows is None:
        windows = min(DEFAULT_WINDOWS, possible)
    elif windows < 1:
        raise InputError(f"--windows must be >= 1, got {windows}")
    elif windows > possible:
        raise InputError(
            f"history too short for {windows} windows of horizon {h}: {n_periods} periods "
            f"allow at most {possible} (needs {need + (windows - 1) * h})"
        )
    t0 = time.perf_counter()
    try:
        bt = model.backtest(df, windows=windows, step=h, static_cols=[], exog_cols=[])
    except ValueError as exc:  # e.g. every series too short to train on
        raise InputError(str(exc).splitlines()[0]) from exc
    wall = time.perf_counter() - t0
    meta = model.metrics["backtest"]
    fallback = float(bt["snaive_fallback"].mean()) if "snaive_fallback" in bt else 0.0
    return {
        "rows": len(df),
        "series": int(df[ID].nunique()),
        "start": str(df[DS].min().date()),
        "end": str(df[DS].max().date()),
        "freq": key,
        "horizon": h,
        "windows": windows,
        "cutoffs": meta["cutoffs"],
        "season": model.spec.season,
        "seasonal_naive_fallback_share": round(fallback, 4),
        "wall_seconds": round(wall, 2),
        "metrics": _metrics(bt, meta),
        "versus": _versus(bt),
        "segments": _segments(bt, df),
        "per_window": _per_window(bt, meta.get("seconds", {})),
    }


def _clean(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return None if math.isnan(float(v)) else round(float(v), 4)
    return v


def _metrics(bt: pd.DataFrame, meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    summary = summarize(bt, models=tuple(MODELS.values()))
    data = bt[~bt["is_stockout"]] if "is_stockout" in bt else bt
    engine_s = float(sum(meta.get("seconds", {}).values()))
    base_s = float(sum(meta.get("baseline_seconds", {}).values()))
    out: dict[str, dict[str, Any]] = {}
    for name, col in MODELS.items():
        row = summary.loc[col]
        m: dict[str, Any] = {
            "wape": row["wape"],
            "mase": row.get("mase", float("nan")),
            "bias": row["bias"],
            "pinball_p50": pinball(data[Y], data[col], 0.5),
        }
        if name == "engine":
            m["pinball_p10"] = row.get("pinball_p10", float("nan"))
            m["pinball_p90"] = row.get("pinball_p90", float("nan"))
            m["coverage_p10_p90"] = coverage(data[Y], data["p10"], data["p90"])
            m["fit_predict_seconds"] = engine_s  # all windows together
        else:
            m["fit_predict_seconds"] = base_s  # all three baselines together
        out[name] = {k: _clean(v) for k, v in m.items()}
    return out


BASELINES = ("naive", "seasonal_naive", "moving_average")


def _scored(bt: pd.DataFrame) -> pd.DataFrame:
    data = bt[~bt["is_stockout"]] if "is_stockout" in bt else bt
    return data[data[Y].notna()]


def _versus(bt: pd.DataFrame) -> dict[str, Any]:
    """The engine's WAPE against the best baseline's, and against each in words."""
    return versus_table(_scored(bt), "p50", BASELINES)


def _segments(bt: pd.DataFrame, df: pd.DataFrame) -> list[dict[str, Any]]:
    """Accuracy vs the baselines per volume class and demand pattern, classes taken
    from each series' history before the first cutoff (what a planner knew then)."""
    past = df[df[DS] <= pd.Timestamp(bt["cutoff"].min())]
    return segment_versus(_scored(bt), past, "p50", BASELINES)


def _per_window(bt: pd.DataFrame, seconds: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for cutoff, part in bt.groupby("cutoff", sort=True):
        summary = summarize(part, models=tuple(MODELS.values()))
        key = str(pd.Timestamp(cutoff).date())
        row: dict[str, Any] = {"cutoff": key, "engine_seconds": seconds.get(key)}
        for name, col in MODELS.items():
            row[f"{name}_wape"] = _clean(summary.loc[col, "wape"])
        row["engine_coverage_p10_p90"] = _clean(summary.loc["p50", "coverage_p10_p90"])
        rows.append(row)
    return rows


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:.1%}" if pct else f"{v:.3f}"


def format_report(rep: dict[str, Any]) -> str:
    """Readable text: one row per model, then WAPE per window."""
    unit = "days" if rep["freq"] == "D" else "weeks"
    lines = [
        f"{rep['series']} series, {rep['rows']} rows, {rep['start']} .. {rep['end']} "
        f"(freq {rep['freq']}); {rep['windows']} window(s) of {rep['horizon']} {unit}, "
        f"cutoffs {', '.join(rep['cutoffs'])}",
        "",
        f"{'model':<16}{'WAPE':>8}{'MASE':>8}{'bias':>8}{'pinball50':>11}{'pinball10':>11}"
        f"{'pinball90':>11}{'cov10-90':>10}{'fit+pred s':>12}",
    ]
    for name, m in rep["metrics"].items():
        bias_txt = "-" if m["bias"] is None else f"{m['bias']:+.3f}"
        lines.append(
            f"{name:<16}{_fmt(m['wape']):>8}{_fmt(m['mase']):>8}{bias_txt:>8}"
            f"{_fmt(m['pinball_p50']):>11}{_fmt(m.get('pinball_p10')):>11}"
            f"{_fmt(m.get('pinball_p90')):>11}{_fmt(m.get('coverage_p10_p90'), True):>10}"
            f"{m['fit_predict_seconds']:>12.2f}"
        )
    vs = rep.get("versus")
    if vs:
        lines += ["", f"engine vs the baselines: {vs['text']}"]
    if rep.get("segments"):
        lines += ["", "by segment (engine WAPE; vs the baselines, best first):"]
        for sg in rep["segments"]:
            lines.append(
                f"  {sg['segment_type']:<15}{sg['segment']:<24}{sg['series']:>6} series  "
                f"WAPE {_fmt(sg['engine_wape'])}  {sg['text']}"
            )
    lines += ["", "WAPE per window:"]
    lines.append(f"{'cutoff':<12}" + "".join(f"{n:>16}" for n in MODELS))
    for w in rep["per_window"]:
        lines.append(f"{w['cutoff']:<12}" + "".join(f"{_fmt(w[f'{n}_wape']):>16}" for n in MODELS))
    if rep["seasonal_naive_fallback_share"] > 0:
        lines.append(
            f"\nnote: seasonal naive (season {rep['season']}) fell back to naive for "
            f"{rep['seasonal_naive_fallback_share']:.0%} of rows (less than one season of history)"
        )
    lines.append(
        "fit+pred s: total over the windows; the baselines' figure is for all three together"
    )
    return "\n".join(lines)
