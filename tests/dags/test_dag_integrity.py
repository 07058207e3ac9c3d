"""DAG integrity: the files import cleanly and follow the project's DAG rules."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
HEAVY = ["pandas", "numpy", "pyarrow", "lightgbm", "duckdb", "great_expectations", "dbt", "sklearn"]


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"erp_forecast_nightly", "forecast_retrain_weekly"}


def test_one_dag_per_file_named_after_it(dagbag) -> None:  # type: ignore[no-untyped-def]
    for dag_id, dag in dagbag.dags.items():
        assert Path(dag.fileloc).stem == dag_id


@pytest.mark.parametrize("dag_id", ["erp_forecast_nightly", "forecast_retrain_weekly"])
def test_dag_rules(dagbag, dag_id: str) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags[dag_id]
    assert dag.tags and "nightcast" in dag.tags
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert (dag.doc_md and "rerun" in dag.doc_md.lower()) or "clear" in dag.doc_md.lower()
    from airflow.sdk import RetryAction

    from nightcast.quality.results import DataQualityError

    gate_failed = DataQualityError("Data-quality gate failed", [], ["demo"])
    for t in dag.tasks:
        assert t.owner == "data-platform", t.task_id
        assert t.retries >= 1, t.task_id
        # ... but never for bad data: that fails the same way on every try.
        assert t.retry_policy.evaluate(gate_failed, 1, t.retries).action is RetryAction.FAIL, (
            t.task_id
        )
        assert t.retry_exponential_backoff, t.task_id
        assert t.execution_timeout is not None and t.execution_timeout <= timedelta(hours=4), (
            t.task_id
        )


def test_nightly_shape(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["erp_forecast_nightly"]
    ids = set(dag.task_ids)
    assert {
        "start_run",
        "extract_demo",
        "clean_demo",
        "validate",
        "load",
        "dbt_build",
        "forecast_plan",
        "forecast_batch",
        "load_forecasts",
        "publish",
    } <= ids
    # Nothing reaches the warehouse before the quality gate passed.
    assert "validate" in dag.get_task("load").upstream_task_ids
    assert dag.get_task("extract_demo").pool == "erp_demo"
    assert dag.get_task("extract_demo").pool_slots == 3  # up to three COPY streams at once
    # After publish only: monitoring, explanations and the report never hold BI back.
    assert dag.get_task("publish").downstream_task_ids == {"monitor", "explain"}
    assert dag.get_task("report").trigger_rule == "all_done"
    assert dag.get_task("report").upstream_task_ids == {"monitor", "explain"}


def test_the_nightly_dag_carries_the_publish_deadline(dagbag) -> None:  # type: ignore[no-untyped-def]
    """Airflow's deadline alert pages on-call when a run has not succeeded by the publish
    deadline (fired by a real triggerer in tests/e2e/test_publish_deadline.py)."""
    from airflow.sdk.definitions.callback import AsyncCallback

    from nightcast.config import get_settings
    from nightcast.orchestration import publish_deadline_interval

    (alert,) = dagbag.dags["erp_forecast_nightly"].deadline
    assert alert.interval == publish_deadline_interval(get_settings())
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.path == "nightcast.orchestration.on_publish_deadline_missed"


def test_a_monitoring_breach_can_trigger_the_weekly_retrain(dagbag) -> None:  # type: ignore[no-untyped-def]
    nightly, weekly = dagbag.dags["erp_forecast_nightly"], dagbag.dags["forecast_retrain_weekly"]
    request = nightly.get_task("request_retrain")
    assert request.upstream_task_ids == {"retrain_needed"}
    assert nightly.get_task("retrain_needed").upstream_task_ids == {"monitor"}
    (outlet,) = request.outlets
    # The weekly DAG runs on its Sunday cron or when that asset is updated.
    assert outlet.uri in repr(weekly.timetable)
    assert "0 3 * * 0" in repr(weekly.timetable)


def test_nightly_forecast_is_mapped_over_batches_on_the_forecasting_queue(dagbag) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    dag = dagbag.dags["erp_forecast_nightly"]
    plan, batch = dag.get_task("forecast_plan"), dag.get_task("forecast_batch")
    assert isinstance(batch, MappedOperator) and not isinstance(plan, MappedOperator)
    assert plan.upstream_task_ids == {"dbt_build"}
    assert batch.upstream_task_ids == {"forecast_plan"}
    assert "load_forecasts" in batch.downstream_task_ids
    for t in (plan, batch):
        assert t.queue == "forecasting", t.task_id
        assert t.retries >= 1 and t.execution_timeout is not None, t.task_id


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parse_imports_nothing_heavy(path: Path) -> None:
    """Parsing a DAG file must not import pandas, LightGBM, DuckDB, GX or dbt (slow parse)."""
    code = (
        "import sys, json, runpy; import airflow.sdk; "
        f"before = set(sys.modules); runpy.run_path({str(path)!r}); "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules and m not in before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
