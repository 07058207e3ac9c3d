"""``nightcast summary`` (also the end of ``make demo``) on both warehouses."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from _services import fresh_postgres_database

from nightcast.cli import main
from nightcast.warehouse.base import open_warehouse

D = date(2025, 5, 1)


def _one_night(url: str) -> None:
    """A published night with ~1.2 million rows through load, so the sums need separators."""
    with open_warehouse(url) as wh:
        wh.execute(
            "insert into forecast.runs values (?, 'm1', 'published', 40, 28, 1120, null, ?)",
            [D, datetime(2025, 5, 2, 3)],
        )
        for table, rows_in, out, bad in (
            ("order_lines", 1_234_567, 1_234_000, 567),
            ("items", 40, 40, 0),
        ):
            wh.execute(
                "insert into ops.task_runs values (?, 'load', 'demo', ?, ?, ?, ?, 1.5, '', ?)",
                [D, table, rows_in, out, bad, datetime(2025, 5, 2, 2, 30)],
            )
        for name, ok, severity in (("a", True, "critical"), ("b", False, "warning")):
            wh.execute(
                "insert into ops.dq_results values (?, 'order_lines', ?, 'quantity', ?, ?, '', '')",
                [D, name, severity, ok],
            )


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_summary_prints_a_night_on_either_warehouse(
    engine: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if engine == "postgres":
        url = fresh_postgres_database("nightcast_summary_test")
    else:
        url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    monkeypatch.setenv("NIGHTCAST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", url)
    _one_night(url)

    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert (
        f"{D}: published extracted 1,234,607 rows, loaded 1,234,040, quarantined 567; "
        "DQ 1/2 checks passed (0 critical failures); 40 series, 1,120 forecast rows, model m1"
    ) in out, out
    assert "stages: load 3.0s" in out
    # Where the forecasts are: the warehouse actually configured, not the default DuckDB file.
    warehouse_line = out.splitlines()[0]
    if engine == "postgres":
        assert "127.0.0.1:5432/nightcast_summary_test" in warehouse_line
        assert "duckdb" not in out.lower()
    else:
        assert str(tmp_path / "wh.duckdb") in warehouse_line


def test_summary_shows_the_latest_night_unless_asked_for_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    monkeypatch.setenv("NIGHTCAST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", url)
    _one_night(url)
    with open_warehouse(url) as wh:
        wh.execute(
            "insert into forecast.runs (run_date, status, horizon_days) values (?, 'failed', 28)",
            [D - timedelta(days=1)],
        )
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert "2 night(s)" in out and "showing 1; --all" in out
    assert f"{D}: published" in out and f"{D - timedelta(days=1)}:" not in out
    assert main(["summary", "--all"]) == 0
    out = capsys.readouterr().out
    assert f"{D - timedelta(days=1)}: failed" in out and f"{D}: published" in out
