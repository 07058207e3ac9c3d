"""ForecastModel: shapes, quantiles, persistence, determinism, censoring, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _demand import FAST, make_demand

from nightcast.forecasting import ForecastModel, resolve_device

H = 14


@pytest.fixture(scope="module")
def fitted(demand: pd.DataFrame) -> ForecastModel:
    return ForecastModel(FAST, horizon=H).fit(demand)


@pytest.fixture(scope="module")
def forecast(fitted: ForecastModel, demand: pd.DataFrame) -> pd.DataFrame:
    return fitted.predict(demand, cutoff=demand["ds"].max())


def test_predict_shape_and_dates(forecast: pd.DataFrame, demand: pd.DataFrame) -> None:
    assert list(forecast.columns) == ["unique_id", "ds", "horizon", "p10", "p50", "p90"]
    assert forecast["unique_id"].nunique() == demand["unique_id"].nunique()
    end = demand["ds"].max()
    for _, g in forecast.groupby("unique_id"):
        assert len(g) == H
        assert list(g["horizon"]) == list(range(1, H + 1))
        expected = pd.date_range(end + pd.Timedelta(days=1), periods=H, freq="D")
        assert (pd.DatetimeIndex(g["ds"]) == expected).all()


def test_predict_after_each_series_last_date(fitted: ForecastModel, demand: pd.DataFrame) -> None:
    short = demand[~((demand["unique_id"] == "S001") & (demand["ds"] > "2023-06-30"))]
    fc = fitted.predict(short)
    first = fc[fc["horizon"] == 1].set_index("unique_id")["ds"]
    last = short.groupby("unique_id")["ds"].max()
    assert (first == last + pd.Timedelta(days=1)).all()


def test_quantiles_ordered_and_non_negative(forecast: pd.DataFrame) -> None:
    assert (forecast["p10"] <= forecast["p50"]).all()
    assert (forecast["p50"] <= forecast["p90"]).all()
    assert (forecast[["p10", "p50", "p90"]] >= 0).all().all()
    assert forecast["p90"].gt(forecast["p10"]).mean() > 0.9


def test_properties(fitted: ForecastModel, demand: pd.DataFrame) -> None:
    info = fitted.train_info
    assert info["series"] == demand["unique_id"].nunique()
    assert info["rows"] == len(demand)
    assert info["start"] == "2023-01-02"
    assert "horizon" in fitted.feature_names and "item_id" in fitted.feature_names
    assert "is_holiday" in fitted.feature_names
    assert fitted.params["num_threads"] == 1 and fitted.params["deterministic"] is True
    assert fitted.categories["country"] == ["DE", "US"]


def test_save_load_round_trip(
    fitted: ForecastModel, demand: pd.DataFrame, forecast: pd.DataFrame, tmp_path: Path
) -> None:
    fitted.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["booster_p50.txt", "model.json"]
    loaded = ForecastModel.load(tmp_path / "m")
    again = loaded.predict(demand, cutoff=demand["ds"].max())
    pd.testing.assert_frame_equal(again, forecast, check_exact=True)
    assert loaded.feature_names == fitted.feature_names
    assert loaded.train_info == fitted.train_info
    assert loaded.calibration == fitted.calibration


def test_deterministic(demand: pd.DataFrame, forecast: pd.DataFrame) -> None:
    again = ForecastModel(FAST, horizon=H).fit(demand).predict(demand, cutoff=demand["ds"].max())
    pd.testing.assert_frame_equal(again, forecast, check_exact=True)


def test_unknown_category_at_predict(fitted: ForecastModel, demand: pd.DataFrame) -> None:
    new = demand.assign(location_id="L_new")
    fc = fitted.predict(new, cutoff=demand["ds"].max())
    assert fc[["p10", "p50", "p90"]].notna().all().all()


def test_stockouts_do_not_pull_forecast_down() -> None:
    df = make_demand(n_series=12, n_days=160, seed=3, sparse=False)
    end = df["ds"].max()
    hit = (df["unique_id"] == "S000") & (df["ds"] > end - pd.Timedelta(days=14))
    censored = df.copy()
    censored.loc[hit, "y"] = 0.0
    censored["is_stockout"] = hit.astype(float)
    unflagged = censored.assign(is_stockout=0.0)

    def level(frame: pd.DataFrame) -> float:
        fc = ForecastModel(FAST, horizon=7).fit(frame).predict(frame)
        return float(fc.loc[fc["unique_id"] == "S000", "p50"].mean())

    true_level, flagged, naive = level(df), level(censored), level(unflagged)
    assert flagged > 0.75 * true_level
    assert naive < 0.6 * flagged


def test_promo_feature_used() -> None:
    df = make_demand(n_series=10, n_days=150, seed=4, promo=True, sparse=False)
    model = ForecastModel(FAST, horizon=7).fit(df)
    assert "on_promo" in model.feature_names
    end = df["ds"].max()
    ids = df[["unique_id"]].drop_duplicates()
    days = pd.DataFrame({"ds": pd.date_range(end + pd.Timedelta(days=1), periods=7)})
    fut = ids.merge(days, how="cross")
    low = model.predict(df, fut.assign(on_promo=0.0))
    high = model.predict(df, fut.assign(on_promo=1.0))
    assert high["p50"].sum() > 1.3 * low["p50"].sum()
    with pytest.raises(ValueError, match="future_df is required"):
        model.predict(df)


def test_weekly_frequency() -> None:
    df = make_demand(n_series=8, n_days=120, seed=5, freq="W", sparse=False)
    model = ForecastModel(FAST, horizon=8, freq="W").fit(df)
    fc = model.predict(df)
    assert len(fc) == 8 * 8
    end = df["ds"].max()
    first = fc.loc[fc["horizon"] == 1, "ds"]
    assert (first == end + pd.Timedelta(weeks=1)).all()
    assert (fc.groupby("unique_id")["ds"].diff().dropna() == pd.Timedelta(weeks=1)).all()
    assert "season_mean_1" in model.feature_names and "day_of_week" not in model.feature_names


def test_errors(demand: pd.DataFrame) -> None:
    dup = pd.concat([demand, demand.iloc[[5]]])
    key = demand.iloc[5]
    with pytest.raises(ValueError, match=rf"duplicated.*'{key['unique_id']}'"):
        ForecastModel(FAST).fit(dup)
    # The grid check names the frame, the count and the first repeated key, like
    # DataFrame.duplicated, and also fires at predict.
    fitted = ForecastModel(FAST).fit(demand)
    twice = pd.concat([demand, demand.iloc[[7, 9]], demand.iloc[[7]]])
    expected = twice.duplicated(["unique_id", "ds"])
    first = twice[expected].iloc[0]
    with pytest.raises(
        ValueError,
        match=rf"df_history has 3 duplicated .*'{first['unique_id']}', {first['ds'].date()}",
    ):
        fitted.predict(twice)
    with pytest.raises(ValueError, match=r"missing required column.*'y'"):
        ForecastModel(FAST).fit(demand.drop(columns="y"))
    with pytest.raises(ValueError, match=r"'y' must be numeric.*'abc'"):
        ForecastModel(FAST).fit(demand.assign(y="abc"))
    with pytest.raises(ValueError, match="'ds' must be datetime64"):
        ForecastModel(FAST).fit(demand.assign(ds=demand["ds"].astype(str)))
    tiny = demand[demand["ds"] < "2023-01-12"]
    with pytest.raises(ValueError, match=r"too short.*has"):
        ForecastModel(FAST).fit(tiny)
    with pytest.raises(ValueError, match="not fitted"):
        ForecastModel(FAST).predict(demand)
    with pytest.raises(ValueError, match="freq"):
        ForecastModel(freq="M")
    with pytest.raises(ValueError, match="missing static column 'country'"):
        ForecastModel(FAST).fit(demand).predict(demand.drop(columns="country"))


def test_resolve_device_falls_back_to_cpu(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nightcast.forecasting"):
        assert resolve_device("auto") == "cpu"
    assert "falling back" in caplog.text
    assert resolve_device("CPU") == "cpu"
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    model = ForecastModel({**FAST, "device": "auto"}, horizon=7)
    assert model.params["device_type"] == "auto"


def test_fit_logs(demand: pd.DataFrame, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="nightcast.forecasting"):
        ForecastModel({**FAST, "num_iterations": 5}, horizon=7).fit(demand)
    assert "fit:" in caplog.text and "series" in caplog.text
    assert np.isfinite(1.0)
