"""The quantile training loop of :class:`~nightcast.forecasting.model.ForecastModel`.

One LightGBM booster per quantile, all on the same design matrix (one row per
``(series, origin, horizon step)``, target = demand / series scale). The P50
booster follows the frequency's recipe (objective, and optional resampling of
rows by scale); the other quantiles use the pinball ('quantile') objective.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import lightgbm as lgb
import numpy as np

# Trains one booster from (params, dataset): lgb.train by default, or a Dask cluster
# (nightcast.forecasting.distributed). Training-time only: not saved with the model.
Trainer = Callable[[dict[str, Any], lgb.Dataset], lgb.Booster]


class TrainingSet(NamedTuple):
    """A design matrix with its target ratio, per-row scale and column names."""

    x: np.ndarray
    target: np.ndarray
    scale: np.ndarray
    features: list[str]
    categorical: list[str]


def quantile_name(q: float) -> str:
    """Booster / forecast column name of quantile ``q`` (0.1 -> 'p10')."""
    return f"p{round(q * 100):d}"


def train_boosters(
    data: TrainingSet,
    params: dict[str, Any],
    recipe: dict[str, Any],
    quantiles: tuple[float, ...],
    objective: str,
    trainer: Trainer,
) -> dict[str, lgb.Booster]:
    """One booster per quantile, by :func:`quantile_name`, trained with ``trainer``.

    ``params`` are the final LightGBM parameters; ``objective`` is the model's P50
    objective, which the recipe's ``p50_objective`` replaces when it is 'l2'.
    """
    cat_idx = [data.features.index(c) for c in data.categorical]
    ds_params = {"verbosity": -1, "max_bin": params.get("max_bin", 255)}

    def dataset(idx: np.ndarray | None = None) -> lgb.Dataset:
        xs, ts = (data.x, data.target) if idx is None else (data.x[idx], data.target[idx])
        return lgb.Dataset(
            xs, ts, feature_name=data.features, categorical_feature=cat_idx,
            params=ds_params, free_raw_data=False,
        )  # fmt: skip

    full = dataset()
    p50_data = full
    if recipe["p50_resample"]:
        seed = int(params.get("seed", 0))
        p50_data = dataset(_resample_by_scale(data.scale, recipe["weight_cap_q"], seed))
    boosters: dict[str, lgb.Booster] = {}
    for q in quantiles:
        qp = dict(params)
        if abs(q - 0.5) < 1e-9:
            qp.update(_p50_objective(objective, recipe))
            boosters[quantile_name(q)] = trainer(qp, p50_data)
        else:
            qp.update(objective="quantile", alpha=q)
            boosters[quantile_name(q)] = trainer(qp, full)
    return boosters


def _p50_objective(objective: str, recipe: dict[str, Any]) -> dict[str, Any]:
    """LightGBM objective parameters of the P50 booster."""
    # The recipe's P50 objective replaces the default ('l2') only.
    obj = objective
    if recipe["p50_objective"] and obj == "l2":
        obj = recipe["p50_objective"]
    if obj == "quantile":
        return {"objective": obj, "alpha": recipe["p50_alpha"]}
    return {"objective": obj}


def _resample_by_scale(scale: np.ndarray, cap_q: float, seed: int) -> np.ndarray:
    """Row indices drawn with probability proportional to scale (capped at its ``cap_q`` quantile).

    The P50 loss on y/scale, with rows drawn with probability proportional to
    their scale, is in expectation the absolute error in units (the WAPE
    numerator): lumpy low-volume series (huge ratios) stop dominating, at the
    cost of unweighted training (LightGBM's weighted L1/quantile is ~4x slower).
    """
    w = np.minimum(scale, np.quantile(scale, cap_q))
    rng = np.random.default_rng(seed)
    # Systematic resampling: lower variance than independent draws.
    cum = np.cumsum(w)
    pos = (rng.random() + np.arange(len(w))) * (cum[-1] / len(w))
    return np.minimum(np.searchsorted(cum, pos, side="right"), len(w) - 1)
