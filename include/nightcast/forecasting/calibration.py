"""Calibrated quantiles around the P50, from the validation windows' residuals.

The engine trains one point booster. Every published quantile is that
booster's forecast plus an offset in units of the series scale,
``p_q = booster + offset_q * scale``, where ``offset_q`` comes from the
normalised residuals ``(y - forecast) / scale`` the model made on data it did
not train on: the last validation windows before the cutoff, forecast by a
twin fitted before them (split conformal prediction). Offsets are kept per
horizon step and per dispersion bin (terciles of the series' recent
coefficient of variation), so a volatile series gets a wider band than a steady
one and day 28 a wider band than day 1; a step with fewer than ``MIN_ROWS``
residuals in its bin borrows those of its neighbouring steps.

Three choices are made on the residuals, each recorded with the model:

- the P50 (:func:`choose_shift`): a booster trained on a year of origins trails
  a level that has risen since (or overshoots one that fell); its forecast is
  multiplied by the ``level`` nearest 1 that brings the validation windows' bias
  within 5% (1 when it already is). The booster forecasts a mean; the median
  minimises absolute error (WAPE) but under-forecasts totals of zero-heavy
  demand. The P50 then moves a share ``lam`` of the way to the residuals'
  median: the lowest WAPE whose bias stays within 5%;
- the band (:func:`_choose_widening`): each validation window is covered by
  bands calibrated on the other windows; the levels are pushed out until that
  cross-window coverage reaches the nominal one, so a shock one window has and
  another has not widens the band instead of being missed;
- joint coverage: demand is clipped at zero, so for intermittent series many
  lower bounds are 0 and every zero actual is inside the band from below. The
  upper offset of a pair ``(q, 1 - q)`` is chosen for the pair's joint coverage
  ``1 - 2q``, not as the plain ``1 - q`` quantile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

N_BINS = 3
MIN_ROWS = 100
P50 = "p50"


@dataclass
class Calibration:
    """Per-quantile offsets, indexed ``[dispersion bin][horizon step - 1]``."""

    edges: list[float]  # dispersion bin edges (N_BINS - 1 inner edges)
    # quantile name -> [bin][step - 1]; 'p50' is the P50's own shift from the booster's
    offsets: dict[str, list[list[float]]]
    rows: int  # residuals it was fitted on
    source: str  # where the residuals came from (validation window, or in-sample)
    # The booster's forecast times ``level`` before the P50's shift: the validation
    # windows' own correction of a level the booster trails (or overshoots).
    level: float = 1.0

    def quantiles(
        self, p50: np.ndarray, scale: np.ndarray, horizon: np.ndarray, dispersion: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Every quantile in units from the booster's P50 (not clipped, not sorted)."""
        b = _bins(dispersion, self.edges)
        point = np.maximum(p50 + self.p50_shift(p50, scale, horizon, dispersion), 0.0)
        out = {P50: point}
        for name, table in self.offsets.items():
            if name != P50:
                out[name] = point + _lookup(table, b, horizon) * scale
        return out

    def p50_shift(
        self, p50: np.ndarray, scale: np.ndarray, horizon: np.ndarray, dispersion: np.ndarray
    ) -> np.ndarray:
        """The P50's move from the booster's forecast ``p50``, in units (before clipping):
        the level correction plus the move towards the median."""
        return (self.level - 1.0) * p50 + self.median_move(scale, horizon, dispersion)

    def median_move(
        self, scale: np.ndarray, horizon: np.ndarray, dispersion: np.ndarray
    ) -> np.ndarray:
        """The P50's move towards the residuals' median, in units (after the level)."""
        return _lookup(self.offsets[P50], _bins(dispersion, self.edges), horizon) * scale

    def to_json(self) -> dict[str, Any]:
        return {
            "edges": self.edges,
            "offsets": self.offsets,
            "rows": self.rows,
            "source": self.source,
            "level": self.level,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Calibration:
        return cls(
            list(d["edges"]),
            dict(d["offsets"]),
            int(d["rows"]),
            str(d["source"]),
            float(d.get("level", 1.0)),  # artifacts before the level correction: none
        )


def _bins(dispersion: np.ndarray, edges: list[float]) -> np.ndarray:
    d = np.nan_to_num(np.asarray(dispersion, dtype=np.float64), nan=0.0)
    return np.searchsorted(np.asarray(edges, dtype=np.float64), d, side="right")


def _neighbourhood(h: np.ndarray, step: int, max_step: int, ok: np.ndarray) -> np.ndarray:
    """Rows of ``ok`` whose step is within the smallest window around ``step`` holding MIN_ROWS."""
    for k in range(max_step):
        sel = ok & (np.abs(h - step) <= k)
        if sel.sum() >= MIN_ROWS:
            return sel
    return ok


def _sorted_quantile(a: np.ndarray, q: float) -> float:
    """``np.quantile(a, q)`` (linear interpolation) of an already sorted ``a``."""
    pos = q * (len(a) - 1)
    i = int(np.floor(pos))
    j = min(i + 1, len(a) - 1)
    return float(a[i] + (pos - i) * (a[j] - a[i]))


class _Groups:
    """Each [bin][step]'s neighbourhood of residuals ``r``, sorted once.

    Every table of one set of rows (each quantile, the joint upper bound, each
    widening tried) reads the same neighbourhoods, so they are found and sorted
    once per set of rows instead of once per table.
    """

    def __init__(self, r: np.ndarray, h: np.ndarray, b: np.ndarray, n_bins: int, n_steps: int):
        self.members: list[list[np.ndarray]] = []  # row indices, in order of residual
        self.values: list[list[np.ndarray]] = []  # their residuals, sorted
        for bin_ in range(n_bins):
            in_bin = b == bin_
            if not in_bin.any():
                in_bin = np.ones_like(in_bin)
            members, values = [], []
            for step in range(1, n_steps + 1):
                idx = np.flatnonzero(_neighbourhood(h, step, n_steps, in_bin))
                order = idx[np.argsort(r[idx], kind="stable")]
                members.append(order)
                values.append(r[order])
            self.members.append(members)
            self.values.append(values)

    def table(self, q: float) -> list[list[float]]:
        """The ``q`` quantile of the residuals per [bin][step]."""
        return [[_sorted_quantile(v, q) for v in row] for row in self.values]

    def upper(self, above: np.ndarray, coverage: float) -> list[list[float]]:
        """Per [bin][step], the residual quantile among rows ``above`` their lower bound
        that leaves ``coverage`` of all the neighbourhood's rows inside the band."""
        table = []
        for members, values in zip(self.members, self.values, strict=True):
            row = []
            for idx, v in zip(members, values, strict=True):
                ok = above[idx]
                frac = float(ok.mean())
                level = min(1.0, coverage / frac) if frac > 0 else 1.0
                kept = v[ok]
                row.append(_sorted_quantile(kept, level) if len(kept) else 0.0)
            table.append(row)
        return table


def _offset_tables(
    r: np.ndarray, h: np.ndarray, b: np.ndarray, n_bins: int, n_steps: int, q: float
) -> list[list[float]]:
    """The ``q`` quantile of ``r`` per [bin][step], over each step's neighbourhood."""
    return _Groups(r, h, b, n_bins, n_steps).table(q)


def _lookup(table: list[list[float]], b: np.ndarray, h: np.ndarray) -> np.ndarray:
    arr = np.asarray(table, dtype=np.float64)
    return arr[b, np.clip(h - 1, 0, arr.shape[1] - 1)]


def choose_shift(
    y: np.ndarray,
    p50: np.ndarray,
    scale: np.ndarray,
    median: np.ndarray,
    max_bias: float,
    levels: tuple[float, ...] = (1.0,),
) -> tuple[float, float, dict[str, float]]:
    """The P50's level correction and its move from the model's mean towards the median.

    The median minimises WAPE (absolute error), the mean keeps totals unbiased;
    with zero-heavy demand they differ. A booster that trails a rising level (or
    overshoots a falling one) on the validation windows is multiplied by a
    ``level`` in ``levels``: the one nearest 1 at which some shift ``lam`` in
    ``SHIFTS`` keeps |bias| within ``max_bias``, and at that level the shift with
    the lowest WAPE within the limit (the smallest shift among equals). When no
    pair meets the limit, the pair with the smallest |bias| wins. Returns
    ``level``, ``lam`` and their WAPE and bias.
    """
    if len(y) > CHOICE_ROWS:  # WAPE and bias of a large sample are as exact
        keep = np.random.default_rng(0).choice(len(y), CHOICE_ROWS, replace=False)
        y, p50, scale, median = y[keep], p50[keep], scale[keep], median[keep]
    den = float(np.abs(y).sum())
    best: tuple[float, float, float, float] | None = None
    fallback: tuple[float, float, float, float] | None = None
    for level in sorted(levels, key=lambda v: abs(v - 1.0)):
        base = p50 * level
        for lam in SHIFTS:
            f = np.maximum(base + lam * median * scale, 0.0)
            if den > 0:
                w, bias = float(np.abs(y - f).sum() / den), float((f - y).sum() / den)
            else:
                w, bias = float(np.abs(f).sum()), float(f.sum())
            if abs(bias) <= max_bias and (
                best is None or (level == best[0] and w < best[2] - 1e-12)
            ):
                best = (level, lam, w, bias)
            if fallback is None or abs(bias) < abs(fallback[3]) - 1e-12:
                fallback = (level, lam, w, bias)
        if best is not None:
            break  # levels further from 1 are not considered once one meets the limit
    level, lam, w, bias = best or fallback  # type: ignore[misc]
    info = {"level": level, "shift": lam, "wape": round(w, 6), "bias": round(bias, 6)}
    return level, lam, info


# Candidate P50 shifts towards the median (0 = the model's mean, 1 = the median).
SHIFTS = tuple(float(round(x, 2)) for x in np.linspace(0.0, 1.0, 11))
# Candidate level corrections of the booster's forecast: -25% to +50% in 2.5% steps.
LEVELS = tuple(float(round(x, 3)) for x in np.arange(0.75, 1.5001, 0.025))
# Rows the level and shift are chosen on, at most (a deterministic sample beyond).
CHOICE_ROWS = 200_000


def fit_calibration(
    y: np.ndarray,
    p50: np.ndarray,
    scale: np.ndarray,
    horizon: np.ndarray,
    dispersion: np.ndarray,
    n_steps: int,
    quantiles: tuple[float, ...],
    source: str,
    window: np.ndarray,
    max_bias: float = 0.05,
    level_grid: tuple[float, ...] = LEVELS,
) -> tuple[Calibration, dict[str, Any]]:
    """Calibration from residuals of the model's P50 (units) against ``y``.

    First the P50 shift (:func:`choose_shift`), then every other quantile's
    offsets from the residuals of the shifted P50. Returns the calibration and
    the shift's validation scores.
    """
    from nightcast.forecasting.training import quantile_name

    y = np.asarray(y, dtype=np.float64)
    known = ~np.isnan(y)
    y, p50, scale = y[known], np.asarray(p50)[known], np.asarray(scale)[known]
    h, disp = np.asarray(horizon)[known], np.asarray(dispersion, dtype=np.float64)[known]
    if len(y) == 0:
        raise ValueError("no residuals to calibrate the quantiles on")
    d = np.nan_to_num(disp, nan=0.0)
    inner = np.quantile(d, np.linspace(0, 1, N_BINS + 1)[1:-1])
    edges = [float(e) for e in np.unique(inner)]
    b = _bins(d, edges)
    n_bins = len(edges) + 1
    median = _offset_tables((y - p50) / scale, h, b, n_bins, n_steps, 0.5)
    level, lam, shift_info = choose_shift(
        y, p50, scale, _lookup(median, b, h), max_bias, level_grid
    )
    point = [[float(lam * v) for v in row] for row in median]
    p50 = np.maximum(p50 * level + _lookup(point, b, h) * scale, 0.0)
    rows = _Rows(y, p50, scale, h, b, n_bins, n_steps)
    levels = sorted(q for q in quantiles if abs(q - 0.5) > 1e-9)
    widen, cross = _choose_widening(rows, np.asarray(window)[known], levels)
    info: dict[str, Any] = {**shift_info, "widen": widen, "cross_window_coverage": cross}
    offsets = {quantile_name(0.5): point, **_interval_tables(rows, levels, widen)}
    return Calibration(edges, offsets, len(y), source, level), info


class _Rows(NamedTuple):
    y: np.ndarray
    p50: np.ndarray
    scale: np.ndarray
    h: np.ndarray
    b: np.ndarray
    n_bins: int
    n_steps: int

    def groups(self) -> _Groups:
        """The neighbourhoods of these rows' residuals from the P50."""
        r = (self.y - self.p50) / self.scale
        return _Groups(r, self.h, self.b, self.n_bins, self.n_steps)

    def take(self, sel: np.ndarray) -> _Rows:
        return _Rows(
            self.y[sel],
            self.p50[sel],
            self.scale[sel],
            self.h[sel],
            self.b[sel],
            self.n_bins,
            self.n_steps,
        )


def _widened(q: float, widen: float) -> float:
    return float(np.clip(0.5 + (q - 0.5) * widen, 0.005, 0.995))


def _interval_tables(
    rows: _Rows, levels: list[float], widen: float, groups: _Groups | None = None
) -> dict[str, list[list[float]]]:
    """Offset tables of every quantile but the P50, each level pushed out by ``widen``.

    ``groups``: ``rows.groups()`` when the caller already has them.
    """
    from nightcast.forecasting.training import quantile_name

    groups = groups or rows.groups()
    out: dict[str, list[list[float]]] = {}
    for q in levels:
        partner = round(1.0 - q, 9)
        if q > 0.5 and quantile_name(partner) in out:
            # Joint coverage: the upper offset leaves the pair's coverage inside the
            # band, counting the rows at or above their (clipped) lower bound only.
            lower = out[quantile_name(partner)]
            lo = np.maximum(rows.p50 + _lookup(lower, rows.b, rows.h) * rows.scale, 0.0)
            coverage = _widened(q, widen) - _widened(partner, widen)
            out[quantile_name(q)] = groups.upper(rows.y >= lo, coverage)
        else:
            out[quantile_name(q)] = groups.table(_widened(q, widen))
    return out


def _band_coverage(rows: _Rows, tables: dict[str, list[list[float]]], lo: str, hi: str) -> float:
    low = np.maximum(rows.p50 + _lookup(tables[lo], rows.b, rows.h) * rows.scale, 0.0)
    high = np.maximum(rows.p50 + _lookup(tables[hi], rows.b, rows.h) * rows.scale, 0.0)
    return float(((rows.y >= low) & (rows.y <= high)).mean())


def _choose_widening(
    rows: _Rows, window: np.ndarray, levels: list[float]
) -> tuple[float, float | None]:
    """How much wider than nominal the outermost band must be to hold across windows.

    Each validation window's rows are covered by bands calibrated on the other
    windows (cross-window conformal): that coverage includes the shocks one
    window has and another does not, which a band calibrated and checked on the
    same rows never sees. The widening in ``WIDENINGS`` whose cross-window
    coverage is nearest the band's nominal coverage wins (1 with one window).
    """
    from nightcast.forecasting.training import quantile_name

    ids = np.unique(window)
    lows, highs = [q for q in levels if q < 0.5], [q for q in levels if q > 0.5]
    if len(ids) < 2 or not lows or not highs:
        return 1.0, None
    if len(window) > WIDENING_ROWS:  # the coverage of a large sample is as exact
        keep = np.sort(np.random.default_rng(0).choice(len(window), WIDENING_ROWS, False))
        rows, window = rows.take(keep), window[keep]
    lo_q, hi_q = min(lows), max(highs)
    target = hi_q - lo_q
    lo, hi = quantile_name(lo_q), quantile_name(hi_q)
    splits = []  # (calibration rows and their neighbourhoods, held-out rows) per window
    for w in ids:
        held = window == w
        calib = rows.take(~held)
        splits.append((calib, calib.groups(), rows.take(held)))
    best: tuple[float, float] | None = None
    for widen in WIDENINGS:
        per_window = []
        for calib, groups, held_rows in splits:
            tables = _interval_tables(calib, [lo_q, hi_q], widen, groups)
            per_window.append(_band_coverage(held_rows, tables, lo, hi))
        sizes = [len(held_rows.y) for _, _, held_rows in splits]
        cov = float(np.average(per_window, weights=sizes))
        if best is None or abs(cov - target) < abs(best[1] - target):
            best = (widen, cov)
        if cov >= target:
            break  # wider only moves further from the target
    assert best is not None
    return best[0], round(best[1], 4)


# Rows the widening is chosen on, at most (a deterministic sample beyond).
WIDENING_ROWS = 200_000
# Band widenings tried: the levels of (0.1, 0.9) go out to (0.0125, 0.9875) at most.
WIDENINGS = tuple(float(round(x, 4)) for x in np.linspace(1.0, 1.2375, 20))
