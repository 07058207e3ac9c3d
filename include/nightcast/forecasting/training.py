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
# A candidate whose validation bias is beyond this is only chosen when all are.
MAX_BIAS = 0.05
# Early stopping: training stops once EARLY_STOPPING_ROUNDS rounds have not improved
# the validation WAPE by MIN_IMPROVEMENT (relative: 0.001 = 0.1%).
EARLY_STOPPING_ROUNDS = 15
MIN_IMPROVEMENT = 0.001
MIN_ROUNDS = 10
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
    """The trained P50 booster, the choice made, and its validation forecasts (units)."""

    booster: lgb.Booster
    info: dict[str, Any]
    valid_p50: np.ndarray | None


def quantile_name(q: float) -> str:
    """Booster / forecast column name of quantile ``q`` (0.1 -> 'p10')."""
    return f"p{round(q * 100):d}"


def objective_params(name: str) -> dict[str, Any]:
    """LightGBM parameters of a P50 objective: a candidate's, 'quantile' (alpha 0.5) or 'l1'."""
    if name in CANDIDATES:
        return dict(CANDIDATES[name])
    if name == "quantile":
        return {"objective": "quantile", "alpha": 0.5}
    return {"objective": name}


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
        name = candidates[0]
        if early_stopping:  # nothing to stop on: a history too short to validate
            rounds = min(rounds, ROUNDS_WITHOUT_VALIDATION)
        info.update(objective=name, rounds=rounds, validation=None)
        booster = (trainer or lgb.train)(
            {**params, **objective_params(name), "num_iterations": rounds},
            _dataset(data, params),
        )
        return Selection(booster, info, None)

    full_set = _dataset(data, params)
    fit_set = full_set.subset(np.sort(fit_rows).tolist()).construct()
    valid_ok = ~np.isnan(valid.y)
    vy, vscale = valid.y[valid_ok], valid.scale[valid_ok]
    # Weighted by the scale, LightGBM's own L1 on demand / scale is sum|y - forecast|
    # / sum(scale): the validation WAPE times a constant, computed in C++ every round.
    val_set = fit_set.create_valid(valid.x[valid_ok], vy / vscale, weight=vscale)

    results: dict[str, dict[str, Any]] = {}
    preds: dict[str, np.ndarray] = {}
    boosters: dict[str, lgb.Booster] = {}
    for name in candidates:
        t0 = time.perf_counter()
        cp = {**params, **objective_params(name), "metric": "l1"}
        callbacks: list[Callable[..., Any]] = []
        if early_stopping:
            callbacks.append(_early_stopping(EARLY_STOPPING_ROUNDS, MIN_IMPROVEMENT))
        with warnings.catch_warnings():
            # the validation rows share the training rows' bins (that is the point)
            warnings.filterwarnings("ignore", "Overriding the parameters from Reference")
            booster = lgb.train(cp, fit_set, valid_sets=[val_set], callbacks=callbacks)
        best = rounds
        if early_stopping:
            best = max(MIN_ROUNDS, min(booster.best_iteration or rounds, rounds))
        p = np.full(len(valid.y), np.nan)
        p[valid_ok] = booster.predict(valid.x[valid_ok], num_iteration=best) * vscale
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
    if early_stopping and trainer is None:
        # The winner goes on boosting from where it stopped, on every row: the most
        # recent targets refresh it at a tenth of a full refit's cost.
        extra = max(MIN_ROUNDS, best_rounds // 10)
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
    return Selection(booster, info, preds[chosen])
