"""The recipe: chosen on the validation window, calendar rule, timing per window."""

from __future__ import annotations

import numpy as np
import pandas as pd
from _demand import FAST, make_demand

from nightcast.forecasting import ForecastModel
from nightcast.forecasting.model import VALID_WINDOWS, YEARLY_CALENDAR
from nightcast.forecasting.panel import calendar
from nightcast.forecasting.training import CANDIDATES


def test_recipe_is_chosen_on_the_validation_window_and_recorded() -> None:
    df = make_demand(n_series=8, n_days=60, seed=3, freq="W", sparse=False)
    model = ForecastModel(horizon=8, freq="W").fit(df)
    sel = model.train_info["selection"]
    assert set(sel["candidates"]) == set(CANDIDATES)
    best = min(sel["candidates"].values(), key=lambda c: c["wape"])
    chosen = sel["candidates"][sel["objective"]]
    # the lowest validation WAPE wins unless its bias is beyond 5% and another's is not
    assert chosen["wape"] == best["wape"] or abs(best["bias"]) > 0.05
    # early stopping chose the rounds; the final booster went on a tenth more on every row
    assert 10 <= sel["rounds"] <= sel["max_rounds"]
    extra = max(10, sel["rounds"] // 10)
    # (LightGBM stops sooner once no split improves the loss)
    assert model.boosters["p50"].current_iteration() == sel["final_rounds"]
    assert sel["rounds"] < sel["final_rounds"] <= sel["rounds"] + extra
    assert CANDIDATES[sel["objective"]]["objective"] == model.boosters["p50"].params["objective"]
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
