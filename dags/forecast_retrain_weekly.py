"""
### Forecast model — weekly retrain (champion / challenger)

Every Sunday 03:00 UTC, on the history in `marts.fct_sales_daily` up to the
run's logical date D:

1. **train_challenger** fits a model on the data up to the holdout start
   (D - horizon - 7 x (windows - 1)) and registers it in
   `forecast.model_registry` as `challenger` (data window, parameters,
   features, code version, artifact path and checksum);
2. **evaluate** forecasts the same holdout windows with the challenger and the
   current champion (from the same cutoffs) and stores both metric sets in
   `forecast.model_evaluations`;
3. **decide** promotes the challenger if its WAPE <= champion WAPE x (1 - margin)
   (`NIGHTCAST_PROMOTION_MARGIN`, 0.02) and it is sane (no NaN, no negative P50,
   P10-P90 coverage in [`NIGHTCAST_COVERAGE_MIN`, `NIGHTCAST_COVERAGE_MAX`] =
   [0.6, 0.95]); the old champion becomes `fallback` for 14 days. Otherwise the
   challenger is `rejected` with the reason. Fallbacks past their date are retired.

**If it fails**: nothing changes for the nightly DAG, which keeps its champion.
Clear the failed task; every task is idempotent per run date. Roll back with
`nightcast model rollback`; list versions with `nightcast model list`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, CronTriggerTimetable, dag, task

from nightcast.config import get_settings
from nightcast.orchestration import DEFAULT_ARGS, run_date

MODEL = Asset("nightcast://warehouse/forecast/model_registry")


@dag(
    schedule=CronTriggerTimetable("0 3 * * 0", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    dagrun_timeout=timedelta(hours=6),
    tags=["nightcast", "weekly", "training"],
    doc_md=__doc__,
)
def forecast_retrain_weekly() -> None:
    @task(queue="forecasting", execution_timeout=timedelta(hours=4))
    def train_challenger(**context: Any) -> str:
        from nightcast.pipeline.retrain import train_challenger as run

        return str(run(get_settings(), run_date(context))["model_version"])

    @task(queue="forecasting", execution_timeout=timedelta(hours=2))
    def evaluate(version: str, **context: Any) -> str:
        from nightcast.pipeline.retrain import evaluate as run

        run(get_settings(), run_date(context), version)
        return version

    @task(outlets=[MODEL])
    def decide(version: str, **context: Any) -> dict[str, Any]:
        from nightcast.pipeline.retrain import decide as run

        return run(get_settings(), run_date(context), version)

    # XComArgs at parse time; the tasks receive the version string at run time.
    challenger: Any = train_challenger()
    evaluated: Any = evaluate(challenger)
    decide(evaluated)


forecast_retrain_weekly()
