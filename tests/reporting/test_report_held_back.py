"""The report of a night the gate held back says so: nothing published, which run BI shows,
and a quality section whose counts agree with each other."""

from __future__ import annotations

from pathlib import Path

from _report_world import PREVIOUS, D, Known, build_warehouse, text_of

from nightcast.pipeline.report import report
from nightcast.warehouse.base import open_warehouse


def held_back(tmp_path: Path) -> Known:
    """The report world, but run D failed at the gate: no forecasts, its rejects held back."""
    known = build_warehouse(tmp_path)
    with open_warehouse(known.settings.warehouse_url) as wh:
        wh.execute("delete from forecast.forecasts where run_date = ?", [D])
        wh.execute(
            "update forecast.runs set status = 'failed', model_version = null, "
            "series_count = null, rows_forecast = null, message = ? where run_date = ?",
            ["validate failed: Data-quality gate failed: order_lines: ...", D],
        )
        wh.execute("update ops.quarantine set held_back = true where run_date = ?", [D])
        wh.execute(
            "insert into ops.dq_results values (?, 'order_lines', 'nightcast_quarantine_rate', "
            "null, 'critical', false, '75.00% (3 of 4)', '')",
            [D],
        )
    return known


def test_a_held_back_night_headlines_nothing_published_and_the_run_bi_shows(
    tmp_path: Path,
) -> None:
    known = held_back(tmp_path)
    result = report(known.settings, D)
    page = Path(result["path"]).read_text()

    summary = text_of(page, "summary")
    assert summary.startswith(f"Run {D:%a %d %b %Y} (failed): nothing published"), summary
    assert f"BI shows run {PREVIOUS}" in summary, summary
    assert "units (P50)" not in summary and "-100.0%" not in page
    assert result["published"] is False and result["bi_run"] == PREVIOUS.isoformat()

    # The quality section: the rate check's 3 of 4 and the rejected rows tell one story.
    quarantine = text_of(page, "quarantine-status")
    assert quarantine.startswith("3 input rows rejected by the cleaner"), quarantine
    assert "held back" in quarantine and "none of the night's rows was loaded" in quarantine
    assert "0 input rows quarantined" not in page


def test_a_published_night_still_headlines_its_forecast(known: Known) -> None:
    page = Path(report(known.settings, D)["path"]).read_text()
    summary = text_of(page, "summary")
    assert "forecasts 560 units (P50) over the next 28 days" in summary, summary
    assert "nothing published" not in summary
    assert text_of(page, "quarantine-status") == "3 input rows quarantined"
