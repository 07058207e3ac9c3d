"""Dense panel construction and origin features (zero filling, censoring, no leakage)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _demand import FAST, make_demand

from nightcast.forecasting import ForecastModel
from nightcast.forecasting.features import HistoryStats
from nightcast.forecasting.panel import build_panel, freq_spec


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unique_id": ["b", "b", "a", "a", "a"],
            "ds": pd.to_datetime(
                ["2024-01-03", "2024-01-05", "2024-01-01", "2024-01-02", "2024-01-04"]
            ),
            "y": [2.0, 4.0, 1.0, 3.0, 5.0],
            "is_stockout": [0, 0, 0, 1, 0],
        }
    )


def test_panel_fills_zeros_and_censors_stockouts() -> None:
    spec = freq_spec("D")
    panel = build_panel(_frame(), spec, pd.Timestamp("2024-01-06"), [], [], "is_stockout")
    assert list(panel.ids) == ["a", "b"]
    nan = np.nan
    expected = np.array(
        [
            [1.0, nan, 0.0, 5.0, 0.0, 0.0],  # a: stock-out on day 2 is NaN, gaps are 0
            [nan, nan, 2.0, 0.0, 4.0, 0.0],  # b: NaN before its first observation
        ]
    )
    np.testing.assert_array_equal(panel.y, expected)
    assert list(panel.first) == [0, 2] and list(panel.last) == [5, 5]
    stats = HistoryStats(panel, spec)
    s, o = np.array([0, 1]), np.array([3, 4])
    np.testing.assert_allclose(stats.mean(s, o, 3), [2.5, 2.0])  # a: (0+5)/2 ignores NaN
    assert list(stats.last_sale[s, o]) == [3, 4]


def test_panel_without_cutoff_ends_each_series_at_its_last_date() -> None:
    panel = build_panel(_frame(), freq_spec("D"), None, [], [], "is_stockout")
    assert list(panel.last) == [3, 4]
    assert np.isnan(panel.y[0, 4])


def test_weekly_grid_is_checked() -> None:
    df = _frame().assign(
        ds=pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-01", "2024-01-09", "2024-01-15"])
    )
    with pytest.raises(ValueError, match="regular 7 days"):
        build_panel(df, freq_spec("W"), None, [], [], None)


def test_a_future_frame_in_another_time_zone_is_refused(demand: pd.DataFrame) -> None:
    """Dates of two time zones are not compared as integers: the message says why."""
    df = demand.assign(on_promo=0.0)
    model = ForecastModel(FAST, horizon=7).fit(df, exog_cols=["on_promo"])
    days = pd.date_range(df["ds"].max() + pd.Timedelta(days=1), periods=7)
    ids = df["unique_id"].unique()
    future = pd.DataFrame(
        {"unique_id": np.repeat(ids, 7), "ds": np.tile(days, len(ids)), "on_promo": 1.0}
    )
    aware = future.assign(ds=future["ds"].dt.tz_localize("Europe/Berlin"))
    with pytest.raises(ValueError, match="future_df column 'ds' is in time zone Europe/Berlin"):
        model.predict(df, aware)
    assert len(model.predict(df, future)) == len(ids) * 7


def test_no_leakage_from_after_the_cutoff(demand: pd.DataFrame) -> None:
    cutoff = pd.Timestamp("2023-06-01")
    model = ForecastModel(FAST, horizon=7).fit(demand, cutoff=cutoff)
    assert model.train_info["end"] == "2023-06-01"
    full = model.predict(demand, cutoff=cutoff)
    future_changed = demand.assign(y=np.where(demand["ds"] > cutoff, 1000.0, demand["y"]))
    pd.testing.assert_frame_equal(model.predict(future_changed, cutoff=cutoff), full)
    truncated = model.predict(demand[demand["ds"] <= cutoff], cutoff=cutoff)
    pd.testing.assert_frame_equal(truncated, full)


def test_training_features_use_nothing_after_their_origin() -> None:
    """Every feature of a row (s, o, h), a year back included, is the same when the panel
    ends at o: training rows never see the periods they are asked to forecast."""
    from nightcast.forecasting.features import HistoryStats
    from nightcast.forecasting.panel import build_panel, freq_spec

    df = make_demand(n_series=6, n_days=500, seed=4, sparse=False)
    spec = freq_spec("D")
    full = build_panel(df, spec, None, [], [], None)
    o_day = pd.Timestamp("2024-02-20")
    cut = build_panel(df, spec, o_day, [], [], None)
    o = int((o_day - full.start) / full.step)
    assert cut.n_periods == o + 1
    h = np.tile(np.arange(1, 29), full.n_series)
    s = np.repeat(np.arange(full.n_series), 28)
    oo = np.full(len(s), o)
    feats = []
    for panel in (full, cut):
        stats = HistoryStats(panel, spec)
        scale = stats.scale(s, oo)
        f = stats.origin_features(s, oo, scale)
        f.update(stats.seasonal_features(s, oo, oo + h, scale))
        feats.append(f)
    assert {"year_ago_level", "year_ago_7"} <= set(feats[0])
    assert np.isfinite(feats[0]["year_ago_7"]).all()  # a year of history: defined
    for name in feats[0]:
        np.testing.assert_array_equal(feats[0][name], feats[1][name], err_msg=name)


def test_sampled_training_rows_are_valid_distinct_and_spread_over_steps() -> None:
    """Daily training rows are drawn without listing every (origin, step): each has a
    known target, none twice, and every horizon step is about equally represented."""
    from nightcast.forecasting.design import training_rows

    df = make_demand(n_series=30, n_days=500, seed=9, sparse=False)
    spec = freq_spec("D")
    panel = build_panel(df, spec, None, [], [], None)
    s, o, rows = training_rows(panel, spec, 28, 52, None, 0, 0.5)
    again = training_rows(panel, spec, 28, 52, None, 0, 0.5)[2]
    np.testing.assert_array_equal(rows, again)  # deterministic for a seed
    assert len(rows) == int(len(s) * 0.5)
    assert len(np.unique(rows[:, 0] * 1000 + rows[:, 1])) == len(rows)
    t = o[rows[:, 0]] + rows[:, 1]
    assert (t < panel.n_periods).all() and not np.isnan(panel.y[s[rows[:, 0]], t]).any()
    counts = np.bincount(rows[:, 1], minlength=29)[1:]
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()


@pytest.mark.parametrize("freq,periods", [("D", 1100), ("W", 520)])
def test_statistics_from_a_late_start_give_the_same_features(freq: str, periods: int) -> None:
    """HistoryStats begun ``lookback`` periods before the earliest origin (the nightly
    forecast of a long history) give every feature the whole history gives: random
    panels with gaps, stock-out runs, late starts and series silent for years."""
    from nightcast.forecasting.features import HistoryStats, lookback
    from nightcast.forecasting.panel import Panel, freq_spec

    spec = freq_spec(freq)
    rng = np.random.default_rng(5)
    n = 60
    y = rng.poisson(rng.gamma(1.0, 3.0, size=(n, 1)), size=(n, periods)).astype(float)
    y[rng.random((n, periods)) < 0.1] = np.nan  # scattered stock-outs
    first = rng.integers(0, periods - 40, size=n)
    first[:5] = 0
    for i in range(n):
        y[i, : first[i]] = np.nan
    y[0, 50:] = np.nan  # known only long before the statistics' start
    y[1, 10:] = 0.0  # no sale since then
    y[2, :] = 0.0  # never sold
    panel = Panel(
        np.array([f"s{i}" for i in range(n)]),
        pd.Timestamp("2020-01-06"),
        spec.step,
        y,
        first,
        np.full(n, periods - 1),
    )
    earliest = periods - 30
    assert earliest - lookback(spec) > 0  # the late statistics do start later
    s = np.repeat(np.arange(n), 30)
    o = np.tile(np.arange(earliest, periods), n)
    h = rng.integers(1, 29, size=len(s))
    feats = []
    for stats in (HistoryStats(panel, spec), HistoryStats(panel, spec, earliest)):
        scale = stats.scale(s, o)
        f = stats.origin_features(s, o, scale)
        f.update(stats.seasonal_features(s, o, o + h, scale))
        f["last_known_period"] = stats.last_known_at(s, o).astype(float)
        feats.append(f)
    assert feats[1]["last_known_period"][0] == 49  # from before the start
    for name, full in feats[0].items():
        # EWMs forget their start to within float rounding; everything else is exact
        tol = 1e-12 if name.startswith("ewm") else 0
        np.testing.assert_allclose(feats[1][name], full, rtol=tol, atol=tol, err_msg=name)


def test_year_ratio_is_past_years_shape_over_their_level_and_never_looks_ahead() -> None:
    """Weekly ``year_ratio_5``: the target's week in each of the last 5 years over the
    8-week mean at the origin's week that year, averaged over the years known; a
    stock-out or a year before the history drops that year, and a target more than a
    year ahead does not read the weeks after its origin."""
    from nightcast.forecasting.panel import Panel

    spec = freq_spec("W")
    assert spec.year_ratios == 5
    rng = np.random.default_rng(3)
    n, periods = 4, 7 * 52
    y = rng.poisson(100 * (1 + 0.5 * np.sin(np.arange(periods) * 2 * np.pi / 52)), (n, periods))
    y = y.astype(float)
    y[1, : 3 * 52] = np.nan  # starts 3 years in: 4 years before its last origin
    y[2, 5 * 52 + 10] = np.nan  # a stock-out a year before one target
    start = pd.Timestamp("2018-01-01")

    def panel_to(end: int) -> Panel:
        first = np.where(np.isnan(y[:, :end]).all(axis=1), 0, np.argmax(~np.isnan(y), axis=1))
        return Panel(np.array(["a", "b", "c", "d"]), start, spec.step, y[:, :end], first,
                     np.full(n, end - 1))  # fmt: skip

    o = 6 * 52 + 5
    h = np.arange(1, 61)  # past a year ahead
    s = np.repeat(np.arange(n), len(h))
    oo = np.full(len(s), o)
    t = oo + np.tile(h, n)

    def by_hand(si: int, ti: int) -> float:
        ratios = []
        for k in range(1, 6):
            bt, bo = ti - 52 * k, o - 52 * k
            if bt > o or bo < 0:
                continue
            level = np.nanmean(y[si, bo - 7 : bo + 1])
            if not np.isnan(y[si, bt]) and level > 0:
                ratios.append(y[si, bt] / level)
        return float(np.mean(ratios)) if ratios else np.nan

    expected = np.array([by_hand(si, ti) for si, ti in zip(s, t, strict=True)])
    full = HistoryStats(panel_to(periods), spec).year_ratio(s, oo, t)
    np.testing.assert_allclose(full, expected, rtol=1e-12)
    # Series b has 3 past years at its origin, c skips the stock-out's year for one target.
    assert np.isfinite(full).all()
    # The features of the panel cut at the origin are the same: nothing after o is read.
    cut = HistoryStats(panel_to(o + 1), spec).year_ratio(s, oo, t)
    np.testing.assert_array_equal(cut, full)
