"""Calibrated quantiles: offsets from validation residuals, joint coverage with zeros,
cross-window widening, the P50 shift, and the intervals a fitted model publishes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from _demand import FAST, make_demand

from nightcast.forecasting import ForecastModel
from nightcast.forecasting.calibration import choose_shift, fit_calibration
from nightcast.forecasting.metrics import coverage

Q = (0.1, 0.5, 0.9)


def _rows(n: int, seed: int, shock: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(5, 50, n)
    p50 = scale.copy()
    y = np.maximum(p50 + rng.normal(0, 0.3, n) * scale + shock * scale, 0.0)
    return {
        "y": y,
        "p50": p50,
        "scale": scale,
        "h": rng.integers(1, 8, n),
        "disp": rng.uniform(0.1, 1.0, n),
    }


def test_offsets_are_the_residual_quantiles_and_cover_fresh_rows() -> None:
    r = _rows(20_000, 0)
    cal, info = fit_calibration(
        r["y"], r["p50"], r["scale"], r["h"], r["disp"], 7, Q, "test", np.zeros(20_000)
    )
    assert abs(info["bias"]) < 0.01  # symmetric noise: mean and median agree
    # N(0, 0.3) residuals: the 10% quantile is -0.384 scale units
    assert abs(np.mean(cal.offsets["p10"]) + 0.3 * 1.2816) < 0.03
    fresh = _rows(20_000, 1)
    out = cal.quantiles(fresh["p50"], fresh["scale"], fresh["h"], fresh["disp"])
    assert 0.78 <= coverage(fresh["y"], out["p10"], out["p90"]) <= 0.82


def test_joint_coverage_when_lower_bounds_are_zero() -> None:
    """Intermittent demand: most actuals are 0 and most lower bounds clip to 0, so the
    upper bound alone must bring the band to 80% (a plain 90% quantile would give ~90%)."""
    rng = np.random.default_rng(2)
    n = 30_000
    scale = np.ones(n)
    y = np.where(rng.random(n) < 0.6, 0.0, rng.exponential(2.5, n))
    p50 = np.full(n, 1.0)
    cal, _ = fit_calibration(y, p50, scale, np.ones(n, int), np.zeros(n), 1, Q, "t", np.zeros(n))
    out = cal.quantiles(p50, scale, np.ones(n, int), np.zeros(n))
    lo, hi = np.maximum(out["p10"], 0), np.maximum(out["p90"], 0)
    assert 0.78 <= coverage(y, lo, hi) <= 0.82


def test_a_shock_in_one_window_widens_the_band() -> None:
    calm, shocked = _rows(5_000, 3), _rows(5_000, 4, shock=0.25)
    both = {k: np.concatenate([calm[k], shocked[k]]) for k in calm}
    window = np.repeat([0, 1], 5_000)
    args = (both["y"], both["p50"], both["scale"], both["h"], both["disp"], 7, Q, "t")
    _, info = fit_calibration(*args, window)
    _, alone = fit_calibration(*args, np.zeros(10_000))
    assert alone["widen"] == 1.0 and alone["cross_window_coverage"] is None
    assert info["widen"] > 1.0


def test_the_p50_moves_towards_the_median_only_within_the_bias_limit() -> None:
    rng = np.random.default_rng(5)
    n = 10_000
    y = np.where(rng.random(n) < 0.5, 0.0, rng.exponential(4.0, n))  # mean 2, median 0
    p50, scale = np.full(n, 2.0), np.ones(n)
    median = np.full(n, -2.0)  # residual median in scale units
    lam, info = choose_shift(y, p50, scale, median, 0.05)
    assert lam == 0.0 and abs(info["bias"]) <= 0.05  # any move would bias totals > 5%
    lam, info = choose_shift(y, p50, scale, median, 1.0)
    assert lam == 1.0  # unconstrained: the median has the lowest absolute error


def test_a_fitted_model_publishes_calibrated_bands() -> None:
    df = make_demand(n_series=40, n_days=300, seed=6, sparse=False)
    cut = df["ds"].max() - pd.Timedelta(days=28)
    model = ForecastModel(horizon=28).fit(df[df["ds"] <= cut], static_cols=[], exog_cols=[])
    info = model.train_info["selection"]
    assert model.calibration is not None and "validation windows" in model.calibration.source
    assert info["calibration"]["cross_window_coverage"] is not None
    fc = model.predict(df[df["ds"] <= cut], cutoff=cut).merge(df, on=["unique_id", "ds"])
    assert len(fc) == 40 * 28
    assert 0.7 <= coverage(fc["y"], fc["p10"], fc["p90"]) <= 0.9
    assert (fc["p10"] <= fc["p50"]).all() and (fc["p50"] <= fc["p90"]).all()
    assert len(model.calibration.offsets["p90"][0]) == 28  # one offset per horizon step


def test_an_artifact_with_one_booster_per_quantile_still_loads(tmp_path: Path) -> None:
    """Champions saved before calibrated quantiles keep serving after an upgrade."""
    df = make_demand(n_series=6, n_days=120, seed=7)
    model = ForecastModel(FAST, horizon=7).fit(df)
    path = tmp_path / "m"
    model.save(path)
    meta = json.loads((path / "model.json").read_text())
    for q in ("p10", "p90"):
        shutil.copy(path / "booster_p50.txt", path / f"booster_{q}.txt")
    meta["boosters"] = {q: f"booster_{q}.txt" for q in ("p10", "p50", "p90")}
    del meta["calibration"], meta["calendar"]
    (path / "model.json").write_text(json.dumps(meta))
    legacy = ForecastModel.load(path)
    assert legacy.calibration is None and legacy.calendar is None
    fc = legacy.predict(df)
    # three identical boosters: the three quantiles are the booster's own forecast
    assert np.allclose(fc["p10"], fc["p50"]) and np.allclose(fc["p90"], fc["p50"])
