"""Save / load a :class:`~nightcast.forecasting.model.ForecastModel` as a folder.

Layout: ``model.json`` (settings, features, categories, training window,
metrics, the quantile calibration) plus one ``booster_<quantile>.txt`` per
booster in LightGBM's text format, which round-trips predictions exactly:
``booster_p50.txt``, or one per quantile in artifacts saved before the
quantiles were calibrated around the P50 (still loaded).

The folder is a :class:`~nightcast.storage.Location`: a local path or
``s3://bucket/prefix``. ``model.json`` is written last, so a folder without it
is an artifact whose writer did not finish (never loaded as a model).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import lightgbm as lgb

from nightcast.storage import Location, location

if TYPE_CHECKING:
    from nightcast.forecasting.model import ForecastModel

FORMAT_VERSION = 1
META_FILE = "model.json"


def artifact_files(model: ForecastModel) -> dict[str, bytes]:
    """The artifact's files by name: one LightGBM text file per booster, then ``model.json``."""
    if not model.boosters:
        raise ValueError("model is not fitted: nothing to save")
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
        "p50_base": model.p50_base,
    }
    files = {
        f"booster_{name}.txt": booster.model_to_string().encode("utf-8")
        for name, booster in model.boosters.items()
    }
    files[META_FILE] = json.dumps(meta, indent=2, default=str).encode("utf-8")
    return files


def write_artifact(files: dict[str, bytes], root: Location) -> None:
    """Write an artifact's files, ``model.json`` last (its presence means complete)."""
    for name in sorted(files, key=lambda n: n == META_FILE):
        (root / name).write_bytes(files[name])


def save_model(model: ForecastModel, root: str | Path | Location) -> Location:
    folder = location(root)
    write_artifact(artifact_files(model), folder)
    return folder


def stored_files(root: Location) -> dict[str, bytes]:
    """Every file under a stored artifact by relative name, each read once."""
    return {f.relative_to(root): f.read_bytes() for f in root.files(recursive=True)}


def load_model(target: str | Path | Location) -> ForecastModel:
    root = location(target)
    meta_path = root / META_FILE
    if not meta_path.is_file():
        raise ValueError(f"{root} is not a saved ForecastModel (no {META_FILE})")
    return model_from_files(lambda name: (root / name).read_bytes())


def model_from_files(read: Callable[[str], bytes]) -> ForecastModel:
    """The model whose artifact files ``read`` returns by name (``model.json`` first).

    The registry passes the very bytes it checked against the registered sha256,
    so what is loaded is what was verified, read once.
    """
    from nightcast.forecasting.calibration import Calibration
    from nightcast.forecasting.model import ForecastModel

    meta = json.loads(read(META_FILE))
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
    # Absent in artifacts saved before P50 candidates could boost from a base.
    model.p50_base = meta.get("p50_base")
    model.boosters = {
        name: lgb.Booster(model_str=read(fname).decode("utf-8"))
        for name, fname in meta["boosters"].items()
    }
    return model
