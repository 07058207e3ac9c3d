"""The report's queries: the same numbers on DuckDB and PostgreSQL, and a rerun-safe stage."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _report_world import PREVIOUS, D, Known, build_warehouse
from _services import fresh_postgres_database

from nightcast import cli
from nightcast.pipeline.report import report
from nightcast.reporting.data import ReportData, load_report_data
from nightcast.warehouse.base import open_warehouse


def read(known: Known) -> ReportData:
    with open_warehouse(known.settings.warehouse_url) as wh:
        return load_report_data(wh, D)


def test_report_queries_agree_on_duckdb_and_postgres(tmp_path: Path) -> None:
    duck = read(build_warehouse(tmp_path / "duck"))
    url = fresh_postgres_database("nightcast_report_test")
    pg = read(build_warehouse(tmp_path / "pg", url=url))

    assert pg.headline == duck.headline
    assert duck.headline.p50_next_28 == 560 and duck.headline.actual_last_28 == 504
    assert pg.previous_run == duck.previous_run == PREVIOUS
    for name in ("totals", "actuals", "category_forecast", "accuracy", "movers", "quarantine"):
        pd.testing.assert_frame_equal(
            getattr(pg, name).reset_index(drop=True),
            getattr(duck, name).reset_index(drop=True),
            check_dtype=False,
            obj=name,
        )
    assert duck.feature_drift is not None and pg.feature_drift is not None
    assert (
        list(pg.feature_drift["feature"])
        == list(duck.feature_drift["feature"])
        == [
            "ewm_0.3",
            "country",
        ]
    )


def test_accuracy_is_wape_per_run_and_horizon_bucket(known: Known) -> None:
    acc = read(known).accuracy
    latest = acc[acc["run_date"] == acc["run_date"].max()].set_index("bucket")["wape"]
    # 0.20 for days 1-7, twice that beyond (see conftest.build_marts)
    assert latest.round(6).to_dict() == {"1-7 days": 0.2, "8-14 days": 0.4, "15-28 days": 0.4}


def test_rerun_replaces_the_report_and_cli_writes_it(
    known: Known, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Path(report(known.settings, D)["path"])
    first.write_text("stale copy")
    again = Path(report(known.settings, D)["path"])
    assert again == first and "Nightcast nightly report" in again.read_text()
    assert not list(first.parent.glob("*.tmp")), "temporary files left behind"

    monkeypatch.setenv("NIGHTCAST_DATA_DIR", str(known.settings.data_dir))
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_PATH", str(known.settings.warehouse_path))
    monkeypatch.delenv("NIGHTCAST_WAREHOUSE_URL", raising=False)
    first.unlink()
    assert cli.main(["report"]) == 0  # default: the latest run, D
    assert first.exists()
    assert capsys.readouterr().out.strip() == str(first)


def test_a_backfill_of_an_older_date_leaves_latest_on_the_newest_night(known: Known) -> None:
    report(known.settings, D)
    latest = known.settings.data_dir / "reports" / "latest.html"
    newest = latest.read_text()
    older = Path(report(known.settings, PREVIOUS)["path"])
    assert older.exists() and PREVIOUS.isoformat() in older.read_text()
    assert latest.read_text() == newest  # still night D's page


def test_movers_name_items_and_locations(known: Known) -> None:
    page = Path(report(known.settings, D)["path"]).read_text()
    movers = page[page.index('<section id="movers">') :]
    movers = movers[: movers.index("</section>")]
    # The chart by name; the table by name and id; the id alone where the dimension has none.
    assert "<title>Sourdough loaf @ Main Street: +56</title>" in movers
    assert "<td>Sourdough loaf (shop:A)</td><td>Main Street (shop:L1)</td>" in movers
    assert "<td>Whole milk (shop:C)</td><td>shop:L2</td>" in movers
    assert "<td>shop:A</td>" not in movers


def test_drift_table_names_features_in_words(known: Known) -> None:
    page = Path(report(known.settings, D)["path"]).read_text()
    drift = page[page.index('<section id="drift">') :]
    alpha = "\N{GREEK SMALL LETTER ALPHA}"
    assert f"<td>exponentially weighted mean of demand ({alpha} 0.3)</td><td>ewm_0.3</td>" in drift
    assert "<td>country</td><td>country</td>" in drift
