"""
### ERP demand forecast — nightly

Closes business day **D** (the run's logical date, fired at 02:00 on D+1):
extract each ERP source incrementally → land Parquet → clean onto the canonical
model (bad rows to `ops.quarantine`) → data-quality gate (GX suites in
`expectations/`) → load `raw` in one transaction → `dbt build` →
`forecast_plan` (input snapshot, pinned model version, batches of series) →
`forecast_batch` mapped over the batches (LightGBM P10/P50/P90 for the next 28
days, one Parquet part per batch) → `load_forecasts` (checks every series is
present once, loads run D in one transaction) → `publish` (BI's
`marts.forecast_latest` switches to D). After publishing: `monitor` (accuracy of
past forecasts by horizon and segment, feature drift; a breach alerts and
`request_retrain` triggers `forecast_retrain_weekly`), `explain` (top SHAP
contributions per forecast) and `report` (the static HTML report, which runs
even when something upstream failed). A failure there alerts; BI is not affected.

**If it fails**: BI keeps the last published forecast and
`marts.forecast_freshness` says stale and why. The failing task's log names the
source, table, column, row and value. Bad data, a broken mapping, schema drift and
failing dbt tests fail at once; other errors (connections, timeouts) are retried
twice first. Fix the cause, then *Clear* the failed task (with downstream) in the
UI; after a failed `validate` or schema drift in `clean_<source>`, clear
`extract_<source>` instead, as the failed task would re-read the same data. Every
task rewrites only run D's partition, so reruns and backfills are safe. CLI (the
failure alert prints it filled in, with the task to clear):
`airflow tasks clear erp_forecast_nightly -t <task> -d -s <D>T02:00:00+00:00 -e <D>T02:00:00+00:00 -y`
(`-t` matches task ids by substring; the alert says when that clears more).

**Mapped `forecast_batch`** (one task per batch of series, labelled `batch k/n`):
clear just the failed map index (Grid → that index → *Clear* with downstream) to
rewrite only its part with the model the plan pinned; clear `forecast_plan`
with downstream to start from fresh inputs or a new champion. The CLI clears
every map index of a task.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, dag, task

from nightcast.config import get_settings
from nightcast.orchestration import (
    DEFAULT_ARGS,
    deadline_safe_test,
    on_task_failure,
    publish_deadline,
    run_date,
)
from nightcast.sources.mapping import source_pools

RAW = Asset("nightcast://warehouse/raw")
FORECASTS = Asset("nightcast://warehouse/marts/forecast_latest")
# Triggers forecast_retrain_weekly ahead of its Sunday schedule (drift or accuracy breach).
RETRAIN_REQUEST = Asset("nightcast://monitoring/retrain-request")


@dag(
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "on_failure_callback": on_task_failure},
    dagrun_timeout=timedelta(hours=4),
    # Forecasts published for BI by NIGHTCAST_PUBLISH_DEADLINE (D+1, local time), or on-call
    # is paged by Airflow's triggerer (nightcast.orchestration.publish_deadline).
    deadline=publish_deadline(get_settings()),
    tags=["nightcast", "nightly", "forecast"],
    doc_md=__doc__,
)
def erp_forecast_nightly() -> None:
    @task
    def start_run(**context: Any) -> dict[str, Any]:
        from nightcast.pipeline import runs

        return runs.start_run(get_settings(), run_date(context))

    @task
    def extract(source: str, **context: Any) -> dict[str, Any]:
        from nightcast.pipeline import stages

        return stages.extract(get_settings(), source, run_date(context))

    @task
    def clean(source: str, **context: Any) -> dict[str, Any]:
        from nightcast.pipeline import stages

        return stages.clean(get_settings(), source, run_date(context))

    @task
    def validate(cleaned: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
        from nightcast.pipeline import gate

        return gate.validate(get_settings(), run_date(context), cleaned)

    @task(outlets=[RAW])
    def load(cleaned: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
        from nightcast.pipeline import stages

        return stages.load(get_settings(), run_date(context), cleaned)

    @task
    def dbt_build(**context: Any) -> dict[str, Any]:
        from nightcast.pipeline import stages

        return stages.transform(get_settings(), run_date(context))

    # The forecasting queue is served by GPU workers where a deployment has them; the
    # plan trains the first champion when none is registered.
    @task(queue="forecasting", execution_timeout=timedelta(hours=2))
    def forecast_plan(**context: Any) -> list[dict[str, Any]]:
        from nightcast.pipeline import forecast as fc

        return fc.forecast_plan(get_settings(), run_date(context))

    @task(queue="forecasting", map_index_template="{{ batch_label }}")
    def forecast_batch(batch: dict[str, Any], **context: Any) -> dict[str, Any]:
        from airflow.sdk import get_current_context

        from nightcast.pipeline import forecast as fc

        # The UI labels each map index with this instead of a bare number.
        label = f"batch {batch['batch'] + 1}/{batch['batches']}"
        get_current_context()["batch_label"] = label  # type: ignore[typeddict-unknown-key]
        return fc.forecast_batch(get_settings(), run_date(context), batch["batch"])

    @task
    def load_forecasts(**context: Any) -> dict[str, Any]:
        from nightcast.pipeline import forecast as fc

        return fc.load_forecasts(get_settings(), run_date(context))

    @task(outlets=[FORECASTS])
    def publish(**context: Any) -> dict[str, Any]:
        from nightcast.pipeline import forecast as fc

        return fc.publish(get_settings(), run_date(context))

    # After publish: a failure below alerts but never makes BI's forecast stale.
    @task(execution_timeout=timedelta(minutes=30))
    def monitor(**context: Any) -> dict[str, Any]:
        from nightcast.pipeline import monitor as mon

        return mon.monitor(get_settings(), run_date(context))

    @task.short_circuit
    def retrain_needed(result: dict[str, Any]) -> bool:
        from nightcast.pipeline.monitor import retrain_recommended

        return retrain_recommended(result)

    # The outlet sits on its own task: a short-circuit that returns False still succeeds.
    @task(outlets=[RETRAIN_REQUEST])
    def request_retrain() -> None:
        return None

    @task(queue="forecasting", execution_timeout=timedelta(hours=1))
    def explain(**context: Any) -> dict[str, Any]:
        from nightcast.pipeline import explain as ex

        return ex.explain(get_settings(), run_date(context))

    # all_done: the report also tells the story of a night that failed or half-failed.
    @task(trigger_rule="all_done")
    def report(**context: Any) -> dict[str, Any]:
        from nightcast.pipeline import report as rp

        return rp.report(get_settings(), run_date(context))

    started = start_run()
    cleaned = []
    for source, pool, slots in source_pools(get_settings().sources_dir):
        landed = extract.override(task_id=f"extract_{source}", pool=pool, pool_slots=slots)(source)
        started >> landed
        cleaned.append(clean.override(task_id=f"clean_{source}")(source))
        landed >> cleaned[-1]
    gate = validate(cleaned)
    loaded = load(cleaned)
    plan = forecast_plan()
    gate >> loaded >> dbt_build() >> plan
    published = publish()
    forecast_batch.expand(batch=plan) >> load_forecasts() >> published
    checked = monitor()
    published >> [checked, explained := explain()]
    retrain_needed(checked) >> request_retrain()
    [checked, explained] >> report()


deadline_safe_test(erp_forecast_nightly())
