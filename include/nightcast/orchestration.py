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


def on_task_failure(context: Any) -> None:
    """Mark the run failed (BI's freshness view turns stale) and say how to rerun."""
    ti = context.get("task_instance") or context.get("ti")
    err = context.get("exception")
    first_line = str(err).splitlines()[0] if err else "unknown error"
    day = run_date(context)
    task_id = getattr(ti, "task_id", "?")
    message = f"{task_id} failed: {first_line}"
    log.error(
        "Nightcast run %s failed in task %s: %s. BI keeps the last published forecast. "
        "Fix the cause, then clear the task in the Airflow UI (or run "
        "`airflow tasks clear %s -t %s -s %s -e %s -y`) to rerun it and everything downstream.",
        day,
        task_id,
        first_line,
        NIGHTLY_DAG_ID,
        task_id,
        day,
        day,
    )
    try:
        from nightcast.config import get_settings
        from nightcast.pipeline.stages import fail_run

        fail_run(get_settings(), day, message)
    except Exception:  # the callback must never hide the original failure
        log.exception("could not record the failure in forecast.runs")
