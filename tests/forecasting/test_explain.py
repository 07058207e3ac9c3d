"""SHAP contributions of the forecaster: additive in units, ranked, and pointing at the driver."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _demand import FAST, make_demand

from nightcast.forecasting import ForecastModel
from nightcast.forecasting.explain import contributions, explain

STATICS = ["item_id", "location_id", "department", "country"]
HORIZON = 14


@pytest.fixture(scope="module", params=["l2", "tweedie"])
def fitted(
    request: pytest.FixtureRequest,
) -> tuple[ForecastModel, pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    df = make_demand(n_series=12, n_days=160, promo=True, seed=3)
    cut = df["ds"].max() - pd.Timedelta(days=HORIZON)
    history = df[df["ds"] <= cut]
    # Promotions are known in advance for every day of the horizon, sales or not.
    days = pd.date_range(cut + pd.Timedelta(days=1), periods=HORIZON, freq="D")
    future = pd.DataFrame({"unique_id": sorted(df["unique_id"].unique())}).merge(
        pd.DataFrame({"ds": days}), how="cross"
    )
    future["on_promo"] = (np.arange(len(future)) % 5 == 0).astype(float)
    # Both P50 candidates: l2 (SHAP additive in units) and Tweedie (log link).
    model = ForecastModel(params=FAST, horizon=HORIZON, objective=request.param).fit(
        history, static_cols=STATICS, exog_cols=["on_promo"]
    )
    return model, history, future, cut


def test_contributions_plus_base_reproduce_the_raw_p50_in_units(fitted) -> None:
    model, history, future, cut = fitted
    design = model.prediction_design(history, future, cut)
    raw = model.boosters["p50"].predict(design.x) * design.scale
    # the P50 is the booster's forecast moved by its calibration (part of the base)
    assert model.calibration is not None
    raw += model.calibration.p50_shift(
        raw, design.scale, design.horizon, model.dispersion(design.x)
    )
    contrib = contributions(model, design, "p50")
    assert contrib.shape == (len(raw), len(model.feature_names) + 1)
    np.testing.assert_allclose(contrib.sum(axis=1), raw, rtol=1e-6, atol=1e-6)

    # ... and that raw value is the published P50 wherever clipping and sorting left it alone.
    pred = model.predict(history, future, cut)
    # (the P10/P90 are calibrated offsets around the P50: never crossing it)
    untouched = raw >= 0
    assert untouched.mean() > 0.5
    np.testing.assert_allclose(pred["p50"].to_numpy()[untouched], raw[untouched], rtol=1e-6)

    out = explain(model, history, future, cut, top_k=3)
    first = out[out["rank"] == 1].sort_values(["unique_id", "ds"])
    np.testing.assert_allclose(first["prediction"].to_numpy(), raw, rtol=1e-6, atol=1e-6)


def test_a_level_correction_scales_every_contribution(fitted) -> None:
    """With a calibration level of 1.2 the features explain 1.2x their share, and the
    contributions still add up to the published P50 before clipping."""
    model, history, future, cut = fitted
    assert model.calibration is not None
    design = model.prediction_design(history, future, cut)
    before = contributions(model, design, "p50")
    saved = model.calibration.level
    try:
        model.calibration.level = saved * 1.2
        after = contributions(model, design, "p50")
        published = model.predict(history, future, cut)["p50"].to_numpy()
    finally:
        model.calibration.level = saved
    np.testing.assert_allclose(after[:, :-1], before[:, :-1] * 1.2, rtol=1e-9, atol=1e-12)
    total = after.sum(axis=1)
    untouched = total >= 0  # the published P50 is clipped at zero
    assert untouched.mean() > 0.5
    np.testing.assert_allclose(published[untouched], total[untouched], rtol=1e-6, atol=1e-6)


def test_top_k_are_the_largest_by_absolute_contribution_in_order(fitted) -> None:
    model, history, future, cut = fitted
    out = explain(model, history, future, cut, top_k=4, series=["S001", "S005"])
    assert set(out["unique_id"]) == {"S001", "S005"}
    assert len(out) == 2 * HORIZON * 4
    design = model.prediction_design(history, future, cut)
    contrib = contributions(model, design)[:, :-1]
    names = np.asarray(model.feature_names)
    for (uid, ds), group in out.groupby(["unique_id", "ds"]):
        assert group["rank"].tolist() == [1, 2, 3, 4]
        size = group["contribution"].abs().to_numpy()
        assert np.all(np.diff(size) <= 1e-12)
        row = np.flatnonzero((design.ids == uid) & (design.dates == ds))[0]
        best = np.sort(np.abs(contrib[row]))[::-1][:4]
        np.testing.assert_allclose(size, best, rtol=1e-9)
        assert set(group["feature"]) <= set(names)
        assert group["share"].sum() <= 1 + 1e-9


def test_feature_values_are_shown_in_units_and_categories_by_name(fitted) -> None:
    model, history, future, cut = fitted
    out = explain(model, history, future, cut, top_k=len(model.feature_names), series=["S002"])
    row = out[out["horizon"] == 1].set_index("feature")
    recent = history[
        (history["unique_id"] == "S002") & (history["ds"] > cut - pd.Timedelta(28, "D"))
    ]
    # Missing rows are zero-demand days: the 28-day mean is the sum over 28.
    assert row.loc["mean_28", "feature_value"] == pytest.approx(recent["y"].sum() / 28, rel=1e-4)
    assert row.loc["item_id", "category_value"] == "I2"
    assert row.loc["country", "category_value"] == "DE"


def test_a_driving_feature_dominates_the_explanation() -> None:
    """Demand is 1 a day, 8 on promotion days: on_promo must explain the forecast."""
    rng = np.random.default_rng(5)
    days = pd.date_range("2024-01-01", periods=150, freq="D")
    frames = []
    for i in range(10):
        promo = (rng.random(len(days)) < 0.15).astype(float)
        frames.append(
            pd.DataFrame(
                {"unique_id": f"P{i}", "ds": days, "y": 1.0 + 7.0 * promo, "on_promo": promo}
            )
        )
    df = pd.concat(frames, ignore_index=True)
    cut = days[-8]
    history, rest = df[df["ds"] <= cut], df[df["ds"] > cut]
    future = rest[["unique_id", "ds", "on_promo"]].copy()
    future["on_promo"] = (future["ds"].dt.day % 2).astype(float)
    model = ForecastModel(params=FAST, horizon=7).fit(
        history, static_cols=[], exog_cols=["on_promo"]
    )
    out = explain(model, history, future, cut, top_k=3)
    top = out[out["rank"] == 1].merge(future, on=["unique_id", "ds"])
    assert (top["feature"] == "on_promo").mean() > 0.9
    promo = top[top["feature"] == "on_promo"]
    on = promo[promo["on_promo"] == 1]
    assert len(on) and (on["contribution"] > 2).all()
    assert (promo.loc[promo["on_promo"] == 0, "contribution"] < 0).all()
    assert on["prediction"].mean() == pytest.approx(8.0, abs=1.0)
