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


# ----------------------------------------------------------------------------- analyst terms
BASELINE_LABELS = {
    "naive": "naive (the last value)",
    "seasonal_naive": "seasonal naive",
    "moving_average": "a moving average",
}


def versus_baselines(model_wape: float, baselines: dict[str, float]) -> str:
    """``model_wape`` against each baseline's in words, the best baseline first.

    e.g. "12% better than seasonal naive, 4% better than a moving average"
    (better = lower WAPE, relative to the baseline's WAPE).
    """
    parts = []
    for name, b in sorted(baselines.items(), key=lambda kv: kv[1]):
        label = BASELINE_LABELS.get(name, name.replace("_", " "))
        if not (np.isfinite(b) and b > 0 and np.isfinite(model_wape)):
            parts.append(f"not comparable with {label}")
            continue
        gain = 1.0 - model_wape / b
        if abs(gain) < 0.005:
            parts.append(f"as good as {label}")
        else:
            parts.append(f"{abs(gain):.0%} {'better' if gain > 0 else 'worse'} than {label}")
    return ", ".join(parts)


def best_baseline(baselines: dict[str, float]) -> tuple[str, float] | None:
    """The baseline with the lowest finite WAPE, or None."""
    ok = {k: v for k, v in baselines.items() if np.isfinite(v)}
    if not ok:
        return None
    name = min(ok, key=lambda k: ok[k])
    return name, ok[name]


# Demand patterns (Syntetos & Boylan, 2005): average demand interval (ADI) and squared
# coefficient of variation of non-zero demand (CV2), cut at their published 1.32 / 0.49.
ADI_CUT = 1.32
CV2_CUT = 0.49


def demand_pattern(y: ArrayLike, periods: int | None = None) -> str:
    """'smooth', 'erratic', 'intermittent', 'lumpy' or 'no demand' for one series' history.

    ``periods`` is the length of the history in periods when ``y`` leaves out
    periods without demand (a sparse frame); default ``len(y)``.
    """
    a = np.asarray(y, dtype=np.float64)
    a = a[~np.isnan(a)]
    nz = a[a > 0]
    if len(nz) == 0:
        return "no demand"
    adi = max(len(a), periods or 0) / len(nz)
    cv2 = float(np.var(nz) / np.mean(nz) ** 2) if len(nz) > 1 else 0.0
    if adi < ADI_CUT:
        return "smooth" if cv2 < CV2_CUT else "erratic"
    return "intermittent" if cv2 < CV2_CUT else "lumpy"


def volume_class(volume: pd.Series) -> pd.Series:
    """ABC class per series: A = the largest series making 80% of the volume, B the next 15%."""
    v = volume.clip(lower=0).sort_values(ascending=False, kind="stable")
    total = float(v.sum())
    if total <= 0:
        return pd.Series("C", index=volume.index)
    before = (v.cumsum() - v) / total  # share of volume in larger series
    cls = np.where(before < 0.80, "A", np.where(before < 0.95, "B", "C"))
    return pd.Series(cls, index=v.index).reindex(volume.index)


VOLUME_LABELS = {"A": "A (top 80% of volume)", "B": "B (next 15%)", "C": "C (last 5%)"}


def versus_table(frame: pd.DataFrame, model: str, baselines: tuple[str, ...]) -> dict[str, object]:
    """``model``'s WAPE on ``frame`` (columns y and forecasts) against the baselines'."""
    base = {b: wape(frame["y"], frame[b]) for b in baselines}
    engine = wape(frame["y"], frame[model])
    best = best_baseline(base)
    return {
        "engine_wape": None if not np.isfinite(engine) else round(engine, 4),
        "best_baseline": best[0] if best else None,
        "best_baseline_wape": round(best[1], 4) if best else None,
        "text": versus_baselines(engine, base),
    }


def segment_versus(
    frame: pd.DataFrame, past: pd.DataFrame, model: str, baselines: tuple[str, ...]
) -> list[dict[str, object]]:
    """Accuracy against the baselines per volume class (ABC) and per demand pattern.

    ``frame`` holds one scored row per series and date (``unique_id, y`` and the
    forecast columns); ``past`` is the history the segments are read from
    (``unique_id, y``: what a planner knew when the forecasts were made).
    """
    volume = past.groupby("unique_id")["y"].sum()
    # Periods from each series' first row to the end of ``past``: a sparse frame
    # (no rows for days without demand) still gets its zero periods counted.
    days = np.sort(past["ds"].unique())
    step = np.diff(days).min() if len(days) > 1 else np.timedelta64(1, "D")
    first = past.groupby("unique_id")["ds"].min()
    periods = ((past["ds"].max() - first) / step).astype(np.int64) + 1
    pattern = past.groupby("unique_id")["y"].apply(
        lambda s: demand_pattern(s.to_numpy(), int(periods[s.name]))
    )
    seg = pd.DataFrame(
        {"volume class": volume_class(volume).map(VOLUME_LABELS), "demand pattern": pattern}
    )
    data = frame.merge(seg, left_on="unique_id", right_index=True, how="left")
    out: list[dict[str, object]] = []
    for kind in ("volume class", "demand pattern"):
        for name, part in data.groupby(kind, sort=True):
            out.append(
                {
                    "segment_type": kind,
                    "segment": str(name),
                    "series": int(part["unique_id"].nunique()),
                    "rows": len(part),
                    **versus_table(part, model, baselines),
                }
            )
    return out
