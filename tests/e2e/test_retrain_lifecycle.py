"""End to end: the real forecast_retrain_weekly DAG (dag.test) after two nightly runs on a tiny demo ERP.

Champion/challenger on DuckDB: a promotion, an idempotent rerun, a rejection
forced by a huge margin, then a one-command rollback that the next nightly run
follows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from _deployment import demo_deployment, query, run_dag

from nightcast import demo_erp
from nightcast.config import connection_url

pytestmark = pytest.mark.e2e

NIGHT1, NIGHT2, NIGHT3 = date(2025, 5, 1), date(2025, 5, 2), date(2025, 5, 3)
WEEK1, WEEK2 = date(2025, 5, 4), date(2025, 5, 11)
REGISTRY = (
    "select model_version, trained_for_run, train_start, train_end, rows_trained, params, "
    "features, metrics, artifact_path, checksum, status, holdout_start, status_reason, "
    "fallback_until from forecast.model_registry order by model_version"
)


@pytest.fixture(scope="module")
def dags(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    with demo_deployment(tmp_path_factory.mktemp("retrain-duckdb")) as all_dags:
        nightly, weekly = all_dags["erp_forecast_nightly"], all_dags["forecast_retrain_weekly"]
        for night in (NIGHT1, NIGHT2):
            demo_erp.advance(connection_url("nightcast_demo_erp"), night)
            run(nightly, night, 2)
        yield nightly, weekly


def run(dag: Any, day: date, hour: int) -> None:
    state = run_dag(dag, day, hour)
    assert state == "success", f"{dag.dag_id} {day}: {state}"


def statuses() -> dict[str, str]:
    return {v: s for v, s in query("select model_version, status from forecast.model_registry")}


def test_a_winning_challenger_becomes_champion_and_the_old_one_fallback(
    dags: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, weekly = dags
    (first,) = [v for v, s in statuses().items() if s == "champion"]
    # The first champion was trained on data up to night 1 (it saw the holdout):
    # accept any sane challenger that is not more than twice as bad.
    monkeypatch.setenv("NIGHTCAST_PROMOTION_MARGIN", "-1")
    monkeypatch.setenv("NIGHTCAST_BASELINE_MARGIN", "-1")  # the tiny demo is noisy
    run(weekly, WEEK1, 3)

    reg = statuses()
    (challenger,) = [v for v in reg if v != first]
    assert reg == {first: "fallback", challenger: "champion"}
    (until, reason) = query(
        "select fallback_until, status_reason from forecast.model_registry where model_version = ?",
        [first],
    )[0]
    assert until == WEEK1 + timedelta(days=14) and challenger in reason
    (holdout_start, train_end, metrics, artifact, checksum) = query(
        "select holdout_start, train_end, metrics, artifact_path, checksum "
        "from forecast.model_registry where model_version = ?",
        [challenger],
    )[0]
    assert train_end <= holdout_start, "the challenger saw the holdout"
    assert '"wape"' in metrics and first in metrics
    from nightcast.forecasting.registry import artifact_checksum

    assert artifact_checksum(Path(artifact)) == checksum
    # Both models were scored on the same windows.
    evals = query(
        "select role, model_version, cutoffs, holdout_start, holdout_end, decision, rows_evaluated "
        "from forecast.model_evaluations where run_date = ? order by role, model_version",
        [WEEK1],
    )
    assert [(e[0], e[1]) for e in evals] == [
        ("baseline", "baseline:moving_average"),
        ("baseline", "baseline:seasonal_naive"),
        ("challenger", challenger),
        ("champion", first),
    ]
    assert all(e[2:5] == evals[2][2:5] for e in evals)
    assert evals[2][5] == "promoted" and evals[2][6] > 0
    # the registry speaks the analysts' terms: against the simple baselines, in words
    assert "better than seasonal naive" in metrics or "worse than seasonal naive" in metrics
    segments = json.loads(metrics)["backtest"]["segments"]
    assert {s["segment_type"] for s in segments} == {"volume class", "demand pattern"}
    assert all("seasonal naive" in s["text"] for s in segments)


def test_rerunning_the_weekly_run_leaves_the_same_registry_rows(dags: Any) -> None:
    _, weekly = dags
    before = query(REGISTRY), query("select * from forecast.model_evaluations order by 1, 2")
    events = query("select count(*) from forecast.model_events")
    run(weekly, WEEK1, 3)
    after = query(REGISTRY), query("select * from forecast.model_evaluations order by 1, 2")
    assert after == before
    assert query("select count(*) from forecast.model_events") == events


def test_a_challenger_that_does_not_win_by_the_margin_is_rejected(
    dags: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, weekly = dags
    before = statuses()
    monkeypatch.setenv("NIGHTCAST_PROMOTION_MARGIN", "0.99")
    monkeypatch.setenv("NIGHTCAST_BASELINE_MARGIN", "-1")  # the champion rule is under test
    run(weekly, WEEK2, 3)
    reg = statuses()
    (new,) = set(reg) - set(before)
    assert reg == {**before, new: "rejected"}
    (reason,) = query(
        "select status_reason from forecast.model_registry where model_version = ?", [new]
    )[0]
    assert "x (1 - 0.99)" in reason, reason


def test_a_tampered_champion_artifact_makes_the_night_serve_the_fallback(dags: Any) -> None:
    nightly, _ = dags
    reg = statuses()
    (fallback,) = [v for v, s in reg.items() if s == "fallback"]
    (current,) = [v for v, s in reg.items() if s == "champion"]
    ((artifact,),) = query(
        "select artifact_path from forecast.model_registry where model_version = ?", [current]
    )
    victim = next(p for p in sorted(Path(artifact).rglob("*")) if p.is_file())
    original = victim.read_bytes()
    victim.write_bytes(original + b" ")
    try:
        demo_erp.advance(connection_url("nightcast_demo_erp"), NIGHT3)
        run(nightly, NIGHT3, 2)
    finally:
        victim.write_bytes(original)
    # BI got tonight's forecast, from the fallback; on-call got a critical alert naming both.
    assert query(
        "select status, model_version from forecast.runs where run_date = ?", [NIGHT3]
    ) == [("published", fallback)]
    (summary,) = query(
        "select message from ops.alerts where kind = 'model_fallback' and run_date = ?", [NIGHT3]
    )[0]
    assert current in summary and fallback in summary and "sha256" in summary
    assert statuses() == reg  # the registry is unchanged: rollback stays a human decision


def test_rollback_is_one_command_and_the_nightly_run_follows_it(
    dags: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    nightly, _ = dags
    from nightcast.cli import main

    reg = statuses()
    (fallback,) = [v for v, s in reg.items() if s == "fallback"]
    (current,) = [v for v, s in reg.items() if s == "champion"]
    assert main(["model", "rollback", "--as-of", (WEEK2 + timedelta(days=1)).isoformat()]) == 0
    reg = statuses()
    assert reg[fallback] == "champion" and reg[current] == "retired"
    # No fallback left: a second rollback refuses.
    assert main(["model", "rollback", "--as-of", WEEK2.isoformat()]) == 1
    assert main(["model", "list"]) == 0

    (rejected,) = [v for v, s in reg.items() if s == "rejected"]

    monkeypatch.setenv("NIGHTCAST_SHADOW", "1")
    run(nightly, NIGHT3, 2)  # a rerun of NIGHT3 (the ERP advanced in the previous test)
    assert query("select model_version from forecast.runs where run_date = ?", [NIGHT3]) == [
        (fallback,)
    ]
    assert query("select distinct model_version from marts.forecast_latest") == [(fallback,)]
    # Shadow mode: the latest challenger (rejected in week 2) forecast the same grain aside.
    shadow = query(
        "select model_version, count(*) from forecast.shadow_forecasts where run_date = ? group by 1",
        [NIGHT3],
    )
    served = query("select count(*) from forecast.forecasts where run_date = ?", [NIGHT3])[0][0]
    assert shadow == [(rejected, served)]
