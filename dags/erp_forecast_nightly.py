"""
### ERP demand forecast — nightly

Closes business day **D** (the run's logical date, fired at 02:00 on D+1):
extract each ERP source incrementally → land Parquet → clean onto the canonical
model (bad rows to `ops.quarantine`) → data-quality gate (GX suites in
`expectations/`) → load `raw` in one transaction → `dbt build` → LightGBM P10/P50/P90
for the next 28 days → load forecasts for D → publish (BI's
`marts.forecast_latest` switches to D).

**If it fails**: BI keeps the last published forecast and
`marts.forecast_freshness` says stale and why. The failing task's log names the
source, table, column, row and value. Fix the cause, then *Clear* the failed task
(with downstream) in the UI; every task rewrites only run D's partition, so
reruns and backfills are safe. CLI (the failure alert prints it filled in):
`airflow tasks clear erp_forecast_nightly -t '^<task>$' -d -s <D>T02:00:00+00:00 -e <D>T02:00:00+00:00 -y`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, dag, task

from nightcast.config import get_settings
from nightcast.orchestration import DEFAULT_ARGS, on_task_failure, run_date
from nightcast.sources.mapping import source_pools

RAW = Asset("nightcast://warehouse/raw")
FORECASTS = Asset("nightcast://warehouse/marts/forecast_latest")


@dag(
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "on_failure_callback": on_task_failure},
    dagrun_timeout=timedelta(hours=4),
    tags=["nightcast", "nightly", "forecast"],
    doc_md=__doc__,
)
def erp_forecast_nightly() -> None:
    @task
    def start_run(**context: Any) -> dict[str, Any]:
        from nightcast.pipeline import stages

        return stages.start_run(get_settings(), run_date(context))

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

    # The forecasting queue is served by GPU workers where a deployment has them.
    @task(queue="forecasting", execution_timeout=timedelta(hours=2))
    def forecast(**context: Any) -> dict[str, Any]:
        from nightcast.pipeline import forecast as fc

        return fc.forecast(get_settings(), run_date(context))

    @task
    def load_forecasts(**context: Any) -> dict[str, Any]:
        from nightcast.pipeline import forecast as fc

        return fc.load_forecasts(get_settings(), run_date(context))

    @task(outlets=[FORECASTS])
    def publish(**context: Any) -> dict[str, Any]:
        from nightcast.pipeline import forecast as fc

        return fc.publish(get_settings(), run_date(context))

    started = start_run()
    cleaned = []
    for source, pool in source_pools(get_settings().sources_dir):
        landed = extract.override(task_id=f"extract_{source}", pool=pool)(source)
        started >> landed
        cleaned.append(clean.override(task_id=f"clean_{source}")(source))
        landed >> cleaned[-1]
    gate = validate(cleaned)
    loaded = load(cleaned)
    gate >> loaded >> dbt_build() >> forecast() >> load_forecasts() >> publish()


erp_forecast_nightly()
