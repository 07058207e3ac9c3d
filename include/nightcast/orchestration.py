"""Glue between Airflow task contexts and the plain pipeline functions.

Kept free of heavy imports: DAG files import it at parse time.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

log = logging.getLogger("nightcast.orchestration")

NIGHTLY_DAG_ID = "erp_forecast_nightly"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
    "execution_timeout": timedelta(hours=1),
}


def run_date(context: Any) -> date:
    """The business day a run closes: the date of its logical date in the deployment's zone."""
    from nightcast.config import get_settings

    logical = context["logical_date"]
    tz = get_settings().timezone
    return logical.in_timezone(tz).date() if hasattr(logical, "in_timezone") else logical.date()


def _logical_iso(context: Any) -> str:
    logical = context.get("logical_date")
    if logical is None:
        return ""
    return logical.isoformat() if hasattr(logical, "isoformat") else str(logical)


def on_task_failure(context: Any) -> None:
    """Mark the run failed (BI's freshness view turns stale) and page on-call with the rerun.

    The alert goes to the task log and ``ops.alerts`` always, and to the webhook/email
    when configured (``nightcast.monitoring.alerts``). Never raises: a callback error
    must not hide the original failure.
    """
    try:
        ti = context.get("task_instance") or context.get("ti")
        dag = context.get("dag")
        dag_id = getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None) or NIGHTLY_DAG_ID
        task_id = getattr(ti, "task_id", "?")
        err = context.get("exception")
        day = run_date(context)
    except Exception:
        log.exception("on_task_failure: unusable callback context")
        return
    try:
        from nightcast.monitoring.alerts import first_line

        message = f"{task_id} failed: {first_line(err)}"
    except Exception:
        message = f"{task_id} failed"
    try:
        from nightcast.config import get_settings
        from nightcast.pipeline.stages import fail_run

        fail_run(get_settings(), day, message)
    except Exception:  # the callback must never hide the original failure
        log.exception("could not record the failure in forecast.runs")
    if task_id == "validate":  # the data-quality gate held the run back: an audited decision
        try:
            from nightcast.audit import record_held_back
            from nightcast.pipeline.stages import warehouse

            with warehouse(get_settings()) as wh, wh.transaction():
                record_held_back(wh, day, message)
        except Exception:
            log.exception("could not record the held-back decision in audit.publications")
    try:
        from nightcast.config import get_settings
        from nightcast.monitoring.alerts import raise_alert, task_failed_alert

        raise_alert(
            get_settings(), task_failed_alert(dag_id, task_id, day, _logical_iso(context), err)
        )
    except Exception:
        log.exception("could not raise the failure alert")
