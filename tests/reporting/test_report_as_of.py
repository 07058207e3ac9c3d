"""``nightcast report --date D`` of an older night says what was true once D had run, not
what is true today: freshness, the run BI showed, and the accuracy known by then."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from _report_world import PREVIOUS, D, Known, text_of

from nightcast import cli
from nightcast.reporting.data import accuracy_trend
from nightcast.warehouse.base import open_warehouse


def report_page(known: Known, day: object, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["report", "--date", str(day)]) == 0
    return Path(capsys.readouterr().out.strip()).read_text()


def test_two_nights_each_report_their_own_freshness_and_bi_run(
    known: Known, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NIGHTCAST_DATA_DIR", str(known.settings.data_dir))
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_PATH", str(known.settings.warehouse_path))
    monkeypatch.delenv("NIGHTCAST_WAREHOUSE_URL", raising=False)
    # Night D-1 was held back by the gate, night D published; today the live view
    # (marts.forecast_freshness) says stale, as it would for 2025 nights.
    with open_warehouse(known.settings.warehouse_url) as wh:
        wh.execute("delete from forecast.forecasts where run_date = ?", [PREVIOUS])
        wh.execute(
            "update forecast.runs set status = 'failed', message = ? where run_date = ?",
            ["validate failed: Data-quality gate failed: order_lines", PREVIOUS],
        )

    page = report_page(known, D, capsys)
    assert text_of(page, "freshness-status") == "fresh"
    assert "BI forecasts are fresh." in text_of(page, "summary")

    page = report_page(known, PREVIOUS, capsys)
    summary = text_of(page, "summary")
    # BI showed no forecast then: night D, published a day later, is not D-1's story.
    assert "nothing published for this run date; BI shows no forecast yet." in summary, summary
    assert str(D) not in summary
    assert text_of(page, "freshness-status") == (
        f"STALE: run {PREVIOUS} is failed: validate failed: Data-quality gate failed: "
        "order_lines; BI shows no forecast"
    )


def test_accuracy_is_what_had_been_scored_by_the_night(known: Known) -> None:
    # Runs D-40, D-39 and D-38 are scored for all 28 horizons (_report_world); 30 days
    # before D, horizons beyond 10, 9 and 8 days had no actuals yet.
    early = D - timedelta(days=30)
    with open_warehouse(known.settings.warehouse_url) as wh:
        now, then = accuracy_trend(wh, D), accuracy_trend(wh, early)
    assert set(now["bucket"]) == {"1-7 days", "8-14 days", "15-28 days"}
    assert set(then["bucket"]) == {"1-7 days", "8-14 days"}
    # The 8-14 bucket then holds horizons 8..10, 8..9 and 8 only: same per-row WAPE (0.6,
    # 0.5, 0.4 beyond day 7), so the bucket's values agree while its rows differ.
    eight = then[then["bucket"] == "8-14 days"].set_index("run_date")["wape"].round(6)
    assert eight.to_dict() == {
        D - timedelta(days=40): 0.6,
        D - timedelta(days=39): 0.5,
        D - timedelta(days=38): 0.4,
    }
