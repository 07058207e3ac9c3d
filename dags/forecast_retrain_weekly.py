"""
### Forecast model — weekly retrain

Every Sunday 03:00 UTC: trains a new global LightGBM model on all history in
`marts.fct_sales_daily` up to the run's logical date, backtests it on rolling
origins (metrics stored with the model), registers it in
`forecast.model_registry` as champion and keeps the previous champion as
`fallback`. The next nightly run forecasts with the new champion.

**If it fails**: nothing changes; the nightly DAG keeps using the current
champion. Fix the cause and *Clear* the `retrain` task; retraining the same date
is idempotent (same data → same model version).
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
    @task(outlets=[MODEL], queue="forecasting", execution_timeout=timedelta(hours=4))
    def retrain(**context: Any) -> dict[str, Any]:
        from nightcast.pipeline.forecast import retrain as run_retrain

        return run_retrain(get_settings(), run_date(context))

    retrain()


forecast_retrain_weekly()
