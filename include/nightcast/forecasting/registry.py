"""Model registry in the warehouse (``forecast.model_registry``) and model artifacts on disk.

Statuses of a model version:

* ``challenger``: trained by the weekly retrain, not decided yet;
* ``champion``: the one model the nightly forecast uses;
* ``fallback``: the previous champion, kept until ``fallback_until`` (14 days) for
  a one-command rollback (``nightcast model rollback``);
* ``retired``: an old fallback past its date, or a champion that was rolled back;
* ``rejected``: a challenger that lost on the holdout or failed a sanity check
  (``status_reason`` says why).

Every status change is also recorded in ``forecast.model_events``. The decision
logic (:func:`decide_promotion`) is a pure function, tested on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from nightcast import __version__
from nightcast.forecasting.metrics import best_baseline, versus_baselines
from nightcast.forecasting.model import ForecastModel
from nightcast.forecasting.persistence import (
    META_FILE,
    artifact_files,
    model_from_files,
    stored_files,
    write_artifact,
)
from nightcast.storage import Location, location
from nightcast.warehouse.base import Warehouse

log = logging.getLogger("nightcast.forecasting")

STATUSES = ("challenger", "champion", "fallback", "retired", "rejected")

REGISTRY_COLUMNS = (
    "model_version",
    "trained_for_run",
    "train_start",
    "train_end",
    "rows_trained",
    "series_count",
    "params",
    "features",
    "metrics",
    "artifact_path",
    "checksum",
    "code_version",
    "status",
    "registered_at",
    "holdout_start",
    "status_reason",
    "status_changed_at",
    "fallback_until",
)
# Columns added after the first release: registries created before get them on first use.
_ADDED_COLUMNS = {
    "holdout_start": "date",
    "status_reason": "varchar",
    "status_changed_at": "timestamp",
    "fallback_until": "date",
}


class RegistryError(RuntimeError):
    """A registry operation that cannot be done (no fallback, unknown version, ...)."""


def files_checksum(files: dict[str, bytes]) -> str:
    """sha256 over an artifact's files (relative name, then content), in path order."""
    h = hashlib.sha256()
    for name in sorted(files, key=lambda n: n.split("/")):
        h.update(name.encode())
        h.update(files[name])
    return h.hexdigest()


def artifact_checksum(folder: str | Path | Location) -> str:
    """sha256 over the artifact's files as stored (local or S3), as :func:`files_checksum`."""
    return files_checksum(stored_files(location(folder)))


def _plain(value: Any) -> Any:
    """numpy/pandas scalars → Python ones (database drivers bind those)."""
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime().date()
    return value.item() if hasattr(value, "item") else value


def as_date(value: Any) -> date | None:
    return None if value is None else pd.Timestamp(value).date()


def ensure_registry(wh: Warehouse) -> None:
    """Add the lifecycle columns to a registry created by an older release (portable DDL)."""
    have = set(wh.columns("forecast.model_registry"))
    for column, kind in _ADDED_COLUMNS.items():
        if column not in have:
            wh.execute(f"alter table forecast.model_registry add column {column} {kind}")


# ---------------------------------------------------------------------- lookups
def champion(wh: Warehouse) -> tuple[str, str] | None:
    """The current champion's version and artifact URL (a local path or s3://), if any."""
    row = wh.fetchone(
        "select model_version, artifact_path from forecast.model_registry where status = 'champion' "
        "order by registered_at desc limit 1"
    )
    return (row[0], str(row[1])) if row else None


class ArtifactError(RegistryError):
    """A registered model whose artifact is missing, altered or unreadable."""


def load_version(wh: Warehouse, version: str) -> ForecastModel:
    """Load ``version``'s artifact after checking it against the registered sha256."""
    row = wh.fetchone(
        "select artifact_path, checksum from forecast.model_registry where model_version = ?",
        [version],
    )
    if row is None:
        raise RegistryError(f"model {version} is not in forecast.model_registry")
    path, registered = location(row[0]), row[1]
    files = stored_files(path)  # read once: the bytes checked are the bytes loaded
    if META_FILE not in files:
        raise ArtifactError(
            f"model {version} is registered at {path}, but that folder is missing "
            f"(no {META_FILE}); restore it or run the forecast_retrain_weekly DAG to train "
            "a new champion"
        )
    if registered and (actual := files_checksum(files)) != registered:
        raise ArtifactError(
            f"model {version}: the artifact at {path} has sha256 {actual[:12]}…, the registry "
            f"says {registered[:12]}…; it was modified or corrupted after registration. "
            "Restore it from backup or retrain; `nightcast model rollback` serves the fallback"
        )
    try:
        return model_from_files(files.__getitem__)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ArtifactError(
            f"model {version}: the artifact at {path} cannot be loaded: {first}"
        ) from exc


def load_serving_model(
    wh: Warehouse, run_date: date
) -> tuple[str, ForecastModel, str | None] | None:
    """The model the nightly run forecasts with: the champion, else its fallback.

    When the champion's artifact is missing, altered (checksum) or unreadable,
    the newest fallback still inside its 14 days serves instead, an event is
    recorded in ``forecast.model_events`` and the reason is returned (third
    item) so the caller can alert. Statuses do not change: on-call decides
    between ``nightcast model rollback`` and restoring the artifact.
    """
    found = champion(wh)
    if found is None:
        return None
    try:
        return found[0], load_version(wh, found[0]), None
    except ArtifactError as exc:
        problem = str(exc)
    row = wh.fetchone(
        "select model_version from forecast.model_registry where status = 'fallback' "
        "and (fallback_until is null or fallback_until >= ?) "
        "order by fallback_until desc nulls last, registered_at desc limit 1",
        [run_date],
    )
    if row is None:
        raise RegistryError(
            f"{problem}; and there is no fallback model within its fallback period to serve "
            "instead. Restore the artifact or train a new champion (forecast_retrain_weekly)"
        )
    fallback = str(row[0])
    model = load_version(wh, fallback)
    reason = f"champion {found[0]} unusable, forecasting with fallback {fallback}: {problem}"
    log.error("%s", reason)
    # Once per run date: the forecast and the monitor task both resolve the serving model.
    seen = wh.fetchone(
        "select 1 from forecast.model_events where run_date = ? and action = 'serve_fallback' "
        "and model_version = ?",
        [run_date, fallback],
    )
    if seen is None:
        wh.execute(
            "insert into forecast.model_events values (?, ?, ?, ?, ?, ?, ?)",
            [datetime.now(), run_date, "serve_fallback", fallback, "fallback", "fallback", reason],
        )
    return fallback, model, reason


def registry_rows(wh: Warehouse) -> list[dict[str, Any]]:
    """Every version, newest first (for ``nightcast model list``)."""
    ensure_registry(wh)
    cols = (
        "model_version",
        "status",
        "trained_for_run",
        "train_end",
        "holdout_start",
        "fallback_until",
        "status_reason",
        "metrics",
    )
    rows = wh.fetchall(
        f"select {', '.join(cols)} from forecast.model_registry "
        "order by trained_for_run desc, registered_at desc"
    )
    return [dict(zip(cols, r, strict=True)) for r in rows]


@dataclass(frozen=True)
class Backtest:
    """A model's holdout evaluation by the weekly retrain, against the simple baselines."""

    wape: float | None  # the model's WAPE on the holdout
    baselines: dict[str, float]  # baseline name -> its WAPE on the same holdout rows

    @property
    def best_baseline(self) -> tuple[str, float] | None:
        return best_baseline(self.baselines)

    @property
    def versus(self) -> str:
        """In words, the best baseline first: "12% better than seasonal naive, ..."."""
        return versus_baselines(math.nan if self.wape is None else self.wape, self.baselines)


def backtest_of(metrics: str | None) -> Backtest | None:
    """The backtest in a registry row's ``metrics`` (written by the weekly evaluate task);
    None for a model that was never evaluated, such as the nightly run's first model."""
    bt: Any = None
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        bt = json.loads(metrics or "{}").get("backtest")
    if not isinstance(bt, dict):
        return None
    model = bt.get("model")
    wape = model.get("wape") if isinstance(model, dict) else None
    baselines = {str(k): float(v) for k, v in (bt.get("baselines") or {}).items() if v is not None}
    return Backtest(None if wape is None else float(wape), baselines)


def challenger_for(wh: Warehouse, run_date: date) -> tuple[str, str] | None:
    """The challenger the weekly run of ``run_date`` registered (version, current status)."""
    row = wh.fetchone(
        "select model_version, status from forecast.model_registry "
        "where trained_for_run = ? and holdout_start is not null order by registered_at limit 1",
        [run_date],
    )
    return (row[0], row[1]) if row else None


def shadow_candidate(wh: Warehouse) -> str | None:
    """The latest weekly model trained after the champion and not promoted (shadow mode)."""
    ensure_registry(wh)
    row = wh.fetchone(
        "select r.model_version from forecast.model_registry as r "
        "where r.holdout_start is not null and r.status in ('challenger', 'rejected') "
        "and r.trained_for_run > coalesce((select max(c.trained_for_run) from forecast.model_registry as c "
        "where c.status = 'champion'), cast('1900-01-01' as date)) "
        "order by r.trained_for_run desc, r.registered_at desc limit 1"
    )
    return str(row[0]) if row else None


# ---------------------------------------------------------------------- registration
def _save_artifact(
    model: ForecastModel, models: str | Path | Location, trained_for: date
) -> tuple[str, Location, str]:
    """Write the artifact under ``models/<version>``; the version names its checksum.

    The checksum is taken from the files before they are written, so the same
    model always lands in the same folder (a rerun rewrites identical files);
    ``model.json`` goes last, so a killed writer leaves no loadable artifact.
    """
    files = artifact_files(model)
    checksum = files_checksum(files)
    version = f"m{trained_for:%Y%m%d}-{checksum[:8]}"
    final = location(models) / version
    write_artifact(files, final)
    return version, final, checksum


def record_status(
    wh: Warehouse,
    run_date: date,
    action: str,
    version: str,
    from_status: str | None,
    to_status: str,
    reason: str | None,
    now: datetime,
) -> None:
    wh.execute(
        "update forecast.model_registry set status = ?, status_reason = ?, status_changed_at = ? "
        "where model_version = ?",
        [to_status, reason, now, version],
    )
    wh.execute(
        "insert into forecast.model_events values (?, ?, ?, ?, ?, ?, ?)",
        [now, run_date, action, version, from_status, to_status, reason],
    )


def register(
    wh: Warehouse,
    model: ForecastModel,
    models: str | Path | Location,
    trained_for: date,
    status: str,
    *,
    holdout_start: date | None = None,
    metrics: dict[str, Any] | None = None,
    reason: str | None = None,
) -> str:
    """Save ``model`` and insert its registry row with ``status`` (no other row changes)."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    version, final, checksum = _save_artifact(model, models, trained_for)
    info = model.train_info
    now = datetime.now()
    values = [
        version,
        trained_for,
        as_date(info.get("start")),
        as_date(info.get("end")),
        _plain(info.get("rows")),
        _plain(info.get("series")),
        json.dumps(model.params, sort_keys=True, default=str),
        json.dumps(model.feature_names),
        json.dumps(metrics or {}, sort_keys=True, default=str),
        final.url,
        checksum,
        __version__,
        status,
        now,
        holdout_start,
        reason,
        now,
        None,
    ]
    with wh.transaction():
        ensure_registry(wh)
        wh.execute("delete from forecast.model_registry where model_version = ?", [version])
        wh.execute(
            f"insert into forecast.model_registry ({', '.join(REGISTRY_COLUMNS)}) "
            f"values ({', '.join('?' for _ in REGISTRY_COLUMNS)})",
            values,
        )
        wh.execute(
            "insert into forecast.model_events values (?, ?, ?, ?, ?, ?, ?)",
            [now, trained_for, "register", version, None, status, reason],
        )
    log.info(
        "registered model %s as %s (%s rows, %s series) at %s",
        version,
        status,
        info.get("rows"),
        info.get("series"),
        final,
    )
    return version


def save_and_register(
    wh: Warehouse,
    model: ForecastModel,
    models: str | Path | Location,
    trained_for: date,
    metrics: dict[str, Any] | None = None,
) -> str:
    """Register a first model as champion (the nightly run does this when there is none)."""
    ensure_registry(wh)
    if champion(wh) is not None:
        raise RegistryError(
            "a champion is registered already: new models go through the weekly retrain "
            "(challenger → evaluate → decide) or `nightcast model promote`"
        )
    return register(
        wh, model, models, trained_for, "champion", metrics=metrics, reason="first model"
    )
