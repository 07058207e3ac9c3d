"""Save / load a :class:`~nightcast.forecasting.model.ForecastModel` as a directory.

Layout: ``model.json`` (settings, features, categories, training window,
metrics, the quantile calibration) plus one ``booster_<quantile>.txt`` per
booster in LightGBM's text format (``Booster.save_model``), which round-trips
predictions exactly: ``booster_p50.txt``, or one per quantile in artifacts saved
before the quantiles were calibrated around the P50 (still loaded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import lightgbm as lgb

if TYPE_CHECKING:
    from nightcast.forecasting.model import ForecastModel

FORMAT_VERSION = 1
META_FILE = "model.json"


def save_model(model: ForecastModel, root: Path) -> Path:
    if not model.boosters:
        raise ValueError("model is not fitted: nothing to save")
    root.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "params": model.params,
        "horizon": model.horizon,
        "freq": model.freq,
        "quantiles": list(model.quantiles),
        "objective": model.objective,
        "max_origins": model.max_origins,
        "max_train_rows": model.max_train_rows,
        "features": model.feature_names,
        "static_cols": model.static_cols,
        "exog_cols": model.exog_cols,
        "stockout_col": model.stockout_col,
        "categories": model.categories,
        "calendar": None if model.calendar is None else list(model.calendar),
        "train_info": model.train_info,
        "metrics": model.metrics,
        "boosters": {name: f"booster_{name}.txt" for name in model.boosters},
        "reference_bins": model.reference_bins,
        "calibration": None if model.calibration is None else model.calibration.to_json(),
    }
    for name, booster in model.boosters.items():
        booster.save_model(str(root / f"booster_{name}.txt"))
    (root / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return root


def load_model(root: Path) -> ForecastModel:
    from nightcast.forecasting.calibration import Calibration
    from nightcast.forecasting.model import ForecastModel

    meta_path = root / META_FILE
    if not meta_path.exists():
        raise ValueError(f"{root} is not a saved ForecastModel (no {META_FILE})")
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported model format_version {meta.get('format_version')!r}")
    model = ForecastModel(
        meta["params"],
        meta["horizon"],
        meta["freq"],
        tuple(meta["quantiles"]),
        meta["objective"],
        meta["max_origins"],
        meta["max_train_rows"],
    )
    model._features = list(meta["features"])
    model.static_cols = list(meta["static_cols"])
    model.exog_cols = list(meta["exog_cols"])
    model.stockout_col = meta["stockout_col"]
    model.categories = {k: list(v) for k, v in meta["categories"].items()}
    if "calendar" in meta:
        model.calendar = None if meta["calendar"] is None else tuple(meta["calendar"])
    else:  # saved before the calendar was chosen from the data: the fixed recipes
        model.calendar = None if model.spec.daily else ()
    model._train_info = dict(meta["train_info"])
    model.metrics = dict(meta["metrics"])
    # Absent in artifacts saved before drift monitoring (nightcast.monitoring.drift).
    model.reference_bins = meta.get("reference_bins")
    # Absent in artifacts with one booster per quantile (before calibrated quantiles).
    cal = meta.get("calibration")
    model.calibration = None if cal is None else Calibration.from_json(cal)
    model.boosters = {
        name: lgb.Booster(model_file=str(root / fname)) for name, fname in meta["boosters"].items()
    }
    return model
