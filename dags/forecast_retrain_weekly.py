"""
### Forecast model — weekly retrain (champion / challenger)

**Schedule**: every Sunday 03:00 UTC, **or** when the nightly DAG's monitor asks
for a retrain: its `request_retrain` task updates the asset
`nightcast://monitoring/retrain-request` when accuracy or feature drift breached a
threshold (`ops.forecast_accuracy`, `ops.feature_drift`, alerts in `ops.alerts`).
Airflow 3 `AssetOrTimeSchedule`: whichever comes first starts a run. An
asset-triggered run has no logical date; its run date D is the date of its
`run_after` (the moment the request arrived), in `NIGHTCAST_TIMEZONE`. Every
task is idempotent per run date, so a request on the day of a weekly run reuses
that day's challenger, and a breach that persists asks again each night (the
challenger is still only promoted if it beats the champion).

On the history in `marts.fct_sales_daily` up to run date D:

1. **train_challenger** fits a model on the data up to the holdout start
   (D - horizon - 7 x (windows - 1)) and registers it in
   `forecast.model_registry` as `challenger` (data window, parameters,
   features, code version, artifact path and checksum);
2. **evaluate** forecasts the same holdout windows with the challenger and the
   current champion (from the same cutoffs) and stores both metric sets, and the
   simple baselines' (role `baseline`), in `forecast.model_evaluations`;
3. **decide** promotes the challenger if its WAPE beats the best simple baseline
   on the same holdout rows (seasonal naive, moving average; by
   `NIGHTCAST_BASELINE_MARGIN`, 0), its WAPE <= champion WAPE x (1 - margin)
   (`NIGHTCAST_PROMOTION_MARGIN`, 0.02) and it is sane (no NaN, no negative P50,
   P10-P90 coverage in [`NIGHTCAST_COVERAGE_MIN`, `NIGHTCAST_COVERAGE_MAX`] =
   [0.6, 0.95]); the old champion becomes `fallback` for 14 days. Otherwise the
   challenger is `rejected` with the reason. Fallbacks past their date are retired.

**If it fails**: nothing changes for the nightly DAG, which keeps its champion.
Clear the failed task; every task is idempotent per run date. Roll back with
`nightcast model rollback`; list versions with `nightcast model list`.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from nightcast.config import get_settings
from nightcast.orchestration import DEFAULT_ARGS
from nightcast.orchestration import run_date as logical_run_date

MODEL = Asset("nightcast://warehouse/forecast/model_registry")
RETRAIN_REQUEST = Asset("nightcast://monitoring/retrain-request")


def run_date(context: Any) -> date:
    """Run date D: from the logical date, or from ``run_after`` for an asset-triggered run."""
    if context.get("logical_date") is not None:
        return logical_run_date(context)
    after = pendulum.instance(context["dag_run"].run_after)
    return after.in_timezone(get_settings().timezone).date()


@dag(
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 0", timezone="UTC"), assets=[RETRAIN_REQUEST]
    ),
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
