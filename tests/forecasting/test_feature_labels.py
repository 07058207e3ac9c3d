"""Every feature the model builds has words (``feature_label``), and BI's
``marts.forecast_explanations`` spells the nightly model's features the same way."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from nightcast.forecasting.design import FeatureLayout, design_matrix, prediction_rows
from nightcast.forecasting.features import HistoryStats
from nightcast.forecasting.labels import FEATURE_LABELS, feature_label
from nightcast.forecasting.panel import build_panel, freq_spec
from nightcast.pipeline.forecast import STATIC_COLS

ROOT = Path(__file__).resolve().parents[2]
EXOG = ["on_promo"]  # what the nightly pipeline fits with (pipeline.forecast.train)


def built_features(freq: str) -> list[str]:
    """The names of every column the feature builder yields for the pipeline's static and
    exogenous columns, the yearly calendar included (a model keeps it with a year of data)."""
    spec, horizon = freq_spec(freq), 7
    days = pd.date_range("2024-01-01", periods=60 + horizon, freq=spec.step)
    df = pd.DataFrame({"unique_id": "s", "ds": days, "y": 1.0, "on_promo": 0.0})
    df = df.assign(**{c: "x" for c in STATIC_COLS})
    future = df[["unique_id", "ds", "on_promo"]].iloc[60:]
    panel = build_panel(df.iloc[:60], spec, None, STATIC_COLS, EXOG, None, (future, horizon))
    layout = FeatureLayout(
        spec=spec,
        horizon=horizon,
        calendar=None,
        exog_cols=EXOG,
        static_cols=STATIC_COLS,
        categories={c: ["x"] for c in STATIC_COLS},
    )
    s, o, rows = prediction_rows(panel, layout.horizon)
    _, _, names = design_matrix(layout, panel, HistoryStats(panel, spec), (s, o), rows, [])
    return names


@pytest.mark.parametrize(("freq", "unit"), [("D", "day"), ("W", "week")])
def test_every_built_feature_has_words(freq: str, unit: str) -> None:
    names = built_features(freq)
    assert {"lag_1", "mean_28" if freq == "D" else "mean_8", "ewm_0.3", "on_promo"} <= set(names)
    labels = {name: feature_label(name, unit) for name in names}
    # An unknown name comes back as it is; 'month' or 'country' are their own words on purpose.
    no_words = [
        n
        for n, label in labels.items()
        if (label == n and n not in FEATURE_LABELS) or "_" in label or "{" in label
    ]
    assert not no_words, f"features without words (add them to forecasting/labels.py): {no_words}"
    assert len(set(labels.values())) == len(labels), "two features share one label"
    if unit == "week":  # windows count weeks there, not days
        assert not [label for label in labels.values() if re.search(r"\bdays?\b", label)]


def test_labels_read_as_the_issue_asked() -> None:
    assert (
        feature_label("ewm_0.3")
        == "exponentially weighted mean of demand (\N{GREEK SMALL LETTER ALPHA} 0.3)"
    )
    assert feature_label("lag_1") == "demand on the run date"
    assert feature_label("lag_8") == "demand 7 days before the run date"
    assert feature_label("mean_28") == "recent 28-day mean"
    assert feature_label("season_mean_8") == "same weekday, last 8 weeks"
    assert feature_label("mean_8", "week") == "recent 8-week mean"
    assert feature_label("log_scale", "week") == "recent level (8-week mean)"
    assert feature_label("season_mean_1") == "same weekday, last week"
    assert feature_label("season_mean_2", "week") == "same week of the year, last 2 years"
    assert feature_label("year_ago_7") == "demand a year before the forecast date (7-day mean)"
    assert feature_label("price") == "price"  # a user's column passes through
    with pytest.raises(ValueError, match="unit"):
        feature_label("mean_28", "month")


def test_bi_view_spells_every_nightly_feature_as_the_cli() -> None:
    """The CASE of marts.forecast_explanations, run on DuckDB for every daily feature."""
    sql = (ROOT / "dbt_project/models/marts/forecast_explanations.sql").read_text()
    case = re.search(r"\n\s+(case\n.*?\n\s+end) as feature_label", sql, re.S)
    assert case, "the feature_label CASE of forecast_explanations.sql moved"
    names = [*built_features("D"), "brand_new"]
    with duckdb.connect() as con:
        con.execute("create table f (feature varchar)")
        con.executemany("insert into f values (?)", [[n] for n in names])
        in_sql = dict(con.execute(f"select feature, {case.group(1)} from f").fetchall())
    assert in_sql == {n: feature_label(n) for n in names}
