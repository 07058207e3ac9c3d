"""The weekly recipe: unit-weighted P50, no calendar features, timing per window."""

from __future__ import annotations

import numpy as np
import pandas as pd
from _demand import FAST, make_demand

from nightcast.forecasting import ForecastModel
from nightcast.forecasting.model import RECIPES
from nightcast.forecasting.panel import calendar


def test_weekly_recipe_applies_unless_overridden() -> None:
    df = make_demand(n_series=8, n_days=60, seed=3, freq="W", sparse=False)
    model = ForecastModel(horizon=8, freq="W").fit(df)
    p50 = model.boosters["p50"].params
    assert p50["objective"] == "quantile" and p50["alpha"] == RECIPES["W"]["p50_alpha"]
    assert model.boosters["p90"].params["alpha"] == 0.9
    assert model.boosters["p50"].current_iteration() == RECIPES["W"]["lgb"]["num_iterations"]
    assert not {"month", "week_of_year", "weeks_to_xmas"} & set(model.feature_names)
    # Explicit params and objective win, also in the clones a backtest fits.
    mine = ForecastModel(FAST | {"num_iterations": 7}, horizon=8, freq="W", objective="l1")
    assert mine.clone().fit(df).boosters["p50"].current_iteration() == 7
    assert mine.clone().fit(df).boosters["p50"].params["objective"] == "l1"


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


def test_daily_recipe_unchanged() -> None:
    model = ForecastModel(FAST, horizon=7).fit(make_demand(n_series=5, n_days=90))
    assert model.boosters["p50"].params["objective"] == "l2"
    assert {"month", "week_of_year", "day_of_week"} <= set(model.feature_names)


def test_weeks_to_christmas() -> None:
    cal = calendar(pd.Timestamp("2011-11-28"), pd.Timedelta(days=7), 6, daily=False)
    assert cal["weeks_to_xmas"].tolist() == [3, 2, 1, 0, 52, 51]
