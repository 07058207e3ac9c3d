"""The recipe: chosen on the validation window, calendar rule, timing per window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _demand import FAST, make_demand

from nightcast.forecasting import ForecastModel
from nightcast.forecasting.explain import contributions, explain
from nightcast.forecasting.model import VALID_WINDOWS, YEARLY_CALENDAR
from nightcast.forecasting.panel import calendar
from nightcast.forecasting.training import BASES, CANDIDATES, objective_params


def test_recipe_is_chosen_on_the_validation_window_and_recorded() -> None:
    df = make_demand(n_series=8, n_days=60, seed=3, freq="W", sparse=False)
    model = ForecastModel(horizon=8, freq="W").fit(df)
    sel = model.train_info["selection"]
    # No past years for the seasonal start (60 weeks of history), and last week's value
    # alone forecasts this seasonal, noisy demand worse than the recent mean: skipped.
    assert set(sel["candidates"]) == set(CANDIDATES)
    skip = sel["skipped"]["l2_last"]
    assert skip["start_wape"] >= skip["mean_wape"] > 0
    best = min(sel["candidates"].values(), key=lambda c: c["wape"])
    chosen = sel["candidates"][sel["objective"]]
    # the lowest validation WAPE wins unless its bias is beyond 5% and another's is not
    assert chosen["wape"] == best["wape"] or abs(best["bias"]) > 0.05
    # early stopping chose the rounds; the final booster went on a tenth more on every row
    assert sel["objective"] not in BASES  # (a seasonal, noisy set: the average start wins)
    assert 10 <= sel["rounds"] <= sel["max_rounds"]
    extra = max(10, sel["rounds"] // 10)
    # (LightGBM stops sooner once no split improves the loss)
    assert model.boosters["p50"].current_iteration() == sel["final_rounds"]
    assert sel["rounds"] < sel["final_rounds"] <= sel["rounds"] + extra
    assert CANDIDATES[sel["objective"]]["objective"] == model.boosters["p50"].params["objective"]
    assert model.p50_base is None and "base" not in sel
    assert sel["validation"]["rows"] == VALID_WINDOWS * 8 * 8  # windows x series x steps
    assert not set(YEARLY_CALENDAR) & set(model.feature_names)
    # Explicit rounds and objective win, also in the clones a backtest fits.
    mine = ForecastModel(FAST | {"num_iterations": 7}, horizon=8, freq="W", objective="l1")
    fitted = mine.clone().fit(df)
    assert fitted.boosters["p50"].current_iteration() == 7
    assert fitted.boosters["p50"].params["objective"] == "l1"
    assert list(fitted.train_info["selection"]["candidates"]) == ["l1"]


def test_weekly_backtest_reports_seconds() -> None:
    df = make_demand(n_series=8, n_days=60, seed=3, freq="W", sparse=False)
    model = ForecastModel(FAST, horizon=8, freq="W")
    bt = model.backtest(df, windows=2)
    meta = model.metrics["backtest"]
    assert set(meta["seconds"]) == set(meta["cutoffs"]) == set(meta["baseline_seconds"])
    assert all(v > 0 for v in meta["seconds"].values())
    # Seasonal naive needs the same week a year before: not there for the first window
    # (falls back to naive), there for the second.
    first = bt["cutoff"] == bt["cutoff"].min()
    assert bt.loc[first, "snaive_fallback"].all()
    assert np.array_equal(bt.loc[first, "seasonal_naive"], bt.loc[first, "naive"])
    assert not bt.loc[~first, "snaive_fallback"].any()


def test_yearly_calendar_only_with_a_year_of_origins() -> None:
    df = make_demand(n_series=5, n_days=500)
    short = ForecastModel(FAST, horizon=7).fit(df)
    assert {"day_of_week", "day_of_month"} <= set(short.feature_names)
    assert not set(YEARLY_CALENDAR) & set(short.feature_names)
    long = ForecastModel(FAST, horizon=7, max_origins=53).fit(df)
    assert {"month", "week_of_year", "day_of_week"} <= set(long.feature_names)


def test_weeks_to_christmas() -> None:
    cal = calendar(pd.Timestamp("2011-11-28"), pd.Timedelta(days=7), 6, daily=False)
    assert cal["weeks_to_xmas"].tolist() == [3, 2, 1, 0, 52, 51]


def test_a_history_too_short_to_validate_still_fits_and_says_so() -> None:
    df = make_demand(n_series=5, n_days=45, seed=8, sparse=False)  # < 2 horizons + scale window
    model = ForecastModel(horizon=28).fit(df)
    sel = model.train_info["selection"]
    assert sel["validation"] is None and sel["rounds"] == 100
    assert model.calibration is not None and "in-sample" in model.calibration.source
    fc = model.predict(df)
    assert len(fc) == 5 * 28 and (fc["p10"] <= fc["p90"]).all()


def _random_walks(n_series: int, n_weeks: int, seed: int) -> pd.DataFrame:
    """Steady, high-volume weekly demand whose best forecast is last week's value."""
    rng = np.random.default_rng(seed)
    level = 300 * np.exp(np.cumsum(rng.normal(0, 0.08, (n_series, n_weeks)), axis=1))
    dates = pd.date_range("2023-01-02", periods=n_weeks, freq="W-MON")
    return pd.DataFrame(
        {
            "unique_id": np.repeat([f"R{i:02d}" for i in range(n_series)], n_weeks),
            "ds": np.tile(dates, n_series),
            "y": rng.poisson(level).ravel().astype(float),
        }
    )


def test_random_walks_boost_from_last_weeks_value(tmp_path) -> None:
    df = _random_walks(40, 70, seed=5)
    model = ForecastModel(horizon=8, freq="W").fit(df)
    sel = model.train_info["selection"]
    # The candidate that starts from last week's value wins, with the fewest rounds, and
    # is recorded with the model; the average start keeps the 8-week mean and loses.
    assert sel["objective"] == "l2_last" and sel["base"] == model.p50_base == "last_known"
    others = [c["wape"] for n, c in sel["candidates"].items() if n != "l2_last"]
    assert sel["candidates"]["l2_last"]["wape"] < min(others)
    assert model.boosters["p50"].params["objective"] == objective_params("l2_last")["objective"]
    design = model.prediction_design(df)
    ratio = model.boosters["p50"].predict(design.x)
    last = df.sort_values("ds").groupby("unique_id")["y"].last()
    assert model.calibration is not None
    fc = model.predict(df)
    # The published P50 is last week's value plus the trees' (small) correction.
    expect = (ratio + design.x[:, model.feature_names.index("last_known")]) * design.scale
    expect += model.calibration.p50_shift(
        expect, design.scale, design.horizon, model.dispersion(design.x)
    )
    np.testing.assert_allclose(fc["p50"], np.maximum(expect, 0), rtol=1e-6)
    rel = np.abs(fc["p50"].to_numpy() / last.reindex(fc["unique_id"]).to_numpy() - 1)
    assert np.median(rel) < 0.05
    # The base is part of the artifact: a loaded model forecasts the same.
    loaded = ForecastModel.load(model.save(tmp_path / "m").path)
    assert loaded.p50_base == "last_known"
    pd.testing.assert_frame_equal(loaded.predict(df), fc)
    # The base is the last_known feature's contribution: the explanation still adds up.
    contrib = contributions(model, design, "p50")
    np.testing.assert_allclose(contrib.sum(axis=1), expect, rtol=1e-6, atol=1e-6)
    j = model.feature_names.index("last_known")
    assert (np.abs(contrib[:, j]) > 0.5 * np.abs(expect)).all()


def test_daily_models_offer_no_base_and_short_histories_never_choose_one() -> None:
    daily = ForecastModel(FAST, horizon=7).fit(make_demand(n_series=4, n_days=120, seed=2))
    assert not set(BASES) & set(daily.train_info["selection"]["candidates"])
    # Too short to validate: nothing tells a base from the average, the first plain one.
    short = _random_walks(5, 14, seed=1)
    model = ForecastModel(horizon=8, freq="W").fit(short)
    assert model.train_info["selection"]["objective"] == "l2" and model.p50_base is None


def test_a_base_candidate_leaves_the_labels_as_it_found_them(monkeypatch) -> None:
    df = _random_walks(20, 60, seed=2)
    first = ForecastModel(horizon=8, freq="W").fit(df).train_info["selection"]["candidates"]
    # The base candidate trained first: the ones after it see the plain labels again.
    monkeypatch.setattr(
        ForecastModel, "_candidates", lambda self, target, x: ["l2_last", "tweedie"]
    )
    again = ForecastModel(horizon=8, freq="W").fit(df).train_info["selection"]["candidates"]
    for name in ("tweedie", "l2_last"):
        assert {k: v for k, v in again[name].items() if k != "seconds"} == {
            k: v for k, v in first[name].items() if k != "seconds"
        }


def test_long_seasonal_series_boost_from_past_years_shape() -> None:
    """Six years of weekly demand with a yearly shape and a drifting level: the
    candidate that starts from the shape of past years at today's level wins."""
    rng = np.random.default_rng(11)
    n, weeks = 30, 6 * 52
    t = np.arange(weeks)
    shape = 1 + 0.5 * np.sin(2 * np.pi * t / 52 + rng.uniform(0, 6, (n, 1)))
    level = 500 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, weeks)), axis=1))
    dates = pd.date_range("2019-01-07", periods=weeks, freq="W-MON")
    df = pd.DataFrame(
        {
            "unique_id": np.repeat([f"S{i:02d}" for i in range(n)], weeks),
            "ds": np.tile(dates, n),
            "y": rng.poisson(level * shape).ravel().astype(float),
        }
    )
    model = ForecastModel(horizon=13, freq="W").fit(df)
    sel = model.train_info["selection"]
    assert {"l2_last", "l2_season"} <= set(sel["candidates"])
    assert sel["objective"] == "l2_season" and model.p50_base == "year_ratio_5"
    fc = model.predict(df)
    assert len(fc) == n * 13 and fc["p50"].notna().all()
    # Explanations show the level a year back in units, and the past years' shape as
    # the ratio it is (the base, today's level times that shape, is its contribution).
    out = explain(model, df, None, None, top_k=len(model.feature_names), series=["S03"])
    row = out[out["horizon"] == 1].set_index("feature")
    y = df[df["unique_id"] == "S03"]["y"].to_numpy()
    assert row.loc["year_ago_level", "feature_value"] == pytest.approx(y[-60:-52].mean())
    ratios = [y[-52 * k] / y[-52 * k - 8 : -52 * k].mean() for k in range(1, 6)]
    assert row.loc["year_ratio_5", "feature_value"] == pytest.approx(np.mean(ratios), rel=1e-5)
