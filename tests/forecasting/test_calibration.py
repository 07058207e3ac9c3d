"""Calibrated quantiles: offsets from validation residuals, joint coverage with zeros,
cross-window widening, the P50 shift, and the intervals a fitted model publishes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _demand import FAST, make_demand

from nightcast.forecasting import ForecastModel
from nightcast.forecasting.calibration import (
    LEVELS,
    Calibration,
    _Groups,
    _neighbourhood,
    choose_shift,
    fit_calibration,
)
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
    level, lam, info = choose_shift(y, p50, scale, median, 0.05)
    assert (level, lam) == (1.0, 0.0) and abs(info["bias"]) <= 0.05  # a move biases > 5%
    level, lam, info = choose_shift(y, p50, scale, median, 1.0)
    assert (level, lam) == (1.0, 1.0)  # unconstrained: the median has the lowest error


def test_a_trailing_level_is_corrected_only_as_far_as_the_bias_limit() -> None:
    """Demand 30% above what the booster forecasts on the validation windows: the
    smallest level correction that brings the bias within 5% (1.25, not 1.3)."""
    rng = np.random.default_rng(8)
    n = 20_000
    p50, scale = np.full(n, 10.0), np.full(n, 10.0)
    y = 13.0 + rng.normal(0, 1.0, n)
    median = np.zeros(n)  # residual medians: no move towards them changes the P50
    level, _, info = choose_shift(y, p50, scale, median, 0.05, LEVELS)
    assert level == 1.25 and -0.05 <= info["bias"] < -0.03
    # within the limit already: no correction
    level, _, _ = choose_shift(y, p50 * 1.3, scale, median, 0.05, LEVELS)
    assert level == 1.0
    # a level beyond the grid: the nearest the grid has (the smallest |bias|)
    level, _, info = choose_shift(y * 3, p50, scale, median, 0.05, LEVELS)
    assert level == max(LEVELS) and info["bias"] < -0.05


def test_the_level_is_applied_to_the_p50_and_the_band_and_saved() -> None:
    def skewed(seed: int) -> dict[str, np.ndarray]:
        # residuals with median 0 and mean +0.31 scale units: moving towards the
        # median cannot lift the P50, only a level can (the booster trails by ~24%)
        r = _rows(20_000, seed)
        noise = np.random.default_rng(seed).exponential(1.0, 20_000) - np.log(2)
        return {**r, "y": np.maximum(r["p50"] + noise * r["scale"], 0.0)}

    r = skewed(9)
    window = np.repeat([0, 1], 10_000)
    args = (r["y"], r["p50"], r["scale"], r["h"], r["disp"], 7, Q, "t", window)
    cal, info = fit_calibration(*args)
    assert 1.15 <= cal.level <= 1.3 and abs(info["bias"]) <= 0.05
    fresh = skewed(10)
    out = cal.quantiles(fresh["p50"], fresh["scale"], fresh["h"], fresh["disp"])
    assert abs((out["p50"] - fresh["y"]).sum() / fresh["y"].sum()) <= 0.05
    assert 0.77 <= coverage(fresh["y"], out["p10"], out["p90"]) <= 0.85
    # without the level grid (in-sample residuals), no correction
    flat, _ = fit_calibration(*args, level_grid=(1.0,))
    assert flat.level == 1.0
    # artifacts written before the level correction load with none
    legacy = cal.to_json()
    del legacy["level"]
    assert Calibration.from_json(legacy).level == 1.0
    assert Calibration.from_json(json.loads(json.dumps(cal.to_json()))).level == cal.level


def test_tables_are_each_neighbourhoods_residual_quantiles() -> None:
    """The sorted neighbourhoods give exactly np.quantile over each [bin][step]'s rows,
    for the plain quantiles and for the joint upper bound (rows above their lower)."""
    rng = np.random.default_rng(12)
    n, steps, bins = 3_000, 9, 3
    r = rng.standard_t(3, n)
    h, b = rng.integers(1, steps + 1, n), rng.integers(0, bins, n)
    b[b == 2] = 1  # an empty bin borrows every row
    above = rng.random(n) < 0.7
    groups = _Groups(r, h, b, bins, steps)
    for q in (0.0125, 0.1, 0.5, 0.9):
        table = groups.table(q)
        upper = groups.upper(above, q)
        for bin_ in range(bins):
            in_bin = b == bin_ if (b == bin_).any() else np.ones(n, bool)
            for step in range(1, steps + 1):
                sel = _neighbourhood(h, step, steps, in_bin)
                assert table[bin_][step - 1] == pytest.approx(np.quantile(r[sel], q))
                level = min(1.0, q / above[sel].mean())
                want = np.quantile(r[sel & above], level)
                assert upper[bin_][step - 1] == pytest.approx(want)


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
