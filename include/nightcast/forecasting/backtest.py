"""Rolling-origin backtest of the engine against simple baselines.

For each origin (cutoff) the model is refitted on data at or before it, then
forecasts ``horizon`` periods; the same windows get three baselines computed
from the same dense history: ``naive`` (last known value), ``seasonal_naive``
(same period one season back; 7 days / 52 weeks) and ``moving_average`` (mean
of the last 28 days / 4 weeks). Where a series has less than one season of
history before a target period (weekly data with under a year of history),
seasonal naive falls back to naive for that row; the ``snaive_fallback``
column marks those rows. Summarise with :func:`.metrics.summarize`.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nightcast.forecasting.features import HistoryStats
from nightcast.forecasting.metrics import summarize
from nightcast.forecasting.panel import DS, ID, FreqSpec, Panel, Y, build_panel, validate_frame

if TYPE_CHECKING:
    from nightcast.forecasting.model import ForecastModel

log = logging.getLogger("nightcast.forecasting")

ColumnChoice = tuple[list[str] | None, list[str] | None]


def _baselines(panel: Panel, model: ForecastModel) -> pd.DataFrame:
    """Baseline forecasts for every series from its last period (the cutoff)."""
    return baseline_forecasts(panel, model.spec, model.horizon)


def baseline_forecasts(panel: Panel, spec: FreqSpec, big_h: int) -> pd.DataFrame:
    """Naive, seasonal naive and moving-average forecasts of ``big_h`` periods per series.

    Each series is forecast from its last period (the cutoff); ``mase_scale`` is
    its in-sample seasonal naive error.
    """
    stats = HistoryStats(panel, spec, int(panel.last.min()))
    s = np.repeat(np.arange(panel.n_series, dtype=np.int64), big_h)
    h = np.tile(np.arange(1, big_h + 1, dtype=np.int64), panel.n_series)
    o = panel.last[s]
    lk = stats.last_known_at(s, o)
    naive = np.where(lk >= 0, panel.y[s, np.maximum(lk, 0)], np.nan)
    m = spec.season
    back = o + h - m * np.ceil(h / m).astype(np.int64)
    snaive = np.where(back >= 0, panel.y[s, np.maximum(back, 0)], np.nan)
    fallback = np.isnan(snaive)
    snaive = np.where(fallback, naive, snaive)
    ma = stats.mean(s, o, spec.ma_window)
    y = panel.y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows -> NaN scale
        # MASE scale: in-sample seasonal naive error; lag-1 naive with < 1 season of history.
        lag = m if y.shape[1] > m else 1
        diff = (
            np.abs(y[:, lag:] - y[:, :-lag]) if y.shape[1] > lag else np.full((len(y), 1), np.nan)
        )
        mase_scale = np.nanmean(diff, axis=1)
    return pd.DataFrame(
        {
            ID: panel.ids[s],
            DS: panel.dates(o + h),
            "naive": naive,
            "seasonal_naive": snaive,
            "snaive_fallback": fallback,
            "moving_average": ma,
            "mase_scale": mase_scale[s],
        }
    )


def _actuals(df: pd.DataFrame, fc: pd.DataFrame, stockout_col: str | None) -> pd.DataFrame:
    """Actuals for the forecast rows: missing periods are zero demand."""
    cols = [ID, DS, Y] + ([stockout_col] if stockout_col and stockout_col in df.columns else [])
    act = df[cols].copy()
    act[ID] = act[ID].astype(str)
    out = fc.merge(act, on=[ID, DS], how="left")
    out[Y] = out[Y].fillna(0.0)
    if stockout_col and stockout_col in out.columns:
        out["is_stockout"] = out.pop(stockout_col).fillna(0).astype(float) > 0
    else:
        out["is_stockout"] = False
    return out


def backtest(
    model: ForecastModel,
    df: pd.DataFrame,
    windows: int = 3,
    step: int | None = None,
    columns: ColumnChoice = (None, None),
) -> pd.DataFrame:
    """Refit a clone of ``model`` at ``windows`` rolling origins ``step`` periods apart.

    The last window ends at the last date of ``df``. Returns one row per
    (series, target date, cutoff) with the engine quantiles, the baselines,
    ``y`` (actual), ``is_stockout`` and ``mase_scale``. The engine's summary is
    stored in ``model.metrics['backtest']``.
    """
    validate_frame(df, (ID, DS, Y))
    if windows < 1:
        raise ValueError(f"windows must be >= 1, got {windows}")
    step = model.horizon if step is None else int(step)
    end = pd.Timestamp(df[DS].max())
    start = pd.Timestamp(df[DS].min())
    span = model.spec.step
    cutoffs = [end - (model.horizon + (windows - 1 - i) * step) * span for i in range(windows)]
    need = model.spec.scale_window + 1
    if cutoffs[0] < start + need * span:
        n_periods = int((end - start) / span) + 1
        raise ValueError(
            f"df is too short for {windows} backtest window(s) of horizon {model.horizon} "
            f"and step {step}: needs more than {model.horizon + (windows - 1) * step + need} "
            f"periods, has {n_periods}"
        )
    static_cols, exog_cols = columns
    if model.boosters and static_cols is None and exog_cols is None:
        static_cols, exog_cols = model.static_cols, model.exog_cols
    stockout_col = model.stockout_col
    parts = []
    seconds: dict[str, float] = {}
    baseline_seconds: dict[str, float] = {}
    recipes: dict[str, dict[str, object]] = {}
    for cutoff in cutoffs:
        history = df[df[DS] <= cutoff]
        t0 = time.perf_counter()
        win = model.clone().fit(history, static_cols, exog_cols, cutoff, stockout_col)
        future = None
        if win.exog_cols:
            mask = (df[DS] > cutoff) & (df[DS] <= cutoff + model.horizon * span)
            future = df.loc[mask, [ID, DS, *win.exog_cols]]
        fc = win.predict(history, future, cutoff=cutoff)
        t1 = time.perf_counter()
        panel = build_panel(history, model.spec, cutoff, [], [], stockout_col)
        base = _baselines(panel, model)
        t2 = time.perf_counter()
        key = str(cutoff.date())
        seconds[key] = round(t1 - t0, 3)
        chosen = win.train_info.get("selection", {})
        recipes[key] = {
            "objective": chosen.get("objective"),
            "rounds": chosen.get("rounds"),
            "calibration": chosen.get("calibration"),
        }
        baseline_seconds[key] = round(t2 - t1, 3)
        fc = fc.merge(base, on=[ID, DS], how="left")
        fc.insert(2, "cutoff", cutoff)
        parts.append(_actuals(df, fc, stockout_col))
        log.info("backtest: window with cutoff %s done", cutoff.date())
    result = pd.concat(parts, ignore_index=True)
    summary = summarize(result)
    model.metrics["backtest"] = {
        "windows": windows,
        "step": step,
        "cutoffs": [str(c.date()) for c in cutoffs],
        "seconds": seconds,
        "baseline_seconds": baseline_seconds,
        "recipes": recipes,
        "summary": summary.to_dict(orient="records"),
    }
    return result
