"""``ForecastModel``: a direct multi-horizon, multi-quantile LightGBM forecaster.

One global LightGBM model (the P50) is trained on rows ``(series, origin, h)``
with features computed at the origin only (see :mod:`.features`), the horizon
``h`` as a feature, and the target scaled by the series' recent mean. The last
``horizon`` periods of the training data are its validation window: the P50
objective and number of rounds are chosen on it (:mod:`.training`), and the
other quantiles are calibrated on its residuals (:mod:`.calibration`). The
design-matrix rows and features are built in :mod:`.design`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from nightcast.forecasting.calibration import LEVELS, Calibration, fit_calibration
from nightcast.forecasting.design import COUNTRY_COL as COUNTRY_COL
from nightcast.forecasting.design import (
    FeatureLayout,
    PredictionDesign,
    design_matrix,
    prediction_rows,
    training_rows,
    validation_rows,
)
from nightcast.forecasting.device import resolve_device
from nightcast.forecasting.features import HistoryStats
from nightcast.forecasting.panel import (
    DS,
    ID,
    Panel,
    Y,
    build_panel,
    freq_spec,
    resolve_columns,
    validate_frame,
)
from nightcast.forecasting.reference import reference_bins
from nightcast.forecasting.training import (
    BASES,
    BASES_BY_FREQ,
    CANDIDATES,
    MAX_BIAS,
    Trainer,
    TrainingSet,
    ValidationSet,
    base_values,
    select_and_train,
)
from nightcast.forecasting.training import quantile_name as _qname
from nightcast.storage import Location

log = logging.getLogger("nightcast.forecasting")

DEFAULT_PARAMS: dict[str, Any] = {
    # 0.05 rather than LightGBM's 0.1: early stopping on the validation windows often
    # stops within a few dozen rounds, and a smaller step stops nearer the best point
    # (WAPE 0.5-2.5% lower on all six sets of bench/accuracy_suite.py over 3 seeds, for
    # 30-40% more rounds).
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    # The most rounds: fewer are chosen by early stopping on the validation windows
    # unless ``num_iterations`` is set explicitly.
    "num_iterations": 500,
    "max_cat_to_onehot": 8,
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "verbosity": -1,
    "device_type": "cpu",
}
# 'auto' chooses among the training candidates on the validation windows (see
# nightcast.forecasting.training); the others fix the P50 objective.
OBJECTIVES = ("auto", "l2", "tweedie", "quantile", "l1")
# Training rows per (series, origin) pair, on average. Every period of the last
# ``max_origins`` weeks is an origin (daily and weekly data alike), and each origin's
# horizon steps share all features but the step and the target's calendar: a few
# random steps per origin carry nearly all the information at a fraction of the
# cost (daily: 52 weeks x 7 origins x 0.5 = 182 rows per series).
ROWS_PER_PAIR: dict[str, float | None] = {"D": 0.5, "W": 1.0}
# Calendar features whose values cycle once a year: only used when the training
# targets span a whole year before the forecast, so no value in the forecast window
# is unseen in training (trees extrapolate an unseen month as the nearest seen one).
YEARLY_CALENDAR = ("month", "week_of_year", "weeks_to_xmas")
# Validation windows of ``horizon`` periods at the end of the training data, forecast
# by one twin trained before the first: the second is forecast by a model one horizon
# older, as a weekly-retrained model is late in its week, so the intervals calibrated
# on both cover that staleness and one window's shocks do not decide alone.
VALID_WINDOWS = 2
MIN_FIT_ROWS = 100
# A candidate boosting from a feature is offered when the feature is known on at least
# this share of the training rows (see ForecastModel._candidates).
MIN_BASE_KNOWN = 0.5
# Training rows weigh their series' scale (capped at this quantile): the loss on
# demand / scale then counts units, as WAPE does, instead of letting the ratios of
# many small, lumpy series outweigh the few that make most of the volume.
WEIGHT_CAP_Q = 0.99


def _weights(scale: np.ndarray) -> np.ndarray:
    return np.minimum(scale, np.quantile(scale, WEIGHT_CAP_Q))


class ForecastModel:
    """Direct multi-horizon quantile forecaster over long-format data.

    ``params`` are LightGBM parameters merged over :data:`DEFAULT_PARAMS`
    (``device`` may be 'cpu', 'gpu', 'cuda' or 'auto'; ``num_iterations`` set
    here fixes the number of boosting rounds, else early stopping chooses it).
    ``objective`` is the P50 objective ('auto': chosen on the validation
    windows); the other quantiles are calibrated around the P50 on those
    windows' residuals (:mod:`.calibration`). Training origins are every period
    of the last ``max_origins`` weeks (daily data) or weeks (weekly), with a few
    horizon steps each (:data:`ROWS_PER_PAIR`), and at most ``max_train_rows``
    rows are sampled (deterministically) for training.
    ``trainer`` trains the final booster instead of ``lgb.train`` (see
    :data:`Trainer`; e.g. a Dask cluster): the winner is then refitted on every
    row rather than continued.
    """

    def __init__(
        self,
        params: dict[str, Any] | None = None,
        horizon: int = 28,
        freq: str = "D",
        quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
        objective: str = "auto",
        max_origins: int = 52,
        max_train_rows: int | None = 1_000_000,
        trainer: Trainer | None = None,
    ) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective={objective!r} is not one of {OBJECTIVES}")
        if not quantiles or any(not 0 < q < 1 for q in quantiles):
            raise ValueError(f"quantiles must be in (0, 1), got {quantiles}")
        if not any(abs(q - 0.5) < 1e-9 for q in quantiles):
            raise ValueError(f"quantiles must include 0.5 (the P50), got {quantiles}")
        self.spec = freq_spec(freq)
        merged = {**DEFAULT_PARAMS, **(params or {})}
        if "device" in merged:
            merged["device_type"] = merged.pop("device")
        self._params = merged
        self._user_params = set(params or {})
        self.horizon = int(horizon)
        self.freq = freq
        self.quantiles = tuple(sorted(float(q) for q in quantiles))
        self.objective = objective
        self.max_origins = int(max_origins)
        self.max_train_rows = max_train_rows
        self.trainer: Trainer | None = trainer
        self.boosters: dict[str, lgb.Booster] = {}
        self.static_cols: list[str] = []
        self.exog_cols: list[str] = []
        self.stockout_col: str | None = "is_stockout"
        self.categories: dict[str, list[str]] = {}
        # Calendar features used (None = all), chosen from the training data at fit.
        self.calendar: tuple[str, ...] | None = None
        self._features: list[str] = []
        self._train_info: dict[str, Any] = {}
        self.metrics: dict[str, Any] = {}
        # Training feature distribution (nightcast.monitoring.drift); None for old artifacts.
        self.reference_bins: dict[str, Any] | None = None
        # Quantiles around the P50 (None: an artifact with one booster per quantile).
        self.calibration: Calibration | None = None
        # The feature the P50 booster's output is added to (training.BASES), or None.
        self.p50_base: str | None = None

    # ------------------------------------------------------------------ properties
    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def feature_names(self) -> list[str]:
        return list(self._features)

    @property
    def train_info(self) -> dict[str, Any]:
        return dict(self._train_info)

    @property
    def quantile_names(self) -> list[str]:
        return [_qname(q) for q in self.quantiles]

    def _calendar_for(self, panel: Panel, origins: np.ndarray) -> tuple[str, ...] | None:
        """Calendar features (None = all): yearly ones only with a year of training targets."""
        span = (panel.n_periods - 1 - int(origins.min())) * self.spec.step
        if span >= pd.Timedelta(days=365):
            return None
        names = ("day_of_week", "day_of_month") if self.spec.daily else ()
        return tuple(n for n in names if n not in YEARLY_CALENDAR)

    def clone(self) -> ForecastModel:
        """An unfitted copy with the same settings."""
        twin = ForecastModel(
            params=self._params,
            horizon=self.horizon,
            freq=self.freq,
            quantiles=self.quantiles,
            objective=self.objective,
            max_origins=self.max_origins,
            max_train_rows=self.max_train_rows,
            trainer=self.trainer,
        )
        twin._user_params = set(self._user_params)
        return twin

    # ------------------------------------------------------------------ design matrix
    def _layout(self) -> FeatureLayout:
        return FeatureLayout(
            spec=self.spec,
            horizon=self.horizon,
            calendar=self.calendar,
            exog_cols=self.exog_cols,
            static_cols=self.static_cols,
            categories=self.categories,
        )

    def _design(
        self, panel: Panel, stats: HistoryStats, s: np.ndarray, o: np.ndarray, h: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Feature matrix (float32, columns = ``feature_names``) and per-row scale.

        ``s``/``o`` are per unique (series, origin) pair; ``h`` is a list of
        ``(pair index, horizon)`` rows as a ``[N, 2]`` int array. An unfitted
        model (no ``feature_names`` yet) takes every feature, in build order.
        """
        x, scale, self._features = design_matrix(
            self._layout(), panel, stats, (s, o), h, self._features
        )
        return x, scale

    def _training_rows(self, panel: Panel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(series, origin) pairs and sampled ``(pair, h)`` rows with a known target."""
        seed = int(self._params.get("seed", 0))
        return training_rows(
            panel,
            self.spec,
            self.horizon,
            self.max_origins,
            self.max_train_rows,
            seed,
            ROWS_PER_PAIR[self.spec.name],
        )

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        df: pd.DataFrame,
        static_cols: list[str] | None = None,
        exog_cols: list[str] | None = None,
        cutoff: pd.Timestamp | str | None = None,
        stockout_col: str | None = "is_stockout",
    ) -> ForecastModel:
        """Train on the rows of ``df`` at or before ``cutoff`` (default: its last date).

        Missing periods between a series' first row and the cutoff are zero demand.

        ``static_cols`` default to the non-numeric extra columns (categoricals),
        ``exog_cols`` to the numeric ones (future-known, e.g. ``on_promo``).
        ``stockout_col`` marks censored periods (excluded from targets and lags).
        """
        t0 = time.perf_counter()
        validate_frame(df, (ID, DS, Y), unique_keys=False)
        self.stockout_col = stockout_col
        self.static_cols, self.exog_cols = resolve_columns(
            df, static_cols, exog_cols, {ID, DS, Y, stockout_col}
        )
        cut = pd.Timestamp(cutoff) if cutoff is not None else pd.Timestamp(df[DS].max())
        panel = build_panel(df, self.spec, cut, self.static_cols, self.exog_cols, stockout_col)
        self.categories = {
            c: sorted(panel.statics[c].dropna().astype(str).unique()) for c in self.static_cols
        }
        s, o, rows = self._training_rows(panel)
        # (validation windows start after the earliest training origin)
        stats = HistoryStats(panel, self.spec, int(o.min()))
        self.calendar = self._calendar_for(panel, o)
        self._features = []
        x, scale = self._design(panel, stats, s, o, rows)
        self.reference_bins = reference_bins(x, self._features, self.static_cols)
        target = panel.y[s[rows[:, 0]], o[rows[:, 0]] + rows[:, 1]] / scale
        data = TrainingSet(x, target, scale, self._features, self.static_cols, _weights(scale))
        fit_rows, valid, vh, vdisp, vwin, cuts = self._validation(panel, stats, s, o, rows)
        selection = select_and_train(
            data,
            fit_rows,
            valid,
            self._train_params(),
            self._candidates(target, x),
            "num_iterations" not in self._user_params,
            self.trainer,
        )
        self.boosters = {_qname(0.5): selection.booster}
        self.p50_base = selection.base
        if valid is not None and selection.valid_p50 is not None:
            days = ", ".join(str(d.date()) for d in panel.dates(np.asarray(cuts)))
            source = f"validation windows after {days}"
            y_c, p_c, sc_c, h_c, d_c = valid.y, selection.valid_p50, valid.scale, vh, vdisp
            w_c = vwin
        else:  # too little history for a validation window: in-sample residuals (narrower)
            source = "in-sample residuals (no validation window)"
            y_c, p_c, sc_c = (
                target * scale,
                np.maximum(self.p50_ratio(x), 0.0) * scale,
                scale,
            )
            h_c, d_c, w_c = rows[:, 1], self.dispersion(x), np.zeros(len(rows))
        self.calibration, calibrated = fit_calibration(
            y_c,
            p_c,
            sc_c,
            h_c,
            d_c,
            self.horizon,
            self.quantiles,
            source,
            w_c,
            MAX_BIAS,
            # in-sample residuals say nothing of a level the model trails
            LEVELS if selection.valid_p50 is not None else (1.0,),
        )
        selection.info["calibration"] = calibrated
        dates = panel.dates(np.array([0, panel.n_periods - 1]))
        self._train_info = {
            "rows": int((df[DS] <= cut).sum()),
            "series": panel.n_series,
            "start": str(dates[0].date()),
            "end": str(dates[1].date()),
            "train_rows": len(target),
            "origins": len(np.unique(o)),
            "selection": selection.info,
            "calibration": {"rows": self.calibration.rows, "source": self.calibration.source},
            "fit_seconds": round(time.perf_counter() - t0, 3),
        }
        log.info(
            "fit: %d rows, %d series, %d training rows, %.2fs",
            self._train_info["rows"],
            panel.n_series,
            len(target),
            self._train_info["fit_seconds"],
        )
        return self

    def _train_params(self) -> dict[str, Any]:
        """LightGBM parameters for training, on the device resolved for this machine."""
        params = dict(self._params)
        params["device_type"] = resolve_device(str(params.get("device_type", "cpu")))
        return params

    def _candidates(self, target: np.ndarray, x: np.ndarray) -> list[str]:
        """P50 objectives to choose from: the set one, or every candidate for 'auto'.

        A candidate with a base (training.BASES, by frequency) is offered where its
        feature is known on at least half the training rows ``x``: elsewhere it
        would mostly start from the average, as the plain candidate does.
        """
        if self.objective != "auto":
            return [self.objective]
        names = list(CANDIDATES)
        if np.nanmin(target) < 0:  # Tweedie needs non-negative targets (returns net of sales)
            names.remove("tweedie")
        for name in BASES_BY_FREQ[self.spec.name]:
            feature = BASES[name]
            j = self._features.index(feature) if feature in self._features else None
            if j is not None and np.isfinite(x[:, j]).mean() >= MIN_BASE_KNOWN:
                names.append(name)
        return names

    def p50_ratio(self, x: np.ndarray) -> np.ndarray:
        """The P50 booster's forecast over the scale for design rows ``x``, its base included."""
        raw = np.asarray(self.boosters[_qname(0.5)].predict(x), dtype=np.float64)
        return raw + base_values(x, self._features, self.p50_base)

    def dispersion(self, x: np.ndarray) -> np.ndarray:
        """Each row's recent coefficient of variation (the calibration's bins)."""
        return x[:, self._features.index(f"std_{self.spec.scale_window}")].astype(np.float64)

    def _validation(
        self, panel: Panel, stats: HistoryStats, s: np.ndarray, o: np.ndarray, rows: np.ndarray
    ) -> tuple[
        np.ndarray | None, ValidationSet | None, np.ndarray, np.ndarray, np.ndarray, list[int]
    ]:
        """The last ``VALID_WINDOWS`` x ``horizon`` periods as validation windows.

        Returns the training rows whose targets fall before the first window (what
        the candidates train on), every series' rows forecast from each window's
        origin, their steps, dispersion and window (origin period), and the windows'
        origin periods. Fewer
        windows when the history is short; none (all None) when it is too short.
        """
        last = panel.n_periods - 1
        empty = np.zeros(0)
        for n in range(VALID_WINDOWS, 0, -1):
            cuts = [last - self.horizon * k for k in range(n, 0, -1)]
            if cuts[0] < self.spec.scale_window:
                continue
            fit_rows = np.flatnonzero(o[rows[:, 0]] + rows[:, 1] <= cuts[0])
            vs, vo, vrows = validation_rows(panel, self.spec, self.horizon, cuts)
            if len(fit_rows) < MIN_FIT_ROWS or len(vrows) < 1:
                continue
            vx, vscale = self._design(panel, stats, vs, vo, vrows)
            vy = panel.y[vs[vrows[:, 0]], vo[vrows[:, 0]] + vrows[:, 1]]
            valid = ValidationSet(vx, vy, vscale)
            window = vo[vrows[:, 0]]
            return fit_rows, valid, vrows[:, 1], self.dispersion(vx), window, cuts
        return None, None, empty, empty, empty, []

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        df_history: pd.DataFrame,
        future_df: pd.DataFrame | None = None,
        cutoff: pd.Timestamp | str | None = None,
    ) -> pd.DataFrame:
        """Forecast the ``horizon`` periods after each series' last date (or ``cutoff``).

        Returns ``unique_id, ds, horizon, p10, p50, p90`` (one column per
        quantile), non-negative and non-crossing.
        """
        t0 = time.perf_counter()
        design = self.prediction_design(df_history, future_df, cutoff)
        x, scale = design.x, design.scale
        if self.calibration is None:  # an artifact with one booster per quantile
            preds = np.column_stack([self.boosters[n].predict(x) for n in self.quantile_names])
            preds *= scale[:, None]
        else:
            p50 = np.maximum(self.p50_ratio(x) * scale, 0.0)
            cal = self.calibration.quantiles(p50, scale, design.horizon, self.dispersion(x))
            preds = np.column_stack([cal[n] for n in self.quantile_names])
        preds = np.sort(np.maximum(preds, 0.0), axis=1)
        out = pd.DataFrame({ID: design.ids, DS: design.dates, "horizon": design.horizon})
        for j, name in enumerate(self.quantile_names):
            out[name] = preds[:, j]
        log.info(
            "predict: %d rows, %d series, %.2fs",
            len(df_history),
            len(design.ids) // self.horizon,
            time.perf_counter() - t0,
        )
        return out

    def prediction_design(
        self,
        df_history: pd.DataFrame,
        future_df: pd.DataFrame | None = None,
        cutoff: pd.Timestamp | str | None = None,
    ) -> PredictionDesign:
        """The exact feature matrix :meth:`predict` feeds the boosters (for explanations).

        One row per series and horizon step; booster output times ``scale`` is the
        forecast in units, before clipping at zero and sorting the quantiles.
        """
        if not self.boosters:
            raise ValueError("model is not fitted: call fit() or ForecastModel.load() first")
        validate_frame(df_history, (ID, DS, Y), name="df_history", unique_keys=False)
        for c in self.static_cols:
            if c not in df_history.columns:
                raise ValueError(f"df_history is missing static column {c!r} used by the model")
        if self.exog_cols and future_df is None:
            raise ValueError(
                f"future_df is required: the model uses future column(s) {self.exog_cols}"
            )
        missing = [c for c in self.exog_cols if c not in df_history.columns]
        hist = df_history.assign(**{c: 0.0 for c in missing}) if missing else df_history
        cut = pd.Timestamp(cutoff) if cutoff is not None else None
        panel = build_panel(
            hist,
            self.spec,
            cutoff=cut,
            static_cols=self.static_cols,
            exog_cols=self.exog_cols,
            stockout_col=self.stockout_col,
            future=(future_df, self.horizon),
            name="df_history",
        )
        s, o, rows = prediction_rows(panel, self.horizon)
        stats = HistoryStats(panel, self.spec, int(o.min()))
        x, scale = self._design(panel, stats, s, o, rows)
        return PredictionDesign(
            ids=panel.ids[rows[:, 0]],
            dates=panel.dates(o[rows[:, 0]] + rows[:, 1]),
            horizon=rows[:, 1],
            x=x,
            scale=scale,
        )

    # ------------------------------------------------------------------ backtest
    def backtest(
        self,
        df: pd.DataFrame,
        windows: int = 3,
        step: int | None = None,
        static_cols: list[str] | None = None,
        exog_cols: list[str] | None = None,
    ) -> pd.DataFrame:
        """Rolling-origin backtest; see :func:`nightcast.forecasting.backtest.backtest`."""
        from nightcast.forecasting.backtest import backtest

        return backtest(self, df, windows, step, (static_cols, exog_cols))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path | Location) -> Location:
        """Write ``model.json`` and one ``booster_<q>.txt`` (LightGBM text) per booster.

        ``path``: a local folder or ``s3://bucket/prefix`` (:mod:`nightcast.storage`).
        """
        from nightcast.forecasting.persistence import save_model

        return save_model(self, path)

    @classmethod
    def load(cls, path: str | Path | Location) -> ForecastModel:
        """Restore a model written by :meth:`save`; it predicts identically."""
        from nightcast.forecasting.persistence import load_model

        return load_model(path)
