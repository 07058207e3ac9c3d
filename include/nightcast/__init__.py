"""Nightcast: nightly ERP extraction, data-quality gate and demand forecasting."""

__version__ = "0.1.0"
