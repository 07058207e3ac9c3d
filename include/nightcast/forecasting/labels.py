"""The model's features in words, for people: ``nightcast explain``, the nightly report's
drift table, and (mirrored in SQL) BI's ``marts.forecast_explanations``.

A label is derived from the feature's name as :mod:`.features` and :mod:`.design` build
it: a fixed name (``log_scale``, ``on_promo``) or a pattern with a number (``mean_28``,
``ewm_0.3``, ``season_mean_8``), so a new window or smoothing factor gets words without
an entry here. ``tests/forecasting/test_feature_labels.py`` builds every feature the
builder yields, daily and weekly, and fails on one without words.
"""

from __future__ import annotations

import re

from nightcast.forecasting.panel import freq_spec

# Fixed names: the engine's own features, the calendar, and the nightly pipeline's
# exogenous (on_promo) and static columns (pipeline.forecast.STATIC_COLS).
FEATURE_LABELS = {
    "horizon": "{unit}s ahead",
    "log_scale": "recent level ({scale}-{unit} mean)",
    "last_known": "last known demand",
    "age": "{unit}s since first sale",
    "since_sale": "{unit}s since last sale",
    "year_ago_level": "level a year before the run date",
    "month": "month",
    "week_of_year": "week of year",
    "day_of_week": "day of week",
    "day_of_month": "day of month",
    "weeks_to_xmas": "weeks to Christmas",
    "on_promo": "on promotion",
    "is_holiday": "public holiday",
    "item_id": "item",
    "location_id": "location",
    "department": "department",
    "category": "category",
    "location_type": "location type",
    "country": "country",
}
# (name pattern, words): {n} is the number in the name.
_PATTERNS = (
    (re.compile(r"lag_(?P<n>\d+)"), "{lag}"),
    (re.compile(r"mean_(?P<n>\d+)"), "recent {n}-{unit} mean"),
    (re.compile(r"std_(?P<n>\d+)"), "{n}-{unit} variability"),
    (re.compile(r"zero_frac_(?P<n>\d+)"), "share of zero-demand {unit}s ({n} {unit}s)"),
    (re.compile(r"known_frac_(?P<n>\d+)"), "share of {unit}s with data ({n} {unit}s)"),
    (re.compile(r"season_mean_(?P<n>\d+)"), "same {season}, {last}"),
    (
        re.compile(r"ewm_(?P<n>\d+(\.\d+)?)"),
        "exponentially weighted mean of demand (\N{GREEK SMALL LETTER ALPHA} {n})",
    ),
    (
        re.compile(r"year_ratio_(?P<n>\d+)"),
        "same {season} in the last {n} years, over the level then",
    ),
    (
        re.compile(r"year_ago_(?P<n>\d+)"),
        "demand a year before the forecast date ({n}-{unit} mean)",
    ),
)
_UNITS = {"day": ("D", "weekday", "week"), "week": ("W", "week of the year", "year")}


def _lag(n: int, unit: str) -> str:
    # lag_1 is the demand of the origin period itself (features.HistoryStats.origin_features).
    if n <= 1:
        return "demand on the run date"
    return f"demand {n - 1} {unit}{'s' if n > 2 else ''} before the run date"


def feature_label(name: str, unit: str = "day") -> str:
    """Words for feature ``name`` of a model whose period is ``unit`` ('day': the nightly
    model; 'week': weekly data), e.g. ``mean_28`` -> 'recent 28-day mean'. A name the
    engine does not build (a user's exogenous column) is returned as it is."""
    if unit not in _UNITS:
        raise ValueError(f"unit must be 'day' or 'week', not {unit!r}")
    freq, season, cycle = _UNITS[unit]
    words = {"unit": unit, "season": season}
    if name in FEATURE_LABELS:
        return FEATURE_LABELS[name].format(scale=freq_spec(freq).scale_window, **words)
    for pattern, text in _PATTERNS:
        found = pattern.fullmatch(name)
        if found:
            n = found.group("n")
            lag = _lag(int(n), unit) if name.startswith("lag_") else ""
            last = f"last {cycle}" if n == "1" else f"last {n} {cycle}s"
            return text.format(n=n, lag=lag, last=last, **words)
    return name
