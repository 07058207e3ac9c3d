"""Synthetic long-format demand data for the forecasting engine tests (imported by name:
a unique module name, since every test folder has its own conftest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_demand(
    n_series: int = 20,
    n_days: int = 200,
    seed: int = 0,
    freq: str = "D",
    promo: bool = False,
    sparse: bool = True,
) -> pd.DataFrame:
    """Poisson demand with a per-series level and a strong weekly pattern.

    Missing rows mean zero demand when ``sparse`` (zero-demand rows dropped).
    """
    rng = np.random.default_rng(seed)
    step = "D" if freq == "D" else "W-MON"
    dates = pd.date_range("2023-01-02", periods=n_days, freq=step)
    level = rng.lognormal(mean=1.5, sigma=0.8, size=n_series)
    t = np.arange(n_days)
    if freq == "D":
        weekly = np.array([0.6, 0.7, 0.8, 1.0, 1.3, 1.8, 0.8])
        season = weekly[dates.dayofweek.to_numpy()]
    else:
        season = 1 + 0.4 * np.sin(2 * np.pi * t / 52)
    shape = season[None, :] * (1 + 0.1 * rng.normal(size=(n_series, 1)))
    trend = 1 + 0.001 * t[None, :] * rng.normal(size=(n_series, 1))
    on_promo = (rng.random((n_series, n_days)) < 0.08).astype(float)
    lam = level[:, None] * np.clip(shape * trend, 0.05, None)
    if promo:
        lam = lam * (1 + 1.5 * on_promo)
    y = rng.poisson(lam).astype(float)
    ids = np.array([f"S{i:03d}" for i in range(n_series)])
    df = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, n_days),
            "ds": np.tile(dates, n_series),
            "y": y.ravel(),
        }
    )
    df["item_id"] = np.repeat([f"I{i % 7}" for i in range(n_series)], n_days)
    df["location_id"] = np.repeat([f"L{i % 3}" for i in range(n_series)], n_days)
    df["department"] = np.repeat([f"D{i % 2}" for i in range(n_series)], n_days)
    df["country"] = np.repeat(["US" if i % 2 else "DE" for i in range(n_series)], n_days)
    if promo:
        df["on_promo"] = on_promo.ravel()
    if sparse:
        df = df[df["y"] > 0].reset_index(drop=True)
    return df


FAST = {"num_iterations": 60, "learning_rate": 0.1, "num_leaves": 15}
