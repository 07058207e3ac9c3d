"""Reference bins of the training design matrix, stored with the model.

Feature drift (:mod:`nightcast.monitoring.drift`) compares a night's design matrix
with them; they are computed here, at fit time, so the forecasting package owns
what it stores and imports nothing from monitoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

BINS_VERSION = 1
N_BINS = 10
MAX_CATEGORIES = 20
# Reference bins are computed on at most this many training rows (a fixed sample):
# decile edges and shares are then exact to about 0.1 percentage point.
MAX_REFERENCE_ROWS = 200_000
# Functions of the date: a night covers one origin, so their mix differs from the
# training one by construction (nightcast.monitoring.drift skips them too).
SKIPPED_FEATURES = frozenset(
    {
        "horizon",
        "age",
        "month",
        "week_of_year",
        "day_of_week",
        "day_of_month",
        "weeks_to_xmas",
        "is_holiday",
    }
)


def _numeric_bins(col: np.ndarray, n_bins: int) -> dict[str, Any]:
    known = col[~np.isnan(col)]
    n = len(col)
    if len(known) == 0:
        return {"kind": "numeric", "edges": [], "proportions": [0.0], "missing": 1.0, "ecdf": []}
    qs = np.quantile(known, np.arange(1, n_bins) / n_bins)
    edges = np.unique(qs)
    props, missing = numeric_proportions(col, edges)
    ecdf = np.searchsorted(np.sort(known), edges, side="right") / len(known)
    return {
        "kind": "numeric",
        "edges": edges.tolist(),
        "proportions": props.tolist(),
        "missing": missing,
        "ecdf": ecdf.tolist(),
        "rows": n,
    }


def numeric_proportions(col: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, float]:
    """Shares of all rows (missing included) in each bin, and the missing share."""
    n = max(len(col), 1)
    nan = np.isnan(col)
    idx = np.searchsorted(edges, col[~nan], side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1)
    return counts / n, float(nan.sum() / n)


def _categorical_bins(col: np.ndarray, max_categories: int) -> dict[str, Any]:
    n = max(len(col), 1)
    nan = np.isnan(col)
    codes, counts = np.unique(col[~nan], return_counts=True)
    order = np.argsort(-counts, kind="stable")[:max_categories]
    top = codes[order]
    props = (counts[order] / n).tolist()
    other = float(counts.sum() / n - sum(props))
    return {
        "kind": "categorical",
        "codes": top.tolist(),
        "proportions": props,
        "other": max(other, 0.0),
        "missing": float(nan.sum() / n),
        "rows": len(col),
    }


def reference_bins(
    x: np.ndarray, features: Sequence[str], categorical: Sequence[str], n_bins: int = N_BINS
) -> dict[str, Any]:
    """Reference bins of a training design matrix (columns = ``features``); JSON-able."""
    if x.shape[1] != len(features):
        raise ValueError(f"design matrix has {x.shape[1]} columns for {len(features)} features")
    cats = set(categorical)
    if x.shape[0] > MAX_REFERENCE_ROWS:
        rng = np.random.default_rng(0)
        x = x[np.sort(rng.choice(x.shape[0], MAX_REFERENCE_ROWS, replace=False))]
    out: dict[str, Any] = {}
    for j, name in enumerate(features):
        if name in SKIPPED_FEATURES:
            continue
        col = np.asarray(x[:, j], dtype=np.float64)
        out[name] = (
            _categorical_bins(col, MAX_CATEGORIES) if name in cats else _numeric_bins(col, n_bins)
        )
    return {"version": BINS_VERSION, "rows": int(x.shape[0]), "features": out}
