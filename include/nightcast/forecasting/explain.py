"""Per-forecast feature contributions (SHAP values via LightGBM ``pred_contrib``).

The model predicts the *ratio* of demand to the series' scale (its recent
28-day mean, see :meth:`HistoryStats.scale`), and :meth:`ForecastModel.predict`
multiplies the booster output by that scale. SHAP values are additive in the
booster output, so multiplying every contribution and the base value by the
same row's scale keeps them additive, in units of demand:

    base_value + sum(contribution over all features) == prediction

where ``prediction`` is the *raw* quantile forecast in units: the published
value is the same number clipped at zero and sorted against the other
quantiles, so the two differ only where the raw value was negative or crossed.
``base_value`` is what the model would forecast for this series knowing only
its scale (the booster's average ratio times the scale); a contribution is how
many units one feature moved this forecast away from it. With a log-link
objective (Tweedie) SHAP values add up in log space: the base is then
exp(base) times the scale, and ``prediction - base_value`` is shared between the
features in proportion to their log-space contributions (additive again, same
signs and order). A P50 booster that corrects a base (last week's value, see
``ForecastModel.p50_base``) has that base, in units, added to the base feature's
contribution: the feature it is read from is what put it in the forecast.

Feature values are reported in readable units: level features (lags, rolling
means, EWMs, seasonal means, the levels a year back), which the model sees
divided by the scale, are multiplied back; ``log_scale`` is reported as the
scale itself; ratios (``year_ratio_5``, shares) as they are; categorical
features are reported by name in ``category_value``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from nightcast.forecasting.model import ForecastModel, PredictionDesign
from nightcast.forecasting.panel import DS, ID
from nightcast.forecasting.training import base_values

# Objectives whose booster output is exp(raw score): SHAP values are in log space.
LOG_LINK = ("tweedie", "poisson", "gamma")
# Features computed as (level / scale): multiplied back to units for display.
SCALED_PREFIXES = ("lag_", "last_known", "mean_", "std_", "ewm_", "season_mean_", "year_ago_")
EXPLANATION_COLUMNS = [
    ID,
    DS,
    "horizon",
    "quantile",
    "rank",
    "feature",
    "feature_value",
    "category_value",
    "contribution",
    "share",
    "base_value",
    "prediction",
]


def _display_values(
    model: ForecastModel, design: PredictionDesign, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Readable value of feature ``cols[i]`` in row ``rows[i]``: (number, category name)."""
    names = model.feature_names
    raw = design.x[rows, cols].astype(np.float64)
    scale = design.scale[rows]
    value = raw.copy()
    category = np.full(len(rows), None, dtype=object)
    for j, name in enumerate(names):
        hit = cols == j
        if not hit.any():
            continue
        if name.startswith(SCALED_PREFIXES):
            value[hit] = raw[hit] * scale[hit]
        elif name == "log_scale":
            value[hit] = np.expm1(raw[hit])
        elif name in model.static_cols:
            levels = np.asarray(model.categories[name] + [None], dtype=object)
            codes = raw[hit]
            idx = np.where(np.isnan(codes), len(levels) - 1, np.nan_to_num(codes)).astype(int)
            category[hit] = levels[np.clip(idx, 0, len(levels) - 1)]
            value[hit] = np.nan
    return value, category


def contributions(
    model: ForecastModel,
    design: PredictionDesign,
    quantile: str = "p50",
    num_threads: int | None = None,
) -> np.ndarray:
    """SHAP matrix in units: one row per design row, one column per feature, base last."""
    booster = model.boosters.get(quantile)
    if booster is None:
        raise ValueError(f"quantile {quantile!r} is not one of the model's {model.quantile_names}")
    extra: dict[str, Any] = {} if num_threads is None else {"num_threads": num_threads}
    raw = np.asarray(booster.predict(design.x, pred_contrib=True, **extra), dtype=np.float64)
    out = _in_units(booster, raw, design.scale)
    if quantile == "p50" and model.p50_base is not None:
        # A booster that corrects a base (the last value, say): the base is that
        # feature's contribution, so the contributions still add up to the forecast.
        j = model.feature_names.index(model.p50_base)
        out[:, j] += base_values(design.x, model.feature_names, model.p50_base) * design.scale
    if model.calibration is not None and quantile == "p50":
        # The published P50 is the booster's forecast times the calibration's level,
        # moved towards the median: the level scales every contribution alike, the
        # move is part of the base (what no feature explains).
        cal = model.calibration
        out *= cal.level
        out[:, -1] += cal.median_move(design.scale, design.horizon, model.dispersion(design.x))
    return out


def _in_units(booster: Any, raw: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """SHAP values (features, then base) of the booster's ratio output, in units."""
    if booster.params.get("objective") not in LOG_LINK:
        return raw * scale[:, None]
    # Log link: SHAP values add up in log space. In units, the base is exp(base) x scale
    # and each feature gets its share of (prediction - base) in proportion to its
    # log-space contribution: same signs, same ranking, and still additive.
    base = np.exp(raw[:, -1]) * scale
    pred = np.exp(raw.sum(axis=1)) * scale
    total = raw[:, :-1].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(total != 0, (pred - base) / total, 0.0)
    return np.column_stack([raw[:, :-1] * factor[:, None], base])


def top_contributions(
    model: ForecastModel,
    design: PredictionDesign,
    top_k: int = 5,
    quantiles: Sequence[str] = ("p50",),
    num_threads: int | None = None,
) -> pd.DataFrame:
    """Top-k features by |contribution|: one row per series, date, quantile and rank.

    ``share`` is |contribution| over the sum of |contribution| of all features of
    that forecast; ``prediction`` (the raw forecast in units) equals
    ``base_value`` plus the contributions of *all* features (see module doc).
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    n_feat = len(model.feature_names)
    k = min(top_k, n_feat)
    frames = []
    for q in quantiles:
        contrib = contributions(model, design, q, num_threads)
        feat, base = contrib[:, :n_feat], contrib[:, n_feat]
        order = np.argsort(-np.abs(feat), axis=1, kind="stable")[:, :k]
        rows = np.repeat(np.arange(len(feat)), k)
        cols = order.ravel()
        picked = feat[rows, cols]
        total_abs = np.abs(feat).sum(axis=1)
        value, category = _display_values(model, design, rows, cols)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total_abs[rows] > 0, np.abs(picked) / total_abs[rows], 0.0)
        frames.append(
            pd.DataFrame(
                {
                    ID: design.ids[rows],
                    DS: design.dates[rows],
                    "horizon": design.horizon[rows].astype(np.int32),
                    "quantile": q,
                    "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(feat)),
                    "feature": np.asarray(model.feature_names, dtype=object)[cols],
                    "feature_value": value,
                    "category_value": category,
                    "contribution": picked,
                    "share": share,
                    "base_value": base[rows],
                    "prediction": feat.sum(axis=1)[rows] + base[rows],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[EXPLANATION_COLUMNS]


def explain(
    model: ForecastModel,
    history: pd.DataFrame,
    future: pd.DataFrame | None,
    cutoff: pd.Timestamp | str | None,
    top_k: int = 5,
    series: Iterable[str] | None = None,
    quantiles: Sequence[str] = ("p50",),
    num_threads: int | None = None,
) -> pd.DataFrame:
    """Top-k contributions of the forecasts ``model.predict(history, future, cutoff)`` makes.

    ``series`` restricts the explained rows to those ``unique_id`` values; the
    design matrix is built for every series in ``history`` first, exactly as
    :meth:`ForecastModel.predict` builds it, so the explained numbers are the
    forecast's own.
    """
    design = model.prediction_design(history, future, cutoff)
    if series is not None:
        wanted = np.isin(design.ids, np.asarray(list(series), dtype=object))
        design = PredictionDesign(
            ids=design.ids[wanted],
            dates=design.dates[wanted],
            horizon=design.horizon[wanted],
            x=design.x[wanted],
            scale=design.scale[wanted],
        )
    return top_contributions(model, design, top_k, quantiles, num_threads)
