"""Feature drift of the model's design matrix against reference bins stored with the model.

At fit time :func:`nightcast.forecasting.reference.reference_bins` (the model
owns its reference; this module only reads it) summarises every feature of the training design
matrix (one row per series, origin and horizon step) as bins and proportions:

- numeric features: interior edges at the deciles (duplicates dropped), bins
  ``(-inf, e1], (e1, e2], ..., (ek, inf)`` plus a bin for missing values, and the
  reference ECDF at the edges;
- categorical features (the model's static columns, integer-coded): the shares of
  the ``MAX_CATEGORIES`` most frequent codes, one bin for all other codes and one
  for missing (a code unseen in training is missing).

At night :func:`feature_drift` bins tonight's design matrix at the stored edges
only (the training data are never re-read) and returns per feature

- PSI = sum over bins of ``(cur - ref) * ln(cur / ref)``, with empty bins set to
  ``PSI_EPS`` so that a bin present on one side only counts instead of dividing by 0;
- KS = the largest gap between the two ECDFs *at the stored edges* (the binned KS
  statistic: a lower bound of the exact two-sample KS, numeric features only).

Calendar features, the horizon and the series age are left out: they are
functions of the date, and one night covers one origin, so their distribution
differs from the training mix of origins by construction, not because the data
changed.

PSI of a sample is biased upwards: without any drift its expectation is about
``(bins - 1) / n`` for ``n`` independent rows. Tonight's rows are not independent
(origin features repeat for every horizon step of a series), so with
``n_effective`` (the number of series) the breach threshold is raised by
``(bins - 1) / n_effective``: a few dozen series do not page on sampling noise, and
for thousands of series the threshold is the configured one. The threshold used is
stored with each row. With ``n_effective`` tonight's shares also get half a
pseudo-count per reference bin, so a bin left empty by chance does not dominate
the PSI through the epsilon. Under ``MIN_SERIES_FOR_BREACH`` series a feature is
at most 'warn': a few dozen series cannot tell drift from noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nightcast.forecasting.reference import numeric_proportions

PSI_EPS = 1e-4
PSI_WARN = 0.1
# Below this many series tonight a PSI is too noisy to page on: 'breach' becomes 'warn'.
MIN_SERIES_FOR_BREACH = 100


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature tonight against its reference bins."""

    feature: str
    kind: str  # 'numeric' | 'categorical'
    psi: float
    ks: float | None
    status: str  # 'ok' | 'warn' | 'breach'
    threshold: float
    rows: int


def psi(reference: Sequence[float], current: Sequence[float], eps: float = PSI_EPS) -> float:
    """Population stability index of two proportion vectors over the same bins."""
    ref = np.maximum(np.asarray(reference, dtype=np.float64), eps)
    cur = np.maximum(np.asarray(current, dtype=np.float64), eps)
    if ref.shape != cur.shape:
        raise ValueError(f"PSI needs the same bins on both sides: {ref.shape} vs {cur.shape}")
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _compare(ref: dict[str, Any], col: np.ndarray) -> tuple[list[float], list[float], float | None]:
    """Reference and current shares over the same bins, and the binned KS (numeric only)."""
    n = max(len(col), 1)
    nan = np.isnan(col)
    if ref["kind"] == "categorical":
        codes = np.asarray(ref["codes"], dtype=np.float64)
        counts = [float(np.sum(col == c)) for c in codes]
        other = float((~nan).sum()) - sum(counts)
        cur = [c / n for c in counts] + [other / n, float(nan.sum()) / n]
        return [*ref["proportions"], ref["other"], ref["missing"]], cur, None
    edges = np.asarray(ref["edges"], dtype=np.float64)
    props, missing = numeric_proportions(col, edges)
    base = [*ref["proportions"], ref["missing"]]
    known = np.sort(col[~nan])
    if len(edges) == 0 or len(known) == 0:
        return base, [*props.tolist(), missing], None
    ecdf = np.searchsorted(known, edges, side="right") / len(known)
    ks = float(np.max(np.abs(ecdf - np.asarray(ref["ecdf"]))))
    return base, [*props.tolist(), missing], ks


def smoothed(reference: Sequence[float], current: Sequence[float], n: int) -> list[float]:
    """Current shares with half a pseudo-count in each bin the reference has (Jeffreys).

    With ``n`` independent rows, a bin that happens to be empty tonight would
    otherwise enter the PSI through the epsilon and dominate it.
    """
    has = [r > 0 for r in reference]
    total = n + 0.5 * sum(has)
    return [(c * n + (0.5 if h else 0.0)) / total for c, h in zip(current, has, strict=True)]


def status_of(value: float, threshold: float) -> str:
    """'breach' above ``threshold``, 'warn' above the conventional 0.1, else 'ok'."""
    if value > threshold:
        return "breach"
    return "warn" if value > min(PSI_WARN, threshold) else "ok"


def _bin_count(ref: dict[str, Any]) -> int:
    shares = [*ref["proportions"], ref["missing"], ref.get("other", 0.0)]
    return sum(1 for p in shares if p > 0)


def feature_drift(
    reference: dict[str, Any],
    x: np.ndarray,
    features: Sequence[str],
    psi_max: float,
    n_effective: int | None = None,
) -> list[FeatureDrift]:
    """PSI and binned KS of each referenced feature of ``x`` (columns = ``features``).

    ``n_effective`` (independent rows, e.g. series) smooths tonight's shares and
    raises each feature's threshold by its sampling noise; None uses the raw shares
    and ``psi_max`` as it is.
    """
    index = {name: j for j, name in enumerate(features)}
    out: list[FeatureDrift] = []
    for name, ref in reference.get("features", {}).items():
        if name not in index:
            raise ValueError(
                f"feature {name!r} has reference bins but is not in tonight's design matrix "
                f"({len(features)} features): the bins belong to another model version"
            )
        col = np.asarray(x[:, index[name]], dtype=np.float64)
        base, cur, ks = _compare(ref, col)
        value = psi(base, smoothed(base, cur, n_effective) if n_effective else cur)
        if not math.isfinite(value):
            raise ValueError(f"PSI of feature {name!r} is not finite ({value})")
        limit = psi_max
        if n_effective:
            limit += max(_bin_count(ref) - 1, 0) / n_effective
        status = status_of(value, limit)
        if status == "breach" and n_effective and n_effective < MIN_SERIES_FOR_BREACH:
            status = "warn"
        out.append(FeatureDrift(name, ref["kind"], value, ks, status, limit, len(col)))
    return out
