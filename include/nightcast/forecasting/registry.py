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

import duckdb

from nightcast import __version__
from nightcast.forecasting.model import ForecastModel

log = logging.getLogger("nightcast.forecasting")


def artifact_checksum(folder: Path) -> str:
    """sha256 over the artifact's files, in name order."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def champion(con: duckdb.DuckDBPyConnection) -> tuple[str, Path] | None:
    """The current champion's version and artifact path, if any."""
    row = con.execute(
        "select model_version, artifact_path from forecast.model_registry where status = 'champion' "
        "order by registered_at desc limit 1"
    ).fetchone()
    return (row[0], Path(row[1])) if row else None


def load_champion(con: duckdb.DuckDBPyConnection) -> tuple[str, ForecastModel] | None:
    found = champion(con)
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
    con: duckdb.DuckDBPyConnection,
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
    con.execute("begin transaction")
    try:
        con.execute(
            "update forecast.model_registry set status = 'fallback' where status = 'champion' and model_version <> ?",
            [version],
        )
        con.execute(
            "update forecast.model_registry set status = 'retired' where status = 'fallback' and model_version not in "
            "(select model_version from forecast.model_registry where status = 'fallback' order by registered_at desc limit 1)"
        )
        con.execute("delete from forecast.model_registry where model_version = ?", [version])
        con.execute(
            "insert into forecast.model_registry values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'champion', ?)",
            [
                version,
                trained_for,
                info.get("start"),
                info.get("end"),
                info.get("rows"),
                info.get("series"),
                json.dumps(model.params, sort_keys=True, default=str),
                json.dumps(model.feature_names),
                json.dumps(metrics or {}, sort_keys=True, default=str),
                str(final),
                checksum,
                __version__,
                datetime.now(),
            ],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    log.info(
        "registered model %s (%s rows, %s series) at %s",
        version,
        info.get("rows"),
        info.get("series"),
        final,
    )
    return version
