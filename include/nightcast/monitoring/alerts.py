"""On-call alerts: always to the log and ``ops.alerts``; to the configured channels through
an Airflow notifier (:mod:`nightcast.monitoring.notify`, Apprise).

Configuration (environment, all optional):

- ``NIGHTCAST_ALERT_CONN_ID``: an Airflow connection (type apprise) listing channel URLs;
- ``NIGHTCAST_ALERT_WEBHOOK_URL``: a Slack-compatible incoming webhook (JSON ``{"text": ...}``);
- ``NIGHTCAST_ALERT_EMAIL_TO`` (comma-separated) with ``NIGHTCAST_SMTP_HOST``,
  ``NIGHTCAST_SMTP_PORT`` (25) and ``NIGHTCAST_ALERT_EMAIL_FROM`` (``nightcast@localhost``);
- ``NIGHTCAST_PUBLISH_DEADLINE``: ``HH:MM`` on D+1 in ``NIGHTCAST_TIMEZONE`` by which
  the forecasts for D must be published (``06:30``).

Delivery never raises: a channel that fails is logged and named in the row's
``delivery_errors``; ``delivered_to`` lists the channels that worked.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from nightcast.config import Settings
from nightcast.errors import DeterministicError
from nightcast.redaction import redact

log = logging.getLogger("nightcast.alerts")

NIGHTLY_DAG_ID = "erp_forecast_nightly"


def _now_utc() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Alert:
    """One on-call alert; ``message()`` is what people read."""

    kind: str  # 'task_failed' | 'deadline_missed' | 'dq_warning' | ...
    run_date: date
    dag_id: str
    task_id: str
    severity: str  # 'critical' | 'warning'
    summary: str  # the error's first line, or what is wrong
    rerun_hint: str  # exact CLI command and UI action
    logical_date: str = ""
    alert_id: str = field(default_factory=_new_id)
    raised_at: datetime = field(default_factory=_now_utc)
    delivered_to: tuple[str, ...] = ()
    delivery_errors: tuple[str, ...] = ()

    def message(self) -> str:
        lines = [
            f"[Nightcast {self.severity.upper()}] {self.kind}: {self.dag_id}"
            f"{'.' + self.task_id if self.task_id else ''} for run date {self.run_date}",
            f"DAG: {self.dag_id}",
            f"Task: {self.task_id or '-'}",
            f"Logical date: {self.logical_date or '-'} (run date {self.run_date})",
            f"Error: {self.summary}",
            self.rerun_hint,
            "BI keeps serving the last published forecast (marts.forecast_freshness says stale).",
        ]
        return "\n".join(lines)


def first_line(err: object) -> str:
    """The first non-empty line of an error (what fits in a page), credentials redacted."""
    for line in redact(err or "").splitlines():
        if line.strip():
            return line.strip()[:500]
    return type(err).__name__ if isinstance(err, BaseException) else "unknown error"


def rerun_targets(
    task_id: str, error: object, graph: Mapping[str, Collection[str]] | None = None
) -> tuple[str, ...]:
    """The tasks whose clearing (with downstream) recovers the night after ``error``.

    Usually the failed task. Not for bad data, schema drift or the like
    (:class:`~nightcast.errors.DeterministicError` with ``rerun_from``): the failed task
    would re-read the same landed or cleaned data, so the rerun starts at that stage's
    task of each source concerned (``extract_<source>``).
    """
    if not isinstance(error, DeterministicError) or not error.rerun_from:
        return (task_id,)
    targets = tuple(f"{error.rerun_from}_{s}" for s in error.sources)
    if graph is not None:
        targets = tuple(t for t in targets if t in graph) or tuple(
            sorted(t for t in graph if t.startswith(f"{error.rerun_from}_"))
        )
    return targets or (task_id,)


def over_cleared(targets: Sequence[str], graph: Mapping[str, Collection[str]]) -> list[str]:
    """Tasks that ``-t <target> -d`` clears beyond the targets and their downstream.

    Airflow 3.3's ``tasks clear -t`` matches task ids by substring (``-t extract_demo``
    also picks ``extract_demo_eu``), whatever the option's name says.
    """
    intended = {t for target in targets for t in (target, *graph.get(target, ()))}
    matched = {t for target in targets for t in graph if target in t}
    cleared = matched | {d for t in matched for d in graph[t]}
    return sorted(cleared - intended)


def task_rerun_hint(
    dag_id: str,
    task_id: str,
    logical_date: str,
    error: object = None,
    graph: Mapping[str, Collection[str]] | None = None,
) -> str:
    """Exact command and UI action that recover the night after ``task_id`` failed with ``error``.

    ``-s/-e`` bound the run's logical date (a bare date would be midnight and miss the
    02:00 run). ``graph`` (task id -> all its downstream ids, from the DAG) lets the hint
    say when ``-t``'s substring match clears more than intended.
    """
    targets = rerun_targets(task_id, error, graph)
    lines = []
    if targets != (task_id,):
        lines.append(
            f"Fix the cause in the ERP or the mapping, then rerun from {' and '.join(targets)}: "
            f"clearing {task_id} alone re-reads the same data and fails again."
        )
    if logical_date:
        cli = " && ".join(
            f"airflow tasks clear {dag_id} -t {t} -d -s {logical_date} -e {logical_date} -y"
            for t in targets
        )
    else:
        cli = "none without a logical date; use the UI"
    lines.append(f"Rerun (CLI): {cli}")
    what = f"task {targets[0]} → Clear → with Downstream"
    if len(targets) > 1:
        what += f", then the same for {', '.join(targets[1:])}"
    lines.append(f"Rerun (UI): Grid → {dag_id} → run of {logical_date or '-'} → {what}")
    extra = over_cleared(targets, graph) if graph is not None else []
    if extra:
        lines.append(
            f"Note: -t matches task ids by substring, so the CLI also clears {', '.join(extra)}; "
            "they rerun too, which is safe (each task rewrites only its run's partition). "
            "The UI clears exactly."
        )
    return "\n".join(lines)


def task_failed_alert(
    dag_id: str,
    task_id: str,
    run_date: date,
    logical_date: str,
    error: object,
    graph: Mapping[str, Collection[str]] | None = None,
) -> Alert:
    return Alert(
        kind="task_failed",
        run_date=run_date,
        dag_id=dag_id,
        task_id=task_id,
        severity="critical",
        summary=first_line(error),
        rerun_hint=task_rerun_hint(dag_id, task_id, logical_date, error, graph),
        logical_date=logical_date,
    )


# --- delivery ---------------------------------------------------------------------------


def model_fallback_alert(run_date: date, reason: str) -> Alert:
    """The champion's artifact was unusable and tonight's forecasts come from the fallback."""
    return Alert(
        kind="model_fallback",
        run_date=run_date,
        dag_id="erp_forecast_nightly",
        task_id="forecast_plan",
        severity="critical",
        summary=reason,
        rerun_hint=(
            "Forecasts are published from the fallback model. Restore the champion's artifact, "
            "or make the fallback champion with `nightcast model rollback`."
        ),
    )


def _record(settings: Settings, alert: Alert) -> None:
    from nightcast.warehouse.base import open_warehouse

    with open_warehouse(settings.warehouse_url) as wh:
        wh.execute(
            "insert into ops.alerts (alert_id, raised_at, run_date, kind, dag_id, task_id, "
            "severity, message, rerun_hint, delivered_to, delivery_errors) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                alert.alert_id,
                alert.raised_at.astimezone(UTC).replace(tzinfo=None),
                alert.run_date,
                alert.kind,
                alert.dag_id,
                alert.task_id,
                alert.severity,
                alert.message()[:4000],
                alert.rerun_hint,
                ",".join(alert.delivered_to),
                "; ".join(alert.delivery_errors)[:2000] or None,
            ],
        )


def raise_alert(settings: Settings, alert: Alert) -> Alert:
    """Deliver ``alert`` to every configured channel; returns it with what was delivered.

    Never raises: a failed channel is logged and recorded in ``ops.alerts.delivery_errors``.
    """
    # Whatever the caller put in, no credential goes to a channel, the log or the table.
    alert = replace(alert, summary=redact(alert.summary), rerun_hint=redact(alert.rerun_hint))
    delivered = ["log"]
    errors: list[str] = []
    text = alert.message()
    level = logging.ERROR if alert.severity == "critical" else logging.WARNING
    log.log(level, "%s", text)

    try:
        from nightcast.monitoring.notify import AlertNotifier, channels

        targets, unreadable = channels(settings)
        errors += unreadable
        if targets:
            notifier = AlertNotifier(
                title=text.splitlines()[0], body=text, channels=targets, severity=alert.severity
            )
            notifier.notify({})
            delivered += notifier.delivered
            errors += notifier.errors
    except Exception as err:  # delivery never raises: the table row still says what failed
        errors.append(f"notifier: {first_line(err)}")
        log.warning("alert %s: delivery failed: %s", alert.alert_id, first_line(err))

    done = replace(alert, delivered_to=(*delivered, "table"), delivery_errors=tuple(errors))
    try:
        _record(settings, done)
    except Exception as err:
        log.exception("alert %s: could not write ops.alerts", alert.alert_id)
        done = replace(
            done,
            delivered_to=tuple(delivered),
            delivery_errors=(*errors, f"table: {first_line(err)}"),
        )
    return done


# --- publish deadline -------------------------------------------------------------------


def deadline_at(settings: Settings, run_date: date) -> datetime:
    """When the forecasts for ``run_date`` must be published: D+1 at the deadline, local time."""
    return datetime.combine(
        run_date + timedelta(days=1), settings.deadline, tzinfo=ZoneInfo(settings.timezone)
    )


def latest_due_run_date(settings: Settings, now: datetime) -> date:
    """The latest run date whose publish deadline has passed at ``now``."""
    local = _aware(settings, now).astimezone(ZoneInfo(settings.timezone))
    day = local.date() - timedelta(days=1)
    return day if local >= deadline_at(settings, day) else day - timedelta(days=1)


def _aware(settings: Settings, now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=ZoneInfo(settings.timezone))


@dataclass(frozen=True)
class DeadlineStatus:
    run_date: date
    deadline: datetime
    due: bool
    run_status: str | None  # forecast.runs.status for D (None: no run yet)
    run_message: str | None
    already_alerted: bool
    failure_hint: str | None = None  # rerun_hint of D's latest task_failed alert

    @property
    def missed(self) -> bool:
        return self.due and self.run_status != "published"

    def describe(self) -> str:
        state = self.run_status or "no run"
        if not self.due:
            return f"run date {self.run_date}: deadline {self.deadline.isoformat()} not yet reached ({state})"
        if not self.missed:
            return f"run date {self.run_date}: published, deadline {self.deadline.isoformat()} met"
        return (
            f"run date {self.run_date}: NOT published by {self.deadline.isoformat()} ({state})"
            + ("; alert already raised" if self.already_alerted else "")
        )


def deadline_status(settings: Settings, run_date: date, now: datetime) -> DeadlineStatus:
    from nightcast.warehouse.base import open_warehouse

    due_at = deadline_at(settings, run_date)
    with open_warehouse(settings.warehouse_url) as wh:
        row = wh.fetchone(
            "select status, message from forecast.runs where run_date = ?", [run_date]
        )
        seen = wh.fetchone(
            "select count(*) from ops.alerts where run_date = ? and kind = 'deadline_missed'",
            [run_date],
        )
        hint = wh.fetchone(
            "select rerun_hint from ops.alerts where run_date = ? and kind = 'task_failed' "
            "order by raised_at desc limit 1",
            [run_date],
        )
    return DeadlineStatus(
        run_date=run_date,
        deadline=due_at,
        due=_aware(settings, now) >= due_at,
        run_status=row[0] if row else None,
        run_message=row[1] if row else None,
        already_alerted=bool(seen and seen[0]),
        failure_hint=hint[0] if hint else None,
    )


def deadline_rerun_hint(dag_id: str, run_date: date, timezone: str = "UTC") -> str:
    """Clear the failed tasks of the run that closes ``run_date``.

    That run's logical date falls on ``run_date`` in the deployment's zone, so ``-s/-e``
    span that local day with explicit offsets (a bare date would be read as UTC).
    ``--only-failed`` also clears the upstream_failed tasks downstream of them.
    """
    zone = ZoneInfo(timezone)
    start = datetime.combine(run_date, time(0, 0), tzinfo=zone).isoformat()
    end = datetime.combine(run_date, time(23, 59, 59), tzinfo=zone).isoformat()
    return (
        f"Rerun (CLI): airflow tasks clear {dag_id} --only-failed -s {start} -e {end} -y\n"
        f"(It clears the failed tasks of the run that closes {run_date}; if there is no run: "
        f"airflow dags trigger {dag_id} --logical-date <the run's logical date>.)\n"
        f"Rerun (UI): Grid → {dag_id} → run for {run_date} → failed task → Clear → with Downstream "
        "(a running run: check the slow task's log)"
    )


def check_deadline(
    settings: Settings, run_date: date, now: datetime, *, dag_id: str = NIGHTLY_DAG_ID
) -> Alert | None:
    """Raise a 'deadline_missed' alert if D is past its deadline and unpublished (once per D)."""
    status = deadline_status(settings, run_date, now)
    if not status.missed or status.already_alerted:
        return None
    with_msg = status.run_status or "no run recorded in forecast.runs"
    if status.run_message:
        with_msg += f": {first_line(status.run_message)}"
    alert = Alert(
        kind="deadline_missed",
        run_date=run_date,
        dag_id=dag_id,
        task_id="",
        severity="critical",
        summary=(
            f"forecasts for {run_date} not published by {status.deadline.isoformat()} "
            f"(run status: {with_msg})"
        ),
        # A task failure alert already said what recovers the night (after bad data that
        # is not the failed task): repeat it rather than a generic clear of failed tasks.
        rerun_hint=status.failure_hint or deadline_rerun_hint(dag_id, run_date, settings.timezone),
    )
    return raise_alert(settings, alert)
