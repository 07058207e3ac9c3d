"""The training loop of :class:`~nightcast.forecasting.model.ForecastModel`.

One point booster (the P50) on the design matrix (one row per ``(series,
origin, horizon step)``, target = demand / series scale); the other quantiles
are calibrated offsets around it (:mod:`.calibration`).

What varies between data sets is chosen on the training data's own
validation windows, never fixed for one data set: each candidate objective
(:data:`CANDIDATES`) is trained on the rows whose targets fall before the
windows, scored on them (WAPE in units, bias), and stopped early when their
WAPE stops improving; the winner (lowest WAPE among those with |bias| within
:data:`MAX_BIAS`) then goes on boosting a tenth more rounds on every row, the
most recent targets included. Which candidate won, its rounds and every
candidate's score are recorded with the model (``train_info['selection']``).

A candidate may boost from a per-row *base* (:data:`BASES`: a feature column,
the forecast before any tree) instead of from the average ratio: it then learns
the target minus the base, and its forecast is the base plus the trees'. On
steady, high-volume series the average start is the series' recent mean, which
the few rounds early stopping keeps barely move; from last period's value, or
from past years' shape at today's level, the trees only have to learn the
corrections, and none may be the best answer.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import lightgbm as lgb
import numpy as np

# Trains one booster from (params, dataset): lgb.train by default, or a Dask cluster
# (nightcast.forecasting.distributed). Training-time only: not saved with the model.
Trainer = Callable[[dict[str, Any], lgb.Dataset], lgb.Booster]

# P50 candidates: the conditional mean of demand / scale under squared error, and a
# Tweedie (compound Poisson-gamma) mean, which suits intermittent, zero-heavy demand.
CANDIDATES: dict[str, dict[str, Any]] = {
    "l2": {"objective": "l2"},
    "tweedie": {"objective": "tweedie", "tweedie_variance_power": 1.5},
}
# Candidates that boost from a feature's value (the ratio to the scale) rather than
# from the average, with squared error: "l2_last" from the last known value (the
# naive forecast), "l2_season" from the same week in up to 5 past years over the level
# then (the seasonal naive at today's level, for long, steady series). Weekly data
# only (BASES_BY_FREQ). Each is offered where its feature is known on most training
# rows (ForecastModel._candidates) and trained where its start alone forecasts the
# validation windows better than the recent mean; then it replaces the plain "l2",
# the same objective from a worse start. Daily starts, tried (docs/benchmarks.md):
# the same weekday last week was chosen on flights_daily's calm validation windows,
# then lost December's holidays (WAPE 0.1287 against 0.1215 over 3 seeds); the median
# of the last 3 same weekdays was within seed noise on every daily set.
BASES: dict[str, str] = {"l2_last": "last_known", "l2_season": "year_ratio_5"}
BASES_BY_FREQ: dict[str, tuple[str, ...]] = {"D": (), "W": ("l2_last", "l2_season")}
# A candidate whose validation bias is beyond this is only chosen when all are.
MAX_BIAS = 0.05
# Early stopping: training stops once EARLY_STOPPING_ROUNDS rounds have not improved
# the validation WAPE by MIN_IMPROVEMENT (relative: 0.001 = 0.1%). 10 rather than 15:
# WAPE within 0.1% or lower on the 7 sets of bench/accuracy_suite.py (3 seeds; lower on
# retail_daily, retail_weekly and demo_medium), and 6-16% less fit + predict time on the
# 6 sets with more than one round (the rounds past the best are trained, then discarded).
EARLY_STOPPING_ROUNDS = 10
MIN_IMPROVEMENT = 0.001
MIN_ROUNDS = 10
# From a base, no correction at all can be the best forecast: one round (the trees'
# average correction) and a continuation of at least one round, not MIN_ROUNDS.
MIN_ROUNDS_FROM_BASE = 1
# Rounds when the history is too short for a validation window (nothing to stop on):
# at learning rate 0.05, the middle of the range early stopping chose on the six data
# sets of bench/accuracy_suite.py (10 to 149 over 3 windows x 3 seeds), and LightGBM's
# own default.
ROUNDS_WITHOUT_VALIDATION = 100


class TrainingSet(NamedTuple):
    """A design matrix with its target ratio, per-row scale and column names."""

    x: np.ndarray
    target: np.ndarray
    scale: np.ndarray
    features: list[str]
    categorical: list[str]
    weight: np.ndarray | None = None


class ValidationSet(NamedTuple):
    """Rows forecast from the validation origins: features, actuals in units, scale."""

    x: np.ndarray
    y: np.ndarray
    scale: np.ndarray


class Selection(NamedTuple):
    """The trained P50 booster, the choice made, and its validation forecasts (units).

    ``base``: the feature the booster's output is added to (:data:`BASES`), or None.
    """

    booster: lgb.Booster
    info: dict[str, Any]
    valid_p50: np.ndarray | None
    base: str | None = None


def quantile_name(q: float) -> str:
    """Booster / forecast column name of quantile ``q`` (0.1 -> 'p10')."""
    return f"p{round(q * 100):d}"


def objective_params(name: str) -> dict[str, Any]:
    """LightGBM parameters of a P50 objective: a candidate's, 'quantile' (alpha 0.5) or 'l1'."""
    if name in BASES:
        return dict(CANDIDATES["l2"])
    if name in CANDIDATES:
        return dict(CANDIDATES[name])
    if name == "quantile":
        return {"objective": "quantile", "alpha": 0.5}
    return {"objective": name}


def base_values(x: np.ndarray, features: list[str], base: str | None) -> np.ndarray | float:
    """Each row's base ratio: feature ``base`` of ``x`` (1, the recent mean, where it is
    unknown), or 0.0 without a base."""
    if base is None:
        return 0.0
    v = x[:, features.index(base)].astype(np.float64)
    return np.where(np.isnan(v), 1.0, v)


def _dataset(data: TrainingSet, params: dict[str, Any]) -> lgb.Dataset:
    return lgb.Dataset(
        data.x,
        data.target,
        weight=data.weight,
        feature_name=data.features,
        categorical_feature=[data.features.index(c) for c in data.categorical],
        params={"verbosity": -1, "max_bin": params.get("max_bin", 255)},
        free_raw_data=False,
    )


def _score(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(WAPE, bias) of ``pred`` against ``y`` in units; rows with unknown ``y`` skipped."""
    ok = ~np.isnan(y)
    den = float(np.abs(y[ok]).sum())
    if den <= 0:
        return float(np.abs(pred[ok]).sum()), float(pred[ok].sum())
    return float(np.abs(y[ok] - pred[ok]).sum() / den), float((pred[ok] - y[ok]).sum() / den)


def _early_stopping(patience: int, min_improvement: float) -> Callable[..., None]:
    """Stop once ``patience`` rounds have not lowered the validation metric by a share
    ``min_improvement`` of its best (LightGBM's own callback takes an absolute delta)."""
    best: dict[str, Any] = {"score": float("inf"), "iteration": 0, "results": []}

    def callback(env: Any) -> None:
        score = float(env.evaluation_result_list[0][2])
        if score < best["score"] * (1.0 - min_improvement):
            best.update(score=score, iteration=env.iteration, results=env.evaluation_result_list)
        elif env.iteration - best["iteration"] >= patience:
            raise lgb.callback.EarlyStopException(best["iteration"], best["results"])
        if env.iteration == env.end_iteration - 1:  # the last round: keep the best one
            raise lgb.callback.EarlyStopException(best["iteration"], best["results"])

    callback.order = 30  # type: ignore[attr-defined]
    return callback


def select_and_train(
    data: TrainingSet,
    fit_rows: np.ndarray | None,
    valid: ValidationSet | None,
    params: dict[str, Any],
    candidates: list[str],
    early_stopping: bool,
    trainer: Trainer | None = None,
) -> Selection:
    """Choose the P50 objective (and rounds) on ``valid``, then train it on every row.

    ``fit_rows`` are the rows whose targets fall before the validation windows
    (the candidates train on those only); without a validation window the first
    candidate is trained for ``params['num_iterations']`` rounds.
    ``early_stopping`` = False keeps ``num_iterations`` fixed (set by the user):
    the winner is then refitted on every row with exactly that many rounds, as it
    is with a custom ``trainer`` (a Dask cluster), which trains the final booster.
    """
    rounds = int(params.get("num_iterations", 100))
    info: dict[str, Any] = {"candidates": {}, "max_rounds": rounds}
    if valid is None or fit_rows is None or len(fit_rows) == 0:
        # (nothing to tell a base from the average on: the first candidate without one)
        name = next((n for n in candidates if n not in BASES), candidates[0])
        if name in BASES:
            raise ValueError(f"no candidate without a base among {candidates}")
        if early_stopping:  # nothing to stop on: a history too short to validate
            rounds = min(rounds, ROUNDS_WITHOUT_VALIDATION)
        info.update(objective=name, rounds=rounds, validation=None)
        booster = (trainer or lgb.train)(
            {**params, **objective_params(name), "num_iterations": rounds},
            _dataset(data, params),
        )
        return Selection(booster, info, None)

    full_set = _dataset(data, params)
    fit_sorted = np.sort(fit_rows)
    fit_set = full_set.subset(fit_sorted.tolist()).construct()
    valid_ok = ~np.isnan(valid.y)
    vx, vy, vscale = valid.x[valid_ok], valid.y[valid_ok], valid.scale[valid_ok]
    # Weighted by the scale, LightGBM's own L1 on demand / scale is sum|y - forecast|
    # / sum(scale): the validation WAPE times a constant, computed in C++ every round.
    val_set = fit_set.create_valid(vx, vy / vscale, weight=vscale)

    results: dict[str, dict[str, Any]] = {}
    preds: dict[str, np.ndarray] = {}
    boosters: dict[str, lgb.Booster] = {}
    # A start is only worth boosting from where it alone forecasts the validation
    # windows better than the recent mean (the scale) does; a start that does replaces
    # the plain squared-error candidate (the same objective from the average). What
    # was skipped is recorded.
    skipped: dict[str, dict[str, Any]] = {}
    mean_wape = _score(vy, vscale)[0]
    for name in [n for n in candidates if n in BASES]:
        start = np.maximum(base_values(vx, data.features, BASES[name]), 0.0) * vscale
        start_wape = _score(vy, start)[0]
        if start_wape >= mean_wape:
            skipped[name] = {"start_wape": round(start_wape, 6), "mean_wape": round(mean_wape, 6)}
    better = [n for n in candidates if n in BASES and n not in skipped]
    if better and "l2" in candidates:
        skipped["l2"] = {"replaced_by": better}
    candidates = [n for n in candidates if n not in skipped] or list(candidates)
    for name in candidates:
        t0 = time.perf_counter()
        base = BASES.get(name)
        cp = {**params, **objective_params(name), "metric": "l1"}
        callbacks: list[Callable[..., Any]] = []
        if early_stopping:
            callbacks.append(_early_stopping(EARLY_STOPPING_ROUNDS, MIN_IMPROVEMENT))
        # A base is subtracted from the labels (the L1 metric is then still the WAPE),
        # and the labels put back for the next candidate.
        vbase = base_values(vx, data.features, base)
        if base is not None:
            fit_set.set_label(
                data.target[fit_sorted] - base_values(data.x[fit_sorted], data.features, base)
            )
            val_set.set_label(vy / vscale - vbase)
        with warnings.catch_warnings():
            # the validation rows share the training rows' bins (that is the point)
            warnings.filterwarnings("ignore", "Overriding the parameters from Reference")
            booster = lgb.train(cp, fit_set, valid_sets=[val_set], callbacks=callbacks)
        if base is not None:
            fit_set.set_label(data.target[fit_sorted])
            val_set.set_label(vy / vscale)
        best = rounds
        if early_stopping:
            least = MIN_ROUNDS if base is None else MIN_ROUNDS_FROM_BASE
            best = max(least, min(booster.best_iteration or rounds, rounds))
        p = np.full(len(valid.y), np.nan)
        p[valid_ok] = (np.asarray(booster.predict(vx, num_iteration=best)) + vbase) * vscale
        preds[name] = np.maximum(p, 0.0)
        boosters[name] = booster
        wape, bias = _score(valid.y, preds[name])
        results[name] = {
            "wape": round(wape, 6),
            "bias": round(bias, 6),
            "rounds": int(best),
            "seconds": round(time.perf_counter() - t0, 3),
        }
    ok = [n for n in candidates if abs(results[n]["bias"]) <= MAX_BIAS] or list(candidates)
    chosen = min(ok, key=lambda n: results[n]["wape"])
    best_rounds = int(results[chosen]["rounds"])
    final = {**params, **objective_params(chosen), "num_iterations": best_rounds}
    base = BASES.get(chosen)
    if base is not None:
        full_set.set_label(data.target - base_values(data.x, data.features, base))
    if early_stopping and trainer is None:
        # The winner goes on boosting from where it stopped, on every row: the most
        # recent targets refresh it at a tenth of a full refit's cost.
        extra = max(MIN_ROUNDS if base is None else MIN_ROUNDS_FROM_BASE, best_rounds // 10)
        start = lgb.Booster(model_str=boosters[chosen].model_to_string(num_iteration=best_rounds))
        booster = lgb.train({**final, "num_iterations": extra}, full_set, init_model=start)
        how = f"continued {extra} rounds on every row"
    else:  # rounds set by the user, or a Dask cluster: refit on every row
        booster = (trainer or lgb.train)(final, full_set)
        how = "refitted on every row"
    info.update(
        objective=chosen,
        rounds=best_rounds,
        final_rounds=booster.current_iteration(),
        final=how,
        candidates=results,
        validation={"rows": int(valid_ok.sum()), "fit_rows": len(fit_rows)},
    )
    if base is not None:
        info["base"] = base
    if skipped:
        info["skipped"] = skipped
    return Selection(booster, info, preds[chosen], base)
