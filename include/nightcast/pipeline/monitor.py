"""Nightly monitoring stage: accuracy of past forecasts and feature drift of the champion.

Runs for run date D after ``dbt build`` (actuals up to D are in the marts) and
publish. Writes ``ops.forecast_accuracy`` (evaluation date D, see
:mod:`nightcast.monitoring.accuracy`) and ``ops.feature_drift`` (one row per
feature for D, see :mod:`nightcast.monitoring.drift`); both are replaced on a
rerun. Thresholds come from :class:`~nightcast.config.Settings`:

- drift: a feature whose PSI exceeds ``drift_psi_max`` (``NIGHTCAST_DRIFT_PSI_MAX``);
- accuracy: the pooled WAPE of the shortest horizon bucket (1-7 days) over the
  lookback exceeds ``accuracy_wape_max`` (``NIGHTCAST_ACCURACY_WAPE_MAX``), or the
  champion's pooled WAPE exceeds its backtest WAPE (``forecast.model_registry``) by
  more than ``accuracy_degradation_max`` (``NIGHTCAST_ACCURACY_DEGRADATION_MAX``),
  relative.

Every breach raises one alert (once per run date, kind and subject: reruns do not
page again); any breach sets ``retrain_recommended``, which the nightly DAG turns
into the ``nightcast://monitoring/retrain-request`` asset.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from nightcast.config import Settings
from nightcast.forecasting import ForecastModel
from nightcast.forecasting.registry import load_serving_model
from nightcast.monitoring.accuracy import (
    BUCKET_DAYS,
    forecasts_scored,
    pooled_wape,
    score_accuracy,
)
from nightcast.monitoring.alerts import NIGHTLY_DAG_ID, Alert, raise_alert
from nightcast.monitoring.drift import FeatureDrift, feature_drift
from nightcast.monitoring.metrics import emit
from nightcast.pipeline.forecast import future_frame, history_frame
from nightcast.pipeline.runs import record_task, warehouse
from nightcast.warehouse.base import Warehouse

log = logging.getLogger("nightcast.pipeline")

TASK_ID = "monitor"
RETRAIN_HINT = (
    "What to do: check the upstream data for the named feature/segment (ops.dq_results, "
    "ops.quarantine, a changed ERP mapping); if the change is real, retrain: "
    "airflow dags trigger forecast_retrain_weekly (the nightly DAG requests it through the "
    "asset nightcast://monitoring/retrain-request when monitoring recommends it).\n"
    f"Rerun this check (CLI): airflow tasks clear {NIGHTLY_DAG_ID} -t '^{TASK_ID}$' "
    "-s <logical date> -e <logical date> -y"
)


def _drift(
    wh: Warehouse, settings: Settings, run_date: date
) -> tuple[str | None, list[FeatureDrift]]:
    """(champion version, drift per feature); no rows when drift cannot be computed."""
    found = load_serving_model(wh, run_date)
    if found is None:
        log.info("monitor %s: no champion model registered; drift skipped", run_date)
        return None, []
    version, model, _ = found
    if model.reference_bins is None:
        log.warning(
            "monitor %s: champion %s was saved without reference bins (trained before drift "
            "monitoring); drift skipped until the next retrain registers a model with them",
            run_date,
            version,
        )
        return version, []
    history = history_frame(wh, run_date)
    if history.empty:
        log.info("monitor %s: no active series; drift skipped", run_date)
        return version, []
    x = _tonight_features(wh, model, history, run_date)
    n_series = max(len(x) // model.horizon, 1)
    return version, feature_drift(
        model.reference_bins, x, model.feature_names, settings.drift_psi_max, n_series
    )


def _tonight_features(
    wh: Warehouse, model: ForecastModel, history: pd.DataFrame, run_date: date
) -> np.ndarray:
    """The design matrix the model sees when forecasting from origin ``run_date``."""
    series = history[["unique_id", "item_id", "location_id"]].drop_duplicates()
    future = future_frame(wh, series, run_date, model.horizon) if model.exog_cols else None
    return model.prediction_design(history, future, cutoff=pd.Timestamp(run_date)).x


def _write_drift(
    wh: Warehouse, run_date: date, version: str | None, rows: list[FeatureDrift]
) -> None:
    with wh.transaction():
        wh.execute("delete from ops.feature_drift where run_date = ?", [run_date])
        for d in rows:
            wh.execute(
                "insert into ops.feature_drift (run_date, model_version, feature, feature_kind, "
                "psi, ks, status, threshold, rows_compared) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_date, version, d.feature, d.kind, d.psi, d.ks, d.status, d.threshold, d.rows],
            )


def _backtest_wape(wh: Warehouse, version: str | None) -> float | None:
    if version is None:
        return None
    row = wh.fetchone(
        "select metrics from forecast.model_registry where model_version = ?", [version]
    )
    try:
        value = json.loads(row[0])["backtest"]["model"]["wape"] if row and row[0] else None
    except (KeyError, TypeError, ValueError):
        return None
    return float(value) if value is not None else None


def _drift_summary(settings: Settings, d: FeatureDrift, version: str | None) -> str:
    ks = "n/a" if d.ks is None else f"{d.ks:.3f}"
    return (
        f"feature {d.feature!r} drifted: PSI {d.psi:.3f} > threshold {d.threshold:.3f} "
        f"(NIGHTCAST_DRIFT_PSI_MAX={settings.drift_psi_max} + sampling noise; binned KS {ks}) "
        f"against the training bins of model {version}"
    )


def _accuracy_breaches(
    settings: Settings, accuracy: pd.DataFrame, version: str | None, backtest: float | None
) -> list[str]:
    """A summary of each accuracy threshold breached."""
    out: list[str] = []
    window = f"published forecasts scored over the last {settings.accuracy_lookback_days} days"
    short = pooled_wape(accuracy, BUCKET_DAYS)
    if short is not None and short > settings.accuracy_wape_max:
        out.append(
            f"WAPE {short:.3f} for segment 'all' at horizon 1-7 days exceeds "
            f"NIGHTCAST_ACCURACY_WAPE_MAX={settings.accuracy_wape_max} ({window})"
        )
    current = pooled_wape(accuracy, model_version=version) if version else None
    if current is not None and backtest:
        limit = backtest * (1 + settings.accuracy_degradation_max)
        if current > limit:
            out.append(
                f"WAPE {current:.3f} of champion {version} exceeds its backtest WAPE "
                f"{backtest:.3f} by more than NIGHTCAST_ACCURACY_DEGRADATION_MAX="
                f"{settings.accuracy_degradation_max} (limit {limit:.3f}; {window})"
            )
    return out


def _raise_new(settings: Settings, run_date: date, alerts: list[tuple[str, str]]) -> int:
    """Raise each (kind, summary) as a warning unless it was raised for ``run_date`` already."""
    with warehouse(settings) as wh:
        seen = wh.fetchall(
            "select kind, message from ops.alerts where run_date = ? and task_id = ?",
            [run_date, TASK_ID],
        )
    raised = 0
    for kind, summary in alerts:
        if any(k == kind and summary in message for k, message in seen):
            continue
        raise_alert(
            settings,
            Alert(
                kind=kind,
                run_date=run_date,
                dag_id=NIGHTLY_DAG_ID,
                task_id=TASK_ID,
                severity="warning",
                summary=summary,
                rerun_hint=RETRAIN_HINT,
            ),
        )
        raised += 1
    return raised


def monitor(settings: Settings, run_date: date) -> dict[str, Any]:
    """Score past forecasts and tonight's drift for run date D; alert on breaches."""
    started = time.monotonic()
    with warehouse(settings) as wh:
        accuracy = score_accuracy(wh, run_date, settings.accuracy_lookback_days)
        version, drift = _drift(wh, settings, run_date)
        _write_drift(wh, run_date, version, drift)
        backtest = _backtest_wape(wh, version)
    drift_breaches = [d for d in drift if d.status == "breach"]
    alerts = [("feature_drift", _drift_summary(settings, d, version)) for d in drift_breaches]
    degraded = _accuracy_breaches(settings, accuracy, version, backtest)
    alerts += [("accuracy_degraded", summary) for summary in degraded]
    raised = _raise_new(settings, run_date, alerts)
    result = {
        "run_date": run_date.isoformat(),
        "forecasts_scored": forecasts_scored(accuracy),
        "runs_scored": int(accuracy["run_date"].nunique()) if len(accuracy) else 0,
        "wape_1_7": pooled_wape(accuracy, BUCKET_DAYS),
        "model_version": version,
        "drift_features": len(drift),
        "drift_breaches": len(drift_breaches),
        "accuracy_breaches": len(degraded),
        "alerts_raised": raised,
        "retrain_recommended": bool(alerts),
    }
    with warehouse(settings) as wh:
        record_task(
            wh,
            run_date,
            TASK_ID,
            rows_in=forecasts_scored(accuracy),
            rows_out=len(drift),
            seconds=time.monotonic() - started,
            summary=f"{len(drift_breaches)} drift / {len(degraded)} accuracy breaches",
        )
    gauges = {
        "drift.breaches": float(len(drift_breaches)),
        "accuracy.breaches": float(len(degraded)),
        "forecasts_scored": float(forecasts_scored(accuracy)),
    }
    if drift:
        gauges["drift.psi_max"] = max(d.psi for d in drift)
    if (wape_1_7 := pooled_wape(accuracy, BUCKET_DAYS)) is not None:
        gauges["accuracy.wape_h1_7"] = float(wape_1_7)
    emit(settings, run_date, gauges, task_id=TASK_ID)
    log.info("monitor %s: %s", run_date, result)
    return result


def retrain_recommended(result: dict[str, Any]) -> bool:
    """Whether :func:`monitor`'s result asks for a retrain (for a ShortCircuit task)."""
    return bool(result.get("retrain_recommended"))
