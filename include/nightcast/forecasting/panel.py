"""Long-format input validation and the dense ``[series x periods]`` panel.

Every series becomes one row of a float matrix indexed by period. Missing periods
between a series' first observation and its end (its last date, or the cutoff)
are zero demand; periods before the first observation, after the end, and
stock-out periods (censored demand) are ``NaN`` so that neither training
targets nor lag features see them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pandas.arrays import DatetimeArray

ID, DS, Y = "unique_id", "ds", "y"


@dataclass(frozen=True)
class FreqSpec:
    """Everything that depends on the frequency (daily or weekly)."""

    name: str
    step: pd.Timedelta
    season: int
    windows: tuple[int, ...]
    seasonal_ks: tuple[int, ...]
    scale_window: int
    zero_window: int
    origin_step: int
    ma_window: int
    daily: bool
    # A year back, in whole seasons (364 days keeps the weekday), and the windows
    # of the "same time last year" features around the target (none for weekly,
    # where the 52-weeks-back seasonal mean is that feature already).
    year: int = 364
    year_windows: tuple[int, ...] = (7,)
    # Years averaged in the "same period in past years over the level then" feature
    # (0: none; daily data has year_ago_7 and the year_ago_level instead). Weekly: up
    # to 5, the span of X-11's default 3x3 seasonal filter: one week's noise averages
    # out over the years a long series has (births_weekly: 3 years 0.0314, 5 years
    # 0.0292; the other weekly sets have one year).
    year_ratios: int = 0


def freq_spec(freq: str) -> FreqSpec:
    """Return the feature settings for ``freq`` ('D' or 'W', 'W-SUN' style accepted)."""
    key = freq.upper()
    if key == "D":
        return FreqSpec(
            "D", pd.Timedelta(days=1), 7, (7, 14, 28, 56), (1, 4, 8), 28, 28, 7, 28, True
        )
    if key == "W" or key.startswith("W-"):
        # Scale = mean of the last 8 weeks: 4 is too noisy for lumpy weekly item demand.
        return FreqSpec(
            "W", pd.Timedelta(days=7), 52, (4, 8, 13, 26), (1, 2), 8, 8, 1, 4, False, 52, (), 5
        )
    raise ValueError(f"freq={freq!r} is not supported: use 'D' (daily) or 'W' (weekly)")


def validate_frame(
    df: pd.DataFrame, required: tuple[str, ...], name: str = "df", unique_keys: bool = True
) -> None:
    """Raise a clear ``ValueError`` for frames the engine cannot use.

    ``unique_keys=False`` leaves the duplicated-key check to :func:`build_panel`,
    which makes it on the grid it builds anyway (a tenth of the time at 10M rows).
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{name} is missing required column(s) {missing}; has {list(df.columns)}")
    if len(df) == 0:
        raise ValueError(f"{name} is empty")
    if not pd.api.types.is_datetime64_any_dtype(df[DS]):
        raise ValueError(f"{name} column 'ds' must be datetime64, got dtype {df[DS].dtype}")
    if df[DS].isna().any():
        raise ValueError(f"{name} column 'ds' has {int(df[DS].isna().sum())} missing value(s)")
    if df[ID].isna().any():
        raise ValueError(
            f"{name} column 'unique_id' has {int(df[ID].isna().sum())} missing value(s)"
        )
    if Y in required and not (
        pd.api.types.is_numeric_dtype(df[Y]) and not pd.api.types.is_bool_dtype(df[Y])
    ):
        bad = df[Y][pd.to_numeric(df[Y], errors="coerce").isna() & df[Y].notna()]
        example = f" (e.g. {bad.iloc[0]!r})" if len(bad) else ""
        raise ValueError(f"{name} column 'y' must be numeric, got dtype {df[Y].dtype}{example}")
    if unique_keys:
        dup = df.duplicated([ID, DS]).to_numpy()
        if dup.any():
            _raise_duplicated(df, dup, name)


def _raise_duplicated(df: pd.DataFrame, dup: np.ndarray, name: str) -> None:
    """``dup`` flags every row whose (unique_id, ds) key an earlier row already has."""
    row = df.iloc[int(np.flatnonzero(dup)[0])]
    raise ValueError(
        f"{name} has {int(dup.sum())} duplicated (unique_id, ds) key(s), "
        f"e.g. ({row[ID]!r}, {pd.Timestamp(row[DS]).date()})"
    )


def _check_unique_keys(
    df: pd.DataFrame, codes: np.ndarray, t: np.ndarray, shape: tuple[int, int], name: str
) -> None:
    """Raise when two rows share a grid cell (series code, period).

    Each row writes its position into its cell; a row that reads back another
    row's position shares its cell with a later row. Linear in the rows, where
    ``DataFrame.duplicated`` hashes every string key.
    """
    n = len(codes)
    position = np.full(shape, -1, dtype=np.int32 if n < 2**31 else np.int64)
    position[codes, t] = np.arange(n)
    dup = position[codes, t] != np.arange(n)
    if dup.any():
        # Report the rows DataFrame.duplicated would (every occurrence after the first).
        _raise_duplicated(df, df.duplicated([ID, DS]).to_numpy(), name)


def resolve_columns(
    df: pd.DataFrame,
    static_cols: list[str] | None,
    exog_cols: list[str] | None,
    reserved: set[str | None],
) -> tuple[list[str], list[str]]:
    """Static (categorical) and future-known exogenous columns.

    Defaults: non-numeric extra columns are static, numeric ones exogenous.
    """
    extra = [c for c in df.columns if c not in reserved]
    if static_cols is None:
        static_cols = [c for c in extra if not pd.api.types.is_numeric_dtype(df[c])]
    if exog_cols is None:
        exog_cols = [
            c for c in extra if c not in static_cols and pd.api.types.is_numeric_dtype(df[c])
        ]
    for c in [*static_cols, *exog_cols]:
        if c not in df.columns:
            raise ValueError(f"df is missing column {c!r} named in static_cols/exog_cols")
        if c in (ID, DS, Y):
            raise ValueError(f"column {c!r} cannot be used as a feature column")
    for c in exog_cols:
        if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
            raise ValueError(f"exogenous column {c!r} must be numeric, got dtype {df[c].dtype}")
    return list(static_cols), list(exog_cols)


def encode_categories(values: pd.Series, categories: list[str]) -> np.ndarray:
    """Codes of ``values`` in the stored ``categories``; unknown -> NaN."""
    codes = pd.Categorical(values.astype("string"), categories=categories).codes
    out = codes.astype(np.float64)
    out[codes < 0] = np.nan
    return out


@dataclass
class Panel:
    """Dense history of all series on a common period grid."""

    ids: np.ndarray
    start: pd.Timestamp
    step: pd.Timedelta
    y: np.ndarray  # float64 [S, T]; NaN = unknown / censored
    first: np.ndarray  # int64 [S] index of the first observation
    last: np.ndarray  # int64 [S] index of the series' end (forecast origin)
    exog: dict[str, np.ndarray] = field(default_factory=dict)  # float64 [S, T + extra]
    statics: dict[str, pd.Series] = field(default_factory=dict)  # per series, by position
    stockout: np.ndarray | None = None  # bool [S, T]

    @property
    def n_series(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_periods(self) -> int:
        return int(self.y.shape[1])

    def dates(self, idx: np.ndarray | int) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.start + np.asarray(idx, dtype=np.int64) * self.step)


_NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _numeric(col: pd.Series) -> pd.Series:
    """``col`` as numbers (raising on text that is not); numeric columns as they are."""
    return col if pd.api.types.is_numeric_dtype(col) else pd.to_numeric(col, errors="raise")


def _period_index(ds: pd.Series, start: pd.Timestamp, step: pd.Timedelta, name: str) -> np.ndarray:
    # On the integers of the column's own unit (UTC when time-zone aware), without a
    # timedelta Series or a unit conversion: a third of the time at 10M rows.
    values = ds.array if isinstance(ds.array, DatetimeArray) else pd.DatetimeIndex(ds).array
    if str(values.tz) != str(start.tz):  # (integers of two time zones do not compare)
        raise ValueError(
            f"{name} column 'ds' is in time zone {values.tz or 'none'} but the grid starting "
            f"{start} is in {start.tz or 'none'}: give both the same time zone"
        )
    per = _NS_PER_UNIT[values.unit]
    delta = values.asi8 - start.value // per
    step_u = int(step.value) // per
    idx = delta // step_u  # (np.divmod on int64 is 20x slower than // and a product)
    off_grid = idx * step_u != delta
    if off_grid.any():
        bad = ds[off_grid].iloc[0]
        raise ValueError(
            f"{name} column 'ds' is not on a regular {step} grid starting {start.date()}: "
            f"e.g. {pd.Timestamp(bad)}"
        )
    return idx


def build_panel(
    df: pd.DataFrame,
    spec: FreqSpec,
    cutoff: pd.Timestamp | None,
    static_cols: list[str],
    exog_cols: list[str],
    stockout_col: str | None,
    future: tuple[pd.DataFrame | None, int] = (None, 0),
    name: str = "df",
) -> Panel:
    """Pivot ``df`` into a :class:`Panel`; ``future`` = (future_df, horizon) for exogenous values.

    Raises ``ValueError`` naming ``name`` when two rows at or before the cutoff
    share a (unique_id, ds) key.
    """
    future_df, extra = future
    if cutoff is not None and not (df[DS] <= cutoff).all():  # (no copy when all are in)
        df = df[df[DS] <= cutoff]
        if len(df) == 0:
            raise ValueError(f"no rows at or before cutoff {cutoff.date()}")
    raw_codes, uniques = pd.factorize(df[ID], sort=False)
    names = np.asarray(uniques.astype(str), dtype=object)
    order = np.argsort(names, kind="stable")
    ids = names[order]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    codes = rank[raw_codes]
    start = pd.Timestamp(df[DS].min())
    end = pd.Timestamp(cutoff) if cutoff is not None else pd.Timestamp(df[DS].max())
    t = _period_index(df[DS], start, spec.step, "df")
    n_t = int(_period_index(pd.Series([end]), start, spec.step, "cutoff")[0]) + 1
    s_n = len(ids)
    first = np.full(s_n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, codes, t)
    t_max = np.full(s_n, -1, dtype=np.int64)
    np.maximum.at(t_max, codes, t)
    last = np.full(s_n, n_t - 1, dtype=np.int64) if cutoff is not None else t_max
    grid = np.arange(n_t)
    _check_unique_keys(df, codes, t, (s_n, n_t), name)
    live = (grid[None, :] >= first[:, None]) & (grid[None, :] <= last[:, None])
    y = np.where(live, 0.0, np.nan)
    y[codes, t] = df[Y].to_numpy(dtype=np.float64, na_value=np.nan)
    stockout = None
    if stockout_col is not None and stockout_col in df.columns:
        flag = df[stockout_col].fillna(0).to_numpy(dtype=np.float64) > 0
        stockout = np.zeros((s_n, n_t), dtype=bool)
        stockout[codes[flag], t[flag]] = True
        y[stockout] = np.nan
    panel = Panel(ids, start, spec.step, y, first, last, stockout=stockout)
    for col in exog_cols:
        mat = np.zeros((s_n, n_t + extra), dtype=np.float64)
        mat[codes, t] = _numeric(df[col]).fillna(0).to_numpy(np.float64)
        panel.exog[col] = mat
    if future_df is not None and exog_cols:
        _fill_future(panel, future_df, exog_cols, n_t + extra)
    if static_cols:
        # Static attributes: the last value seen per series (they should not vary).
        # (t is unique within a series, so the last row is where t == its max.)
        at_last = np.flatnonzero(t == t_max[codes])
        pos = np.empty(s_n, dtype=np.int64)
        pos[codes[at_last]] = at_last
        for col in static_cols:
            panel.statics[col] = df[col].iloc[pos].reset_index(drop=True)
    return panel


def _fill_future(panel: Panel, future_df: pd.DataFrame, exog_cols: list[str], n_total: int) -> None:
    validate_frame(future_df, (ID, DS, *exog_cols), name="future_df")
    pos = pd.Index(panel.ids).get_indexer(future_df[ID].astype(str))
    t = _period_index(future_df[DS], panel.start, panel.step, "future_df")
    keep = (pos >= 0) & (t >= 0) & (t < n_total)
    for col in exog_cols:
        vals = _numeric(future_df[col]).fillna(0).to_numpy(np.float64)
        panel.exog[col][pos[keep], t[keep]] = vals[keep]


def calendar(start: pd.Timestamp, step: pd.Timedelta, n: int, daily: bool) -> dict[str, np.ndarray]:
    """Calendar features for periods ``0..n-1``."""
    dates = pd.DatetimeIndex(start + np.arange(n) * step)
    cal: dict[str, np.ndarray] = {
        "month": dates.month.to_numpy(np.float64),
        "week_of_year": dates.isocalendar().week.to_numpy(np.float64),
    }
    if daily:
        cal["day_of_week"] = dates.dayofweek.to_numpy(np.float64)
        cal["day_of_month"] = dates.day.to_numpy(np.float64)
    else:
        # Weeks until the next Christmas (0 = the week that contains Dec 25).
        xmas = pd.DatetimeIndex([pd.Timestamp(y, 12, 25) for y in dates.year])
        nxt = pd.DatetimeIndex([pd.Timestamp(y + 1, 12, 25) for y in dates.year])
        target = xmas.where(dates <= xmas, nxt)
        cal["weeks_to_xmas"] = np.floor((target - dates).days.to_numpy() / 7).astype(np.float64)
    return cal


_HOLIDAY_CACHE: dict[tuple[str, int, int], frozenset[Any]] = {}


def _holiday_dates(country: str, y0: int, y1: int) -> frozenset[Any]:
    key = (country, y0, y1)
    if key not in _HOLIDAY_CACHE:
        import holidays

        try:
            hol = holidays.country_holidays(country, years=range(y0, y1 + 1))
            _HOLIDAY_CACHE[key] = frozenset(hol.keys())
        except (NotImplementedError, KeyError, AttributeError):
            _HOLIDAY_CACHE[key] = frozenset()
    return _HOLIDAY_CACHE[key]


def holiday_matrix(
    countries: list[str], start: pd.Timestamp, step: pd.Timedelta, n: int
) -> np.ndarray:
    """``[len(countries), n]`` number of public holidays in each period (0/1 for daily)."""
    dates = pd.DatetimeIndex(start + np.arange(n) * step)
    span = max(1, int(step / pd.Timedelta(days=1)))
    out = np.zeros((len(countries), n), dtype=np.float64)
    y0, y1 = int(dates.min().year), int((dates.max() + pd.Timedelta(days=span)).year)
    for i, country in enumerate(countries):
        hol = _holiday_dates(str(country), y0, y1)
        if not hol:
            continue
        for off in range(span):
            days = (dates + pd.Timedelta(days=off)).date
            out[i] += np.fromiter((d in hol for d in days), dtype=bool, count=n)
    return out
