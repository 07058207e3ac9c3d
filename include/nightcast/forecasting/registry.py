"""Model registry in the warehouse (``forecast.model_registry``) and model artifacts on disk.

A version is derived from the run it was trained for and the artifact's
checksum, so retraining on the same data gives the same version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from nightcast import __version__
from nightcast.forecasting.model import ForecastModel
from nightcast.warehouse.base import Warehouse

log = logging.getLogger("nightcast.forecasting")


def artifact_checksum(folder: Path) -> str:
    """sha256 over the artifact's files, in name order."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _plain(value: Any) -> Any:
    """numpy/pandas scalars → Python ones (database drivers bind those)."""
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime().date()
    return value.item() if hasattr(value, "item") else value


def _as_date(value: Any) -> date | None:
    return None if value is None else pd.Timestamp(value).date()


def champion(wh: Warehouse) -> tuple[str, Path] | None:
    """The current champion's version and artifact path, if any."""
    row = wh.fetchone(
        "select model_version, artifact_path from forecast.model_registry where status = 'champion' "
        "order by registered_at desc limit 1"
    )
    return (row[0], Path(row[1])) if row else None


def load_champion(wh: Warehouse) -> tuple[str, ForecastModel] | None:
    found = champion(wh)
    if found is None:
        return None
    version, path = found
    if not path.exists():
        raise FileNotFoundError(
            f"champion model {version} is registered at {path}, but that folder is missing; "
            "restore it or run the forecast_retrain_weekly DAG to train a new champion"
        )
    return version, ForecastModel.load(path)


def save_and_register(
    wh: Warehouse,
    model: ForecastModel,
    models_dir: Path,
    trained_for: date,
    metrics: dict[str, Any] | None = None,
) -> str:
    """Save ``model``, register it as champion, and keep the previous champion as fallback."""
    staging = models_dir / f".staging-{trained_for.isoformat()}"
    shutil.rmtree(staging, ignore_errors=True)
    model.save(staging)
    checksum = artifact_checksum(staging)
    version = f"m{trained_for:%Y%m%d}-{checksum[:8]}"
    final = models_dir / version
    if final.exists():
        shutil.rmtree(staging)
    else:
        staging.rename(final)
    info = model.train_info
    with wh.transaction():
        wh.execute(
            "update forecast.model_registry set status = 'fallback' where status = 'champion' and model_version <> ?",
            [version],
        )
        wh.execute(
            "update forecast.model_registry set status = 'retired' where status = 'fallback' and model_version not in "
            "(select model_version from forecast.model_registry where status = 'fallback' order by registered_at desc limit 1)"
        )
        wh.execute("delete from forecast.model_registry where model_version = ?", [version])
        wh.execute(
            "insert into forecast.model_registry values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'champion', ?)",
            [
                version,
                trained_for,
                _as_date(info.get("start")),
                _as_date(info.get("end")),
                _plain(info.get("rows")),
                _plain(info.get("series")),
                json.dumps(model.params, sort_keys=True, default=str),
                json.dumps(model.feature_names),
                json.dumps(metrics or {}, sort_keys=True, default=str),
                str(final),
                checksum,
                __version__,
                datetime.now(),
            ],
        )
    log.info(
        "registered model %s (%s rows, %s series) at %s",
        version,
        info.get("rows"),
        info.get("series"),
        final,
    )
    return version
