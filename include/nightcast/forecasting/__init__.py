"""Nightcast forecasting engine: direct multi-horizon LightGBM quantile forecasts.

Typical use::

    model = ForecastModel(horizon=28).fit(df)
    forecast = model.predict(df, future_df)   # unique_id, ds, horizon, p10, p50, p90
    bt = model.backtest(df, windows=3)
    summarize(bt)                              # WAPE, bias, MASE, pinball, coverage
    model.save("models/latest"); ForecastModel.load("models/latest")
"""

from nightcast.forecasting.backtest import backtest
from nightcast.forecasting.device import resolve_device
from nightcast.forecasting.metrics import bias, coverage, mase, pinball, summarize, wape
from nightcast.forecasting.model import DEFAULT_PARAMS, ForecastModel

__all__ = [
    "DEFAULT_PARAMS",
    "ForecastModel",
    "backtest",
    "bias",
    "coverage",
    "mase",
    "pinball",
    "resolve_device",
    "summarize",
    "wape",
]
