"""Rolling-origin backtest against the naive baselines."""

from __future__ import annotations

import pandas as pd
import pytest
from _demand import FAST

from nightcast.forecasting import ForecastModel, summarize


@pytest.fixture(scope="module")
def result(demand: pd.DataFrame) -> tuple[ForecastModel, pd.DataFrame]:
    model = ForecastModel(FAST, horizon=14)
    return model, model.backtest(demand, windows=3)


def test_backtest_frame(result: tuple[ForecastModel, pd.DataFrame], demand: pd.DataFrame) -> None:
    _, bt = result
    assert bt["cutoff"].nunique() == 3
    n = demand["unique_id"].nunique()
    assert len(bt) == 3 * 14 * n
    cols = {"unique_id", "ds", "cutoff", "horizon", "y", "p10", "p50", "p90"}
    assert cols | {"naive", "seasonal_naive", "moving_average", "mase_scale"} <= set(bt.columns)
    assert (bt["ds"] > bt["cutoff"]).all()
    assert bt["ds"].max() == demand["ds"].max()
    assert bt["y"].notna().all()  # missing days are zero demand


def test_engine_beats_baselines(result: tuple[ForecastModel, pd.DataFrame]) -> None:
    model, bt = result
    summary = summarize(bt)
    engine = summary.loc["p50", "wape"]
    assert engine < summary.loc["naive", "wape"]
    assert engine < summary.loc["moving_average", "wape"]
    assert engine < summary.loc["seasonal_naive", "wape"]
    assert summary.loc["p50", "mase"] < summary.loc["seasonal_naive", "mase"]
    assert 0.6 <= summary.loc["p50", "coverage_p10_p90"] <= 0.95
    assert model.metrics["backtest"]["windows"] == 3
    assert summary.to_dict(orient="records")[0]["model"] == "p50"


def test_backtest_too_short(demand: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="too short for 10 backtest window"):
        ForecastModel(FAST, horizon=28).backtest(demand, windows=10)
