"""Design matrices of :class:`~nightcast.forecasting.model.ForecastModel`.

Grain: one row per ``(series, origin, horizon step)``. Training rows are every
series at origins spaced ``origin_step`` back from the end of the panel, with a
known target; prediction rows are every series at its last period, for each
step ``1..horizon``. Features of a row use history up to its origin only
(:mod:`.features`), plus calendar, future-known (exogenous) and static columns
at the target period.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import pandas as pd

from nightcast.forecasting.features import HistoryStats
from nightcast.forecasting.panel import (
    FreqSpec,
    Panel,
    calendar,
    encode_categories,
    holiday_matrix,
)

log = logging.getLogger("nightcast.forecasting")

COUNTRY_COL = "country"


class FeatureLayout(NamedTuple):
    """What a fitted model's feature columns are built from (its settings, not data)."""

    spec: FreqSpec
    horizon: int
    calendar: tuple[str, ...] | None  # calendar features kept; None = all
    exog_cols: list[str]
    static_cols: list[str]
    categories: dict[str, list[str]]


class PredictionDesign(NamedTuple):
    """Rows ``predict`` scores: per-row series id, date, horizon, features and scale."""

    ids: np.ndarray
    dates: pd.DatetimeIndex
    horizon: np.ndarray
    x: np.ndarray
    scale: np.ndarray


def design_matrix(
    layout: FeatureLayout,
    panel: Panel,
    stats: HistoryStats,
    pairs: tuple[np.ndarray, np.ndarray],
    rows: np.ndarray,
    features: list[str],
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Feature matrix (float32), per-row scale, and its column names.

    ``pairs`` are the series and origin of each unique (series, origin) pair;
    ``rows`` is one ``(pair index, horizon)`` per matrix row as an ``[N, 2]`` int
    array. Columns follow ``features``; when it is empty (at fit) they are every
    feature the layout yields, in the order built here.
    """
    cols, scale = _feature_columns(layout, panel, stats, pairs, rows)
    names = features or list(cols)
    # Column-major: each feature is one contiguous write, and LightGBM reads this
    # layout as it is (half the time of filling a row-major matrix column by column).
    x = np.empty((len(rows), len(names)), dtype=np.float32, order="F")
    for j, name in enumerate(names):
        x[:, j] = cols[name]
    return x, scale, names


def _feature_columns(
    layout: FeatureLayout,
    panel: Panel,
    stats: HistoryStats,
    pairs: tuple[np.ndarray, np.ndarray],
    rows: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every feature column by name (insertion order = feature order) and the row scale."""
    s, o = pairs
    pair, hz = rows[:, 0], rows[:, 1]
    scale_p = stats.scale(s, o)
    origin = stats.origin_features(s, o, scale_p)
    rs, ro = s[pair], o[pair]
    rt = ro + hz
    scale = scale_p[pair]
    n_total = panel.n_periods + layout.horizon
    cal = calendar(panel.start, panel.step, n_total, layout.spec.daily)
    cols: dict[str, np.ndarray] = {"horizon": hz.astype(np.float64)}
    cols.update({k: v[pair] for k, v in origin.items()})
    cols.update(stats.seasonal_features(rs, ro, rt, scale))
    keep = layout.calendar
    cols.update({k: v[rt] for k, v in cal.items() if keep is None or k in keep})
    for c in layout.exog_cols:
        cols[c] = panel.exog[c][rs, rt]
    cols.update(_static_columns(layout, panel, rs, rt, n_total))
    return cols, scale


def _static_columns(
    layout: FeatureLayout, panel: Panel, rs: np.ndarray, rt: np.ndarray, n_total: int
) -> dict[str, np.ndarray]:
    """Category codes per row, preceded by ``is_holiday`` when there is a country column."""
    codes = {
        c: encode_categories(panel.statics[c], layout.categories[c]) for c in layout.static_cols
    }
    cols: dict[str, np.ndarray] = {}
    if COUNTRY_COL in layout.static_cols:
        hol = holiday_matrix(layout.categories[COUNTRY_COL], panel.start, panel.step, n_total)
        cc = codes[COUNTRY_COL][rs]
        known = ~np.isnan(cc)
        cols["is_holiday"] = np.zeros(len(rs))
        cols["is_holiday"][known] = hol[cc[known].astype(np.int64), rt[known]]
    for c in layout.static_cols:
        cols[c] = codes[c][rs]
    return cols


def training_rows(
    panel: Panel,
    spec: FreqSpec,
    horizon: int,
    max_origins: int,
    max_train_rows: int | None,
    seed: int,
    rows_per_pair: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(series, origin) pairs and sampled ``(pair, h)`` rows with a known target.

    Origins are every period of the last ``max_origins`` x ``spec.origin_step``
    periods before the last one (52 weeks of days for daily data); a series joins
    at an origin once it has ``spec.scale_window`` periods of history. At most ``max_train_rows`` rows,
    and at most ``rows_per_pair`` rows per pair on average, are kept, sampled
    without replacement with ``seed``.
    """
    s, o = _training_pairs(panel, spec, max_origins)
    if rows_per_pair is not None:
        budget = max(1, int(len(s) * rows_per_pair))
        max_train_rows = budget if max_train_rows is None else min(max_train_rows, budget)
    if max_train_rows is not None and max_train_rows * 4 < len(s) * horizon:
        drawn = _sample_rows(panel, s, o, horizon, max_train_rows, seed)
        if drawn is not None:
            return s, o, drawn
    pair = np.repeat(np.arange(len(s), dtype=np.int64), horizon)
    hz = np.tile(np.arange(1, horizon + 1, dtype=np.int64), len(s))
    t = o[pair] + hz
    valid = t < panel.n_periods
    valid[valid] = ~np.isnan(panel.y[s[pair[valid]], t[valid]])
    keep = np.flatnonzero(valid)
    if max_train_rows is not None and len(keep) > max_train_rows:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(keep, size=max_train_rows, replace=False))
    if len(keep) == 0:
        raise ValueError("no training rows: every target period is missing or a stock-out")
    return s, o, np.column_stack([pair[keep], hz[keep]])


def _sample_rows(
    panel: Panel, s: np.ndarray, o: np.ndarray, horizon: int, n: int, seed: int
) -> np.ndarray | None:
    """``n`` rows drawn uniformly from the valid ``(pair, h)`` rows without listing them all.

    Random candidates are drawn (with replacement) until ``n`` distinct valid ones
    are found, then ``n`` of those are kept at random: a uniform sample of the
    valid rows, at the cost of the sample rather than of every pair x step. None
    when valid rows are too rare to find that way (the caller lists them all).
    """
    rng = np.random.default_rng(seed)
    n_cand = len(s) * horizon
    found = np.zeros(0, dtype=np.int64)
    draw = int(n * 1.5) + 1_000
    for _ in range(6):
        idx = rng.integers(0, n_cand, size=draw)
        pair, hz = idx // horizon, idx % horizon + 1
        t = o[pair] + hz
        ok = t < panel.n_periods
        ok[ok] = ~np.isnan(panel.y[s[pair[ok]], t[ok]])
        found = np.union1d(found, idx[ok])
        if len(found) >= n:
            keep = np.sort(rng.choice(found, size=n, replace=False))
            return np.column_stack([keep // horizon, keep % horizon + 1])
        draw *= 2
    return None


def _training_pairs(
    panel: Panel, spec: FreqSpec, max_origins: int
) -> tuple[np.ndarray, np.ndarray]:
    """The (series, origin) pairs with enough history before the origin and data after it."""
    # Every period of the last ``max_origins`` origin steps is an origin: a forecast
    # may start on any weekday (nightly), so horizon h must not stand for one weekday.
    origins = np.arange(panel.n_periods - 2, -1, -1)[: max_origins * spec.origin_step]
    min_hist = spec.scale_window
    s_grid, o_grid = np.meshgrid(np.arange(panel.n_series), origins, indexing="ij")
    s_all, o_all = s_grid.ravel(), o_grid.ravel()
    ok = (o_all - panel.first[s_all] + 1 >= min_hist) & (o_all < panel.last[s_all])
    s, o = s_all[ok], o_all[ok]
    if len(s) == 0:
        length = panel.last - panel.first + 1
        short = np.argsort(length)[:3]
        examples = ", ".join(f"{panel.ids[i]!r} has {length[i]}" for i in short)
        raise ValueError(
            f"all {panel.n_series} series are too short to train: need at least "
            f"{min_hist + 1} periods of history ({examples})"
        )
    n_short = int(panel.n_series - len(np.unique(s)))
    if n_short:
        log.info(
            "fit: %d series shorter than %d periods not used for training",
            n_short,
            min_hist + 1,
        )
    return s, o


def validation_rows(
    panel: Panel, spec: FreqSpec, horizon: int, cuts: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every series with enough history at each period of ``cuts``, one row per step.

    Steps run ``1..horizon`` but not past the panel's last period; rows without
    a known target (before a series starts, stock-outs) are left out.
    """
    s_parts, o_parts = [], []
    for cut in cuts:
        ok = (cut - panel.first + 1 >= spec.scale_window) & (panel.last > cut)
        s_parts.append(np.flatnonzero(ok).astype(np.int64))
        o_parts.append(np.full(int(ok.sum()), cut, dtype=np.int64))
    s, o = np.concatenate(s_parts), np.concatenate(o_parts)
    pair = np.repeat(np.arange(len(s), dtype=np.int64), horizon)
    hz = np.tile(np.arange(1, horizon + 1, dtype=np.int64), len(s))
    t = o[pair] + hz
    keep = t < panel.n_periods
    keep[keep] = ~np.isnan(panel.y[s[pair[keep]], t[keep]])
    return s, o, np.column_stack([pair[keep], hz[keep]])


def prediction_rows(panel: Panel, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each series at its last period, and one ``(pair, h)`` row per step ``1..horizon``."""
    s = np.arange(panel.n_series, dtype=np.int64)
    o = panel.last.copy()
    rows = np.column_stack(
        [np.repeat(s, horizon), np.tile(np.arange(1, horizon + 1, dtype=np.int64), len(s))]
    )
    return s, o, rows
