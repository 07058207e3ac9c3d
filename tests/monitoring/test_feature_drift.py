"""Feature drift: PSI and binned KS from reference bins stored with the model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nightcast.forecasting import ForecastModel
from nightcast.forecasting.reference import reference_bins
from nightcast.monitoring.drift import feature_drift, psi


def test_psi_of_a_known_shift_equals_the_hand_computed_value() -> None:
    # (0.25-0.5)ln(0.25/0.5) + (0.75-0.5)ln(0.75/0.5) = 0.25 ln 2 + 0.25 ln 1.5
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected, abs=1e-12)
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_psi_counts_an_empty_bin_through_the_epsilon() -> None:
    # A bin seen only tonight: reference share replaced by 1e-4, not a division by zero.
    expected = (0.5 - 1e-4) * math.log(0.5 / 1e-4) + (0.5 - 1.0) * math.log(0.5)
    assert psi([1.0, 0.0], [0.5, 0.5]) == pytest.approx(expected, rel=1e-9)


def test_identical_data_has_zero_psi_and_ks() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=5000), rng.integers(0, 4, 5000).astype(float)])
    ref = reference_bins(x, ["level", "store"], categorical=["store"])
    drift = {d.feature: d for d in feature_drift(ref, x, ["level", "store"], psi_max=0.25)}
    assert drift["level"].psi == pytest.approx(0.0, abs=1e-12)
    assert drift["level"].ks == pytest.approx(0.0, abs=1e-12)
    assert drift["store"].psi == pytest.approx(0.0, abs=1e-12)
    assert {d.status for d in drift.values()} == {"ok"}


def test_constructed_numeric_shift_gives_known_psi_and_ks() -> None:
    # Reference: 0..999, deciles -> 10 equal bins. Tonight: half the rows move to the
    # top bin, so the shares are 0.05 in bins 1-9 and 0.55 in bin 10.
    ref_x = np.arange(1000, dtype=float)[:, None]
    ref = reference_bins(ref_x, ["v"], categorical=[])
    assert ref["features"]["v"]["proportions"] == pytest.approx([0.1] * 10)
    tonight = np.concatenate([np.arange(0, 1000, 2, dtype=float), np.full(500, 999.0)])[:, None]
    (d,) = feature_drift(ref, tonight, ["v"], psi_max=0.25)
    expected = 9 * (0.05 - 0.1) * math.log(0.5) + (0.55 - 0.1) * math.log(5.5)
    assert d.psi == pytest.approx(expected, rel=1e-9)
    # ECDF gap is largest at the last edge (899.1): reference 0.9, tonight 0.45.
    assert d.ks == pytest.approx(0.45, abs=1e-9)
    assert d.status == "breach" and d.threshold == 0.25


def test_categorical_shift_and_unseen_code() -> None:
    ref_x = np.array([[0.0]] * 50 + [[1.0]] * 50)
    ref = reference_bins(ref_x, ["store"], categorical=["store"])
    tonight = np.array([[0.0]] * 25 + [[1.0]] * 75)
    (d,) = feature_drift(ref, tonight, ["store"], psi_max=0.3)
    # Bins: code 0, code 1, other, missing (the last two empty on both sides).
    assert d.psi == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5), rel=1e-9)
    assert d.ks is None and d.status == "warn"  # 0.1 < 0.275 <= 0.3
    unseen = np.array([[np.nan]] * 100)
    (gone,) = feature_drift(ref, unseen, ["store"], psi_max=0.25)
    assert gone.status == "breach"


def test_few_series_raise_the_threshold_by_the_sampling_noise() -> None:
    ref = reference_bins(np.arange(1000, dtype=float)[:, None], ["v"], categorical=[])
    tonight = np.concatenate([np.arange(0, 1000, 2, dtype=float), np.full(500, 999.0)])[:, None]
    (d,) = feature_drift(ref, tonight, ["v"], psi_max=0.25, n_effective=10)
    # 10 non-empty reference bins: threshold 0.25 + 9 / 10. Tonight's shares get half a
    # pseudo-count per bin: (0.05 * 10 + 0.5) / 15 = 1/15 in bins 1-9, 6/15 in bin 10.
    expected = 9 * (1 / 15 - 0.1) * math.log(2 / 3) + (0.4 - 0.1) * math.log(4)
    assert d.psi == pytest.approx(expected, rel=1e-9)
    assert d.threshold == pytest.approx(1.15) and d.status == "warn"
    (few,) = feature_drift(ref, tonight, ["v"], psi_max=0.25, n_effective=50)
    assert few.psi > few.threshold and few.status == "warn"  # too few series to page
    (many,) = feature_drift(ref, tonight, ["v"], psi_max=0.25, n_effective=10_000)
    assert many.threshold == pytest.approx(0.2509) and many.status == "breach"


def test_fit_stores_reference_bins_that_survive_save_and_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    days = pd.date_range("2024-01-01", periods=120, freq="D")
    rows = [
        {"unique_id": f"s{i}", "ds": d, "y": float(rng.poisson(3 + i)), "store": f"st{i % 2}"}
        for i in range(4)
        for d in days
    ]
    df = pd.DataFrame(rows)
    model = ForecastModel(params={"num_iterations": 5}, horizon=7).fit(df, static_cols=["store"])
    bins = model.reference_bins
    assert bins is not None
    assert "lag_1" in bins["features"] and "store" in bins["features"]
    assert "horizon" not in bins["features"] and "day_of_week" not in bins["features"]
    loaded = ForecastModel.load(model.save(tmp_path / "m"))
    assert loaded.reference_bins == bins
    # Tonight's design matrix through the model's own code path: same data, low PSI.
    design = loaded.prediction_design(df)
    drift = feature_drift(bins, design.x, loaded.feature_names, psi_max=0.25)
    assert drift and all(np.isfinite(d.psi) for d in drift)
    # (training rows are a random sample of origins and steps: the store mix in
    # them is close to tonight's 50/50, not equal; the alert threshold is 0.25)
    assert max(d.psi for d in drift if d.feature == "store") < 0.1
    drop_reference_bins(tmp_path / "m")
    assert ForecastModel.load(tmp_path / "m").reference_bins is None


def drop_reference_bins(artifact: Path) -> None:
    """Make ``artifact`` look like one saved before drift monitoring."""
    meta = json.loads((artifact / "model.json").read_text())
    del meta["reference_bins"]
    (artifact / "model.json").write_text(json.dumps(meta))
