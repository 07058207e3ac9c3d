"""Pure forecast-accuracy metrics (NumPy in, float out) and a backtest summary.

Conventions: ``y`` actuals, ``yhat`` forecasts; NaN pairs are ignored.

- WAPE = sum|y - yhat| / sum|y|
- bias = sum(yhat - y) / sum|y|   (positive = over-forecast)
- MASE = mean|y - yhat| / mean|y_t - y_{t-m}| over the training history
- pinball(q) = mean(max(q (y - yhat), (q - 1)(y - yhat)))
- coverage = share of y inside [lo, hi]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike


def _pair(y: ArrayLike, yhat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y, dtype=np.float64)
    b = np.asarray(yhat, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"y and yhat shapes differ: {a.shape} vs {b.shape}")
    ok = ~(np.isnan(a) | np.isnan(b))
    return a[ok], b[ok]


def wape(y: ArrayLike, yhat: ArrayLike) -> float:
    a, b = _pair(y, yhat)
    den = np.abs(a).sum()
    return float(np.abs(a - b).sum() / den) if den > 0 else float("nan")


def bias(y: ArrayLike, yhat: ArrayLike) -> float:
    a, b = _pair(y, yhat)
    den = np.abs(a).sum()
    return float((b - a).sum() / den) if den > 0 else float("nan")


def mae(y: ArrayLike, yhat: ArrayLike) -> float:
    a, b = _pair(y, yhat)
    return float(np.abs(a - b).mean()) if len(a) else float("nan")


def seasonal_naive_scale(y_train: ArrayLike, season: int = 1) -> float:
    """In-sample MAE of the seasonal naive forecast (the MASE denominator)."""
    a = np.asarray(y_train, dtype=np.float64)
    if len(a) <= season:
        return float("nan")
    diff = np.abs(a[season:] - a[:-season])
    diff = diff[~np.isnan(diff)]
    return float(diff.mean()) if len(diff) else float("nan")


def mase(y: ArrayLike, yhat: ArrayLike, y_train: ArrayLike, season: int = 1) -> float:
    scale = seasonal_naive_scale(y_train, season)
    if not scale > 0:
        return float("nan")
    return mae(y, yhat) / scale


def pinball(y: ArrayLike, yhat: ArrayLike, q: float) -> float:
    a, b = _pair(y, yhat)
    if not len(a):
        return float("nan")
    diff = a - b
    return float(np.maximum(q * diff, (q - 1) * diff).mean())


def coverage(y: ArrayLike, lo: ArrayLike, hi: ArrayLike) -> float:
    a = np.asarray(y, dtype=np.float64)
    lo_a = np.asarray(lo, dtype=np.float64)
    hi_a = np.asarray(hi, dtype=np.float64)
    ok = ~(np.isnan(a) | np.isnan(lo_a) | np.isnan(hi_a))
    if not ok.any():
        return float("nan")
    return float(((a[ok] >= lo_a[ok]) & (a[ok] <= hi_a[ok])).mean())


def summarize(
    bt: pd.DataFrame,
    models: tuple[str, ...] = ("p50", "naive", "seasonal_naive", "moving_average"),
    quantiles: tuple[str, ...] = ("p10", "p50", "p90"),
    exclude_stockouts: bool = True,
) -> pd.DataFrame:
    """One row per model (indexed by, and with a ``model`` column of, its name):
    WAPE, bias, MASE (needs ``mase_scale``), and for the engine, pinball loss
    per quantile and P10-P90 coverage.

    ``bt`` is :func:`nightcast.forecasting.backtest.backtest` output. Stock-out
    actuals are censored and left out unless ``exclude_stockouts`` is False.
    """
    data = bt
    if exclude_stockouts and "is_stockout" in data.columns:
        data = data[~data["is_stockout"].astype(bool)]
    data = data[data["y"].notna()]
    rows = []
    for m in models:
        if m not in data.columns:
            continue
        row: dict[str, float | str] = {
            "model": m,
            "wape": wape(data["y"], data[m]),
            "bias": bias(data["y"], data[m]),
        }
        if "mase_scale" in data.columns:
            sc = data["mase_scale"].to_numpy(np.float64)
            ok = sc > 0
            err = np.abs(data["y"].to_numpy(np.float64) - data[m].to_numpy(np.float64))
            row["mase"] = float(np.nanmean(err[ok] / sc[ok])) if ok.any() else float("nan")
        if m == "p50":
            for qn in quantiles:
                if qn in data.columns:
                    row[f"pinball_{qn}"] = pinball(data["y"], data[qn], int(qn[1:]) / 100)
            lo, hi = quantiles[0], quantiles[-1]
            if lo in data.columns and hi in data.columns:
                row[f"coverage_{lo}_{hi}"] = coverage(data["y"], data[lo], data[hi])
        rows.append(row)
    out = pd.DataFrame(rows)
    out.index = pd.Index(out["model"].tolist())
    return out
