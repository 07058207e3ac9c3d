"""The accuracy suite's metric and window code (bench/accuracy_suite.py, issue 12).

Only the pure functions: no statsforecast, mlforecast or data set is needed, so
this runs in ``make test`` without the ``bench`` extra. Expected values are
worked out by hand in the comments.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

SUITE = Path(__file__).resolve().parents[2] / "bench" / "accuracy_suite.py"


@pytest.fixture(scope="module")
def suite() -> ModuleType:
    spec = importlib.util.spec_from_file_location("accuracy_suite", SUITE)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["accuracy_suite"] = mod
    spec.loader.exec_module(mod)
    return mod


# Four forecast rows of a tiny panel.
Y_ = np.array([4.0, 0.0, 2.0, 6.0])
P50 = np.array([3.0, 1.0, 2.0, 8.0])  # |err| = 1, 1, 0, 2 (sum 4); sum|y| = 12
LO = np.array([2.0, 0.0, 3.0, 5.0])  # y inside [lo, hi]: yes, yes, no, yes
HI = np.array([5.0, 2.0, 4.0, 9.0])
SCALE = np.array([2.0, 2.0, 1.0, 0.0])  # the last row has no MASE scale


def test_score_matches_hand_computed_values(suite: ModuleType) -> None:
    s = suite.score(Y_, P50, SCALE, LO, HI)
    assert s["wape"] == pytest.approx(4 / 12)
    # sum(p50 - y) = 14 - 12 = 2
    assert s["bias"] == pytest.approx(2 / 12)
    # |err| / scale on the rows with a scale: 1/2, 1/2, 0/1
    assert s["mase"] == pytest.approx(1 / 3)
    assert s["coverage"] == pytest.approx(0.75)
    # pinball sums: q=0.1 on y - lo = (2, 0, -1, 1): 0.2 + 0 + 0.9 + 0.1 = 1.2;
    # q=0.5 on (1, -1, 0, -2): 0.5 + 0.5 + 0 + 1 = 2; q=0.9 on y - hi = (-1, -2, -2, -3):
    # 0.1 + 0.2 + 0.2 + 0.3 = 0.8. wQL = mean of 2 * sum / 12.
    expected = np.mean([2 * 1.2 / 12, 2 * 2 / 12, 2 * 0.8 / 12])
    assert s["pinball"] == pytest.approx(expected)
    assert expected == pytest.approx(2 / 9)


def test_pinball_median_term_equals_wape(suite: ModuleType) -> None:
    assert suite.weighted_quantile_loss(Y_, {0.5: P50}) == pytest.approx(
        suite.score(Y_, P50, SCALE)["wape"]
    )


def test_point_anchor_has_no_coverage_or_pinball(suite: ModuleType) -> None:
    s = suite.score(Y_, P50, SCALE)
    assert s["coverage"] is None and s["pinball"] is None


def test_nan_and_degenerate_inputs(suite: ModuleType) -> None:
    assert np.isnan(suite.mase(Y_, P50, np.zeros(4)))
    assert np.isnan(suite.weighted_quantile_loss(np.zeros(3), {0.5: np.ones(3)}))
    y = np.array([1.0, np.nan, 3.0])
    assert suite.mase(y, np.array([2.0, 5.0, 3.0]), np.ones(3)) == pytest.approx(0.5)


def test_gap_best_anchor_and_targets(suite: ModuleType) -> None:
    assert suite.gap_pct(0.97, 1.0) == pytest.approx(-3.0)
    assert suite.gap_pct(1.1, 1.0) == pytest.approx(10.0)
    scores = {
        "engine": {"wape": 0.5},
        "AutoETS": {"wape": 0.8},
        "mlforecast_lgbm": {"wape": 0.7},
        "CrostonOptimized": {"wape": float("nan")},
    }
    assert suite.best_anchor(scores) == ("mlforecast_lgbm", 0.7)
    row: dict[str, Any] = {"gap_pct": -3.0, "bias": -0.05, "coverage": 0.765, "time_ratio": 3.0}
    assert suite.targets(row) == {"gap": True, "bias": True, "coverage": False, "time": True}
    row = {"gap_pct": -2.9, "bias": 0.051, "coverage": 0.83, "time_ratio": None}
    assert suite.targets(row) == {"gap": False, "bias": False, "coverage": True, "time": None}


def test_cutoffs_are_the_engine_backtest_windows(suite: ModuleType) -> None:
    end = pd.Timestamp("2024-03-31")
    cuts = suite.backtest_cutoffs(end, 7, 3, 7, pd.Timedelta(days=1))
    # the last window (after 03-24) ends at 03-31; windows 7 days apart
    assert cuts == [
        pd.Timestamp("2024-03-10"),
        pd.Timestamp("2024-03-17"),
        pd.Timestamp("2024-03-24"),
    ]
    weekly = suite.backtest_cutoffs(pd.Timestamp("2024-12-30"), 8, 2, 8, pd.Timedelta(days=7))
    assert weekly == [pd.Timestamp("2024-09-09"), pd.Timestamp("2024-11-04")]


def test_densify_fills_zero_demand_from_each_series_start(suite: ModuleType) -> None:
    df = pd.DataFrame(
        {
            "unique_id": ["b", "a", "a"],
            "ds": pd.to_datetime(["2024-01-03", "2024-01-01", "2024-01-03"]),
            "y": [5.0, 1.0, 2.0],
            "on_promo": [1.0, 0.0, 1.0],
            "country": ["FR", "UK", "UK"],
        }
    )
    out = suite.densify(df, "D", end=pd.Timestamp("2024-01-04"))
    assert out["unique_id"].tolist() == ["a"] * 4 + ["b"] * 2
    assert out["y"].tolist() == [1.0, 0.0, 2.0, 0.0, 5.0, 0.0]
    assert out["on_promo"].tolist() == [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert out["country"].tolist() == ["UK"] * 4 + ["FR"] * 2
    assert out["ds"].iloc[:4].tolist() == list(pd.date_range("2024-01-01", periods=4, freq="D"))


def test_weekly_mean_keeps_one_position_per_week(suite: ModuleType) -> None:
    # Mon 1 + Fri 5 Jan (week 1), nothing in week 2 but a NaN, Wed 17 Jan (week 3)
    days = pd.Series(pd.to_datetime(["2024-01-01", "2024-01-05", "2024-01-10", "2024-01-17"]))
    out = suite._weekly_mean(days, pd.Series([1.0, 3.0, None, 6.0]))
    assert out.index.tolist() == list(pd.date_range("2024-01-01", periods=3, freq="7D"))
    assert out.tolist() == [2.0, 4.0, 6.0]  # the empty week interpolated, not dropped


def test_results_serialise_as_strict_json(suite: ModuleType) -> None:
    payload = {"a": float("nan"), "b": [np.float64(1.5), np.int64(2), np.bool_(True)]}
    text = json.dumps(suite.jsonable(payload), allow_nan=False)
    assert json.loads(text) == {"a": None, "b": [1.5, 2, True]}


def test_suite_imports_without_the_bench_extra(suite: ModuleType) -> None:
    # the anchors' libraries are imported inside the functions that use them
    assert "statsforecast" not in vars(suite) and "mlforecast" not in vars(suite)
    assert set(suite.LOADERS) >= {"retail_daily", "retail_weekly", "retail_item_country"}
