"""Metric functions on tiny hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nightcast.forecasting.metrics import (
    bias,
    coverage,
    mae,
    mase,
    pinball,
    seasonal_naive_scale,
    summarize,
    wape,
)

Y = [1.0, 2.0, 3.0, 4.0]
YHAT = [2.0, 2.0, 1.0, 4.0]


def test_wape_and_bias() -> None:
    # |errors| = 1 + 0 + 2 + 0 = 3 ; sum|y| = 10
    assert wape(Y, YHAT) == pytest.approx(0.3)
    # sum(yhat - y) = 1 + 0 - 2 + 0 = -1
    assert bias(Y, YHAT) == pytest.approx(-0.1)
    assert mae(Y, YHAT) == pytest.approx(0.75)
    assert math.isnan(wape([0.0, 0.0], [1.0, 1.0]))


def test_nan_pairs_are_ignored() -> None:
    assert wape([1.0, np.nan, 3.0], [1.0, 5.0, 2.0]) == pytest.approx(0.25)


def test_mase() -> None:
    train = [1.0, 3.0, 2.0, 4.0]  # season 1 diffs: 2, 1, 2 -> scale 5/3
    assert seasonal_naive_scale(train, 1) == pytest.approx(5 / 3)
    assert mase(Y, YHAT, train, 1) == pytest.approx(0.75 / (5 / 3))
    # season 2 diffs: |2-1|, |4-3| -> scale 1
    assert mase(Y, YHAT, train, 2) == pytest.approx(0.75)
    assert math.isnan(mase(Y, YHAT, [1.0], 7))


def test_pinball() -> None:
    # q=0.9: diffs y - yhat = -1, 0, 2, 0 -> losses 0.1, 0, 1.8, 0 -> mean 0.475
    assert pinball(Y, YHAT, 0.9) == pytest.approx(0.475)
    # q=0.5 is half the MAE
    assert pinball(Y, YHAT, 0.5) == pytest.approx(0.375)


def test_coverage() -> None:
    lo = [0.0, 2.5, 3.0, 0.0]
    hi = [2.0, 3.0, 3.0, 3.9]
    # inside: 1 in [0,2] yes; 2 in [2.5,3] no; 3 in [3,3] yes; 4 in [0,3.9] no
    assert coverage(Y, lo, hi) == pytest.approx(0.5)


def test_summarize_excludes_stockouts() -> None:
    bt = pd.DataFrame(
        {
            "y": [1.0, 2.0, 0.0],
            "p10": [0.0, 1.0, 0.0],
            "p50": [1.0, 3.0, 5.0],
            "p90": [2.0, 4.0, 9.0],
            "naive": [2.0, 2.0, 2.0],
            "is_stockout": [False, False, True],
            "mase_scale": [1.0, 2.0, 1.0],
        }
    )
    out = summarize(bt, models=("p50", "naive"))
    assert out.loc["p50", "wape"] == pytest.approx(1 / 3)
    assert out.loc["p50", "mase"] == pytest.approx((0 / 1 + 1 / 2) / 2)
    assert out.loc["naive", "wape"] == pytest.approx(1 / 3)
    assert out.loc["p50", "coverage_p10_p90"] == pytest.approx(1.0)
