"""Which failures every task retries: the retry policy in ``DEFAULT_ARGS``.

The end-to-end proof (a failed gate ends after one try, an unreachable ERP is retried)
runs the real DAG in tests/e2e/test_bad_nights.py; this checks each error class.
"""

from __future__ import annotations

import pytest
import sqlalchemy.exc
from airflow.sdk import RetryAction
from airflow.sdk.exceptions import AirflowTaskTimeout

from nightcast.cleaning.clean import SchemaDriftError
from nightcast.orchestration import DEFAULT_ARGS
from nightcast.quality.results import DataQualityError
from nightcast.sources.extract import LandedSchemaError
from nightcast.sources.mapping_rules import MappingError
from nightcast.transform.dbt import DbtBuildError, DbtTestFailed


def decision(error: BaseException) -> RetryAction:
    policy = DEFAULT_ARGS["retry_policy"]
    return policy.evaluate(error, try_number=1, max_tries=DEFAULT_ARGS["retries"]).action  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "error",
    [
        DataQualityError("Data-quality gate failed", [], ["demo"]),
        MappingError("demo.yaml: table 'items': unknown key 'colums'"),
        SchemaDriftError("source 'demo' table 'items': no column ['list_price']", "demo"),
        LandedSchemaError("schema drift", ["list_price"], ["price_eur"], "demo"),
        DbtTestFailed("dbt build failed (1 node(s)): test not_null_x"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_deterministic_errors_fail_at_once(error: BaseException) -> None:
    assert DEFAULT_ARGS["retries"] >= 1
    assert decision(error) is RetryAction.FAIL


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("connection refused"),
        sqlalchemy.exc.OperationalError("select 1", {}, Exception("unable to open database")),
        AirflowTaskTimeout("execution_timeout"),
        DbtBuildError("dbt build failed (1 node(s)): model stg_x: could not connect"),
        RuntimeError("anything else"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_other_errors_keep_their_retries(error: BaseException) -> None:
    assert decision(error) is RetryAction.DEFAULT


def test_publish_deadline_interval_from_the_logical_date() -> None:
    """Run date D is stamped D 02:00 UTC; the deadline is D+1 at NIGHTCAST_PUBLISH_DEADLINE
    in NIGHTCAST_TIMEZONE (06:30 by default)."""
    from datetime import date, timedelta

    from nightcast.config import get_settings
    from nightcast.orchestration import publish_deadline_interval

    utc = get_settings().model_copy(update={"timezone": "UTC"})
    assert publish_deadline_interval(utc, date(2025, 7, 1)) == timedelta(hours=28, minutes=30)
    berlin = utc.model_copy(update={"timezone": "Europe/Berlin", "publish_deadline": "07:00"})
    # 07:00 CEST is 05:00 UTC in summer, 06:00 UTC (CET) in winter.
    assert publish_deadline_interval(berlin, date(2025, 7, 1)) == timedelta(hours=27)
    assert publish_deadline_interval(berlin, date(2025, 1, 15)) == timedelta(hours=28)
