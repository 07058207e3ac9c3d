"""Numbers and dates as analysts read them: ``12,345``, ``1.2M``, ``21.4%``, ``+8.0%``."""

from __future__ import annotations

import math


def human(value: float | None, *, signed: bool = False) -> str:
    """A quantity for people: thousands separators, millions as ``M``; ``n/a`` when missing."""
    if value is None or not math.isfinite(value):
        return "n/a"
    sign = "+" if signed and value > 0 else ""
    size = abs(value)
    if size >= 1e9:
        return f"{sign}{value / 1e9:,.1f}B"
    if size >= 1e6:
        return f"{sign}{value / 1e6:,.1f}M"
    if size >= 100 or float(value).is_integer():
        return f"{sign}{value:,.0f}"
    if size >= 10:
        return f"{sign}{value:,.1f}"
    return f"{sign}{value:,.2f}"


def percent(value: float | None, *, signed: bool = False) -> str:
    """A ratio as a percentage with one decimal (``0.214`` → ``21.4%``); ``n/a`` when missing."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def change(new: float | None, old: float | None) -> float | None:
    """Relative change from ``old`` to ``new``; None when there is no base to compare with."""
    if new is None or old is None or not math.isfinite(old) or old == 0:
        return None
    return (new - old) / old
