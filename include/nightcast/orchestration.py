"""Glue between Airflow task contexts and the plain pipeline functions.

Kept free of heavy imports: DAG files import it at parse time (the Task SDK they
import anyway; nothing of pandas, dbt or the warehouse).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

from nightcast.errors import DeterministicError

log = logging.getLogger("nightcast.orchestration")

NIGHTLY_DAG_ID = "erp_forecast_nightly"

# Bad data, a broken mapping, schema drift or a failing dbt test fail the same way on
# every try: fail them at once (on-call is paged minutes earlier, not after two retries
# and their back-off). Everything else (connection errors, timeouts) keeps its retries.
FAIL_FAST = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=DeterministicError,
            action=RetryAction.FAIL,
            reason="deterministic error (data, mapping, schema or dbt test): a retry fails the same way",
        )
    ]
)


def mask_secrets(context: Any) -> None:
    """Hand the deployment's credentials to Airflow's secrets masker before a task runs.

    Airflow masks the connections it loads itself; Nightcast reads ``AIRFLOW_CONN_*`` and
    ``NIGHTCAST_WAREHOUSE_URL`` from the environment, so their passwords are registered
    here and the task log (a driver's traceback included) shows ``***`` instead.
    """
    try:
        from airflow.sdk.log import mask_secret

        from nightcast.config import configured_secrets

        for secret in configured_secrets():
            mask_secret(secret)
    except Exception:  # masking is a safety net; never the reason a task fails
        log.exception("could not register the deployment's secrets with Airflow's masker")


DEFAULT_ARGS: dict[str, Any] = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
    "execution_timeout": timedelta(hours=1),
    "retry_policy": FAIL_FAST,
    "on_execute_callback": mask_secrets,
}


def run_date(context: Any) -> date:
    """The business day a run closes: the date of its logical date in the deployment's zone."""
    from nightcast.config import lenient_settings

    logical = context["logical_date"]
    tz = lenient_settings().timezone  # also in a failure callback of a bad setting
    return logical.in_timezone(tz).date() if hasattr(logical, "in_timezone") else logical.date()


def _logical_iso(context: Any) -> str:
    logical = context.get("logical_date")
    if logical is None:
        return ""
    return logical.isoformat() if hasattr(logical, "isoformat") else str(logical)


def downstream_of(dag: Any) -> dict[str, frozenset[str]]:
    """Every task id of ``dag`` -> the ids of all tasks downstream of it (what ``-d`` clears)."""
    return {t.task_id: frozenset(t.get_flat_relative_ids(upstream=False)) for t in dag.tasks}


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
        from nightcast.config import lenient_settings
        from nightcast.pipeline.runs import fail_run

        fail_run(lenient_settings(), day, message)
    except Exception:  # the callback must never hide the original failure
        log.exception("could not record the failure in forecast.runs")
    if task_id == "validate":  # the data-quality gate held the run back: an audited decision
        try:
            from nightcast.audit import record_held_back
            from nightcast.pipeline.runs import warehouse

            with warehouse(lenient_settings()) as wh, wh.transaction():
                record_held_back(wh, day, message)
        except Exception:
            log.exception("could not record the held-back decision in audit.publications")
    try:
        from nightcast.config import lenient_settings
        from nightcast.monitoring.alerts import raise_alert, task_failed_alert

        graph: Mapping[str, frozenset[str]] | None = None
        try:
            graph = downstream_of(dag) if dag is not None else None
        except Exception:  # without the graph the hint is still right, only less exact
            log.exception("could not read the DAG's task graph for the rerun hint")
        alert = task_failed_alert(dag_id, task_id, day, _logical_iso(context), err, graph)
        raise_alert(lenient_settings(), alert)
    except Exception:
        log.exception("could not raise the failure alert")


# --- the publish deadline ---------------------------------------------------------------
#
# Two watchers, each for what the other cannot see:
# - this Airflow deadline alert on the nightly DAG: the scheduler stores, for every run it
#   creates, the time by which the run must have succeeded, and the triggerer calls
#   on_publish_deadline_missed when it has not (still running, failed, or stuck);
# - `nightcast deadline-check`, an external watchdog (cron, outside Airflow): it also
#   sees the night for which no run was created at all (scheduler down, DAG paused or
#   broken), which no deadline stored with a run can. Both raise through check_deadline,
#   which alerts once per run date, so the two never page twice.

# The nightly DAG's runs are stamped 02:00 UTC of the run date (its cron, "0 2 * * *").
NIGHTLY_LOGICAL_TIME = "02:00"


def publish_deadline_interval(settings: Any, today: date | None = None) -> timedelta:
    """From a run's logical date (run date D at 02:00 UTC) to D+1 at
    ``NIGHTCAST_PUBLISH_DEADLINE`` in ``NIGHTCAST_TIMEZONE``, at today's UTC offset.

    A deadline alert's interval is fixed per DAG version, and the DAG is re-parsed all
    day, so it follows daylight saving time; on the two nights of a change it is an hour
    off, and the callback then trusts Airflow's time (the watchdog still checks the
    exact one)."""
    from datetime import UTC, datetime, time
    from zoneinfo import ZoneInfo

    day = today or datetime.now(ZoneInfo(settings.timezone)).date()
    logical = datetime.combine(day, time.fromisoformat(NIGHTLY_LOGICAL_TIME), tzinfo=UTC)
    due = datetime.combine(
        day + timedelta(days=1), settings.deadline, tzinfo=ZoneInfo(settings.timezone)
    )
    return due - logical


def publish_deadline(settings: Any) -> Any:
    """The nightly DAG's deadline alert (Airflow 3.3 ``DeadlineAlert``)."""
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=publish_deadline_interval(settings),
        callback=AsyncCallback(on_publish_deadline_missed, kwargs={"dag_id": NIGHTLY_DAG_ID}),
        name="forecasts published for BI",
    )


async def on_publish_deadline_missed(context: Any = None, dag_id: str = NIGHTLY_DAG_ID) -> None:
    """Run by Airflow's triggerer when a nightly run has not succeeded by its deadline:
    raise the 'deadline_missed' alert (ops.alerts and the notifier's channels) unless
    the run date was published after all or was already alerted."""
    import asyncio

    await asyncio.to_thread(publish_deadline_missed, context or {}, dag_id)


def publish_deadline_missed(context: Mapping[str, Any], dag_id: str = NIGHTLY_DAG_ID) -> Any:
    """What the deadline callback does, in a thread: returns the alert raised, or None."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from nightcast.config import lenient_settings
    from nightcast.monitoring.alerts import check_deadline, deadline_at

    settings = lenient_settings()  # a bad variable must not silence the page
    logical = (context.get("dag_run") or {}).get("logical_date")
    if not logical:
        log.error("deadline callback without the run's logical date: %r", context)
        return None
    stamp = datetime.fromisoformat(str(logical).replace("Z", "+00:00"))
    day = stamp.astimezone(ZoneInfo(settings.timezone)).date()
    # Airflow says the deadline passed: trust it over our clock on a DST night.
    now = max(datetime.now(UTC), deadline_at(settings, day))
    return check_deadline(settings, day, now, dag_id=dag_id)


def deadline_safe_test(dag: Any) -> Any:
    """Let ``dag.test()`` and ``airflow dags test`` finish a successful run of ``dag``,
    whose deadline alert Airflow 3.3.2 cannot look up there; returns ``dag``.

    ``dag.test()`` schedules from a DAG serialized in memory, whose ``deadline`` holds
    the encoded alerts, not the ids the scheduler's copy (from the metadata DB) holds;
    when the run succeeds, ``DagRun.update_state`` looks each one up by id to prune the
    deadline and fails (``'dict' object has no attribute 'hex'``), so the demo's
    successful night would end in a traceback. While this DAG's ``test()`` runs, the
    lookup also answers an encoded alert (a transient row, never written). The
    scheduler never calls ``test()``: production is untouched.
    """
    run_test = dag.test

    def test(*args: Any, **kwargs: Any) -> Any:
        from airflow.models.deadline_alert import DeadlineAlert as AlertRow

        by_id = AlertRow.__dict__["get_by_id"]

        def get_by_id(cls: Any, alert_id: Any, **kw: Any) -> Any:
            if isinstance(alert_id, dict):  # the encoded alert dag.test() hands over
                return cls(
                    name=alert_id.get("name"),
                    reference=alert_id.get("reference"),
                    interval=alert_id.get("interval"),
                    callback_def=alert_id.get("callback"),
                )
            return by_id.__func__(cls, alert_id, **kw)

        AlertRow.get_by_id = classmethod(get_by_id)  # type: ignore[method-assign,assignment]
        try:
            return run_test(*args, **kwargs)
        finally:
            AlertRow.get_by_id = by_id  # type: ignore[method-assign]

    dag.test = test
    return dag
