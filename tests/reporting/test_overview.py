"""The Nightcast page's data (nightcast.reporting.overview) against real nights.

The warehouse is the one ``ui_world`` built through the real DAGs (tests/_ui_world.py):
a published night with two quarantined lines, a weekly retrain that promoted a
challenger, a second published night, and a night the gate held back. Each expectation
is queried here from the tables the pipeline wrote, not from the page's own code.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest
from _ui_world import BLANK_FIRST, FIRST, HELD_BACK, RETRAIN, SECOND, UiWorld

from nightcast.reporting.overview import (
    DQ,
    REPORT,
    NightView,
    NotServed,
    Overview,
    load_overview,
    night_file,
)
from nightcast.reporting.page import render_page
from nightcast.warehouse.base import open_warehouse

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def overview(ui_world: UiWorld) -> Overview:
    return load_overview(ui_world.settings)


def sql(world: UiWorld, text: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with open_warehouse(world.settings.warehouse_url, ensure=False) as wh:
        return wh.fetchall(text, params or [])


def night(ov: Overview, day: Any) -> NightView:
    (view,) = [v for v in ov.nights if v.night.run_date == day]
    return view


def test_nights_newest_first_with_their_outcome(ui_world: UiWorld, overview: Overview) -> None:
    runs = sql(
        ui_world, "select run_date, status, model_version from forecast.runs order by 1 desc"
    )
    assert [(v.night.run_date, v.night.status, v.night.model_version) for v in overview.nights] == (
        runs
    )
    assert [r[0] for r in runs] == [HELD_BACK, SECOND, FIRST]
    assert overview.total_nights == 3
    held = night(overview, HELD_BACK).night
    assert held.status == "failed" and held.message
    assert "Data-quality gate failed" in held.message


def test_freshness_is_what_bi_reads(ui_world: UiWorld, overview: Overview) -> None:
    (stale, reason, shown) = sql(
        ui_world,
        "select is_stale, stale_reason, latest_published_run_date from marts.forecast_freshness",
    )[0]
    assert (overview.is_stale, overview.stale_reason) == (stale, reason)
    assert stale is True and f"BI shows run {SECOND}" in reason, reason
    assert overview.bi_run is not None and overview.bi_run.run_date == shown == SECOND
    (served,) = sql(ui_world, "select distinct run_date from marts.forecast_latest")[0]
    assert served == SECOND


def test_quarantined_rows_of_a_published_and_a_held_back_night(
    ui_world: UiWorld, overview: Overview
) -> None:
    first = night(overview, FIRST)
    (in_ops,) = sql(
        ui_world,
        "select count(distinct row_number) from ops.quarantine where run_date = ? and not held_back",
        [FIRST],
    )[0]
    (at_load,) = sql(
        ui_world,
        "select sum(rows_quarantined) from ops.task_runs where run_date = ? and task = 'load'",
        [FIRST],
    )[0]
    assert first.quarantined == in_ops == at_load == BLANK_FIRST
    assert first.intake.quarantined == BLANK_FIRST and not first.held_back
    assert first.intake.extracted == first.intake.loaded + BLANK_FIRST > 0
    (row,) = first.quarantine.itertuples()
    assert (row.source, row.table_name, row.rows) == ("demo", "order_lines", BLANK_FIRST)

    held = night(overview, HELD_BACK)
    (held_rows,) = sql(
        ui_world,
        "select count(distinct row_number) from ops.quarantine where run_date = ? and held_back",
        [HELD_BACK],
    )[0]
    assert held.quarantined == held_rows >= 1 and held.held_back
    assert held.intake.loaded == 0  # the gate stopped it before the load


def test_gate_results(ui_world: UiWorld, overview: Overview) -> None:
    for view in overview.nights:
        (total, failed, critical) = sql(
            ui_world,
            "select count(*), count(*) filter (where not success), "
            "count(*) filter (where not success and severity = 'critical') "
            "from ops.dq_results where run_date = ?",
            [view.night.run_date],
        )[0]
        c = view.checks
        assert (c.total, c.failed, c.critical) == (total, failed, critical) and total > 0
        assert len(view.failed_checks) == failed
    assert night(overview, FIRST).checks.critical == 0
    held = night(overview, HELD_BACK)
    failed = set(
        held.failed_checks[["suite", "expectation", "column_name", "severity"]].itertuples(
            index=False, name=None
        )
    )
    assert ("order_lines", "expect_column_values_to_be_between", "quantity", "critical") in failed


def test_model_in_service_and_its_accuracy_vs_the_best_baseline(
    ui_world: UiWorld, overview: Overview
) -> None:
    statuses = dict(sql(ui_world, "select model_version, status from forecast.model_registry"))
    (champ,) = [v for v, s in statuses.items() if s == "champion"]
    (first_model,) = [v for v, s in statuses.items() if s == "fallback"]
    assert overview.champion is not None and overview.champion.version == champ
    assert [m.version for m in overview.fallbacks] == [first_model]
    assert overview.fallbacks[0].fallback_until == RETRAIN + timedelta(days=14)

    # The weekly evaluation, as forecast.model_evaluations stored it.
    evals = sql(
        ui_world,
        "select role, model_version, wape from forecast.model_evaluations where run_date = ?",
        [RETRAIN],
    )
    (challenger_wape,) = [w for role, v, w in evals if role == "challenger" and v == champ]
    baselines = {v.removeprefix("baseline:"): w for role, v, w in evals if role == "baseline"}
    best = min(baselines, key=lambda k: baselines[k])
    bt = overview.champion.backtest
    assert bt is not None and bt.wape == pytest.approx(challenger_wape)
    assert bt.best_baseline == (best, pytest.approx(baselines[best]))
    gain = 1 - challenger_wape / baselines[best]
    assert bt.versus.startswith(f"{abs(gain):.0%} {'better' if gain > 0 else 'worse'} than")

    # Each night names the model that forecast it; the first one was never evaluated.
    first, second = night(overview, FIRST), night(overview, SECOND)
    assert first.model is not None and first.model.version == first_model
    assert first.model.backtest is None
    assert second.model is not None and second.model.version == champ


def test_live_accuracy_as_the_monitor_scored_it(ui_world: UiWorld, overview: Overview) -> None:
    (abs_error, actual, n) = sql(
        ui_world,
        "select sum(abs_error), sum(actual_quantity), sum(n_forecasts) from ops.forecast_accuracy "
        "where evaluation_date = ? and segment_type = 'all' and horizon_max <= 7",
        [SECOND],
    )[0]
    second = night(overview, SECOND)
    assert actual > 0 and second.wape_1_7 == pytest.approx(abs_error / actual)
    assert second.scored == n > 0
    # The first night had no earlier published forecast to score; the held-back one no monitor.
    assert night(overview, FIRST).wape_1_7 is None
    assert night(overview, HELD_BACK).wape_1_7 is None


def test_drift_flags(ui_world: UiWorld, overview: Overview) -> None:
    for day in (FIRST, SECOND):
        rows = sql(
            ui_world, "select feature, status from ops.feature_drift where run_date = ?", [day]
        )
        view = night(overview, day)
        assert view.feature_drift is not None and len(view.feature_drift) == len(rows) > 0
        assert sorted(view.drifted["feature"]) == sorted(f for f, s in rows if s != "ok")
    held = night(overview, HELD_BACK)
    assert held.feature_drift is not None and held.feature_drift.empty


def test_links_only_to_pages_that_exist(ui_world: UiWorld, overview: Overview) -> None:
    settings = ui_world.settings
    for view in overview.nights:
        day = view.night.run_date
        folder = settings.lake / "dq_docs" / f"date={day}"
        assert view.gate_page == (folder / "index.html").is_file() is True
        assert view.data_docs == (folder / "gx" / "index.html").is_file() is True
        report = settings.reports / f"date={day}" / "nightly_report.html"
        assert view.report == report.is_file()
    assert night(overview, FIRST).report and night(overview, SECOND).report


def test_night_files_stay_inside_the_night(ui_world: UiWorld) -> None:
    s = ui_world.settings
    page = night_file(s, FIRST, REPORT)
    assert page.read_text().startswith("<!DOCTYPE html>") and f"date={FIRST}" in str(page)
    gx = night_file(s, FIRST, DQ, "gx/index.html")
    assert "Data Docs" in gx.read_text() or "great_expectations" in gx.read_text().lower()
    # GX's static assets: one shared copy, linked from each night's site.
    assets = (s.lake / "dq_docs" / f"date={FIRST}" / "gx" / "static").files("*.css", recursive=True)
    assert assets
    rel = assets[0].relative_to(s.lake / "dq_docs" / f"date={FIRST}")
    assert night_file(s, FIRST, DQ, rel).read_bytes() == assets[0].read_bytes()

    for bad in ("../date=2025-05-02/index.html", "gx/../../index.html", "/etc/passwd", ".hidden"):
        with pytest.raises(NotServed):
            night_file(s, FIRST, DQ, bad)
    with pytest.raises(NotServed, match="does not exist"):
        night_file(s, FIRST - timedelta(days=30), REPORT)
    with pytest.raises(NotServed):
        night_file(s, FIRST, "models")


def test_the_page_escapes_what_it_shows(overview: Overview) -> None:
    held = night(overview, HELD_BACK)
    hostile = dataclasses.replace(
        held, night=dataclasses.replace(held.night, message="<script>alert(1)</script>")
    )
    html = render_page(
        dataclasses.replace(overview, nights=[hostile, *overview.nights[1:]]), datetime.now()
    )
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
