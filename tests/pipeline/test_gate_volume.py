"""The gate's volume check learns its band from earlier published nights."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from _acme import ITEMS, RUN_DATE, STORES, Acme

from nightcast.config import get_settings
from nightcast.pipeline import gate, runs, stages
from nightcast.quality import DataQualityError
from nightcast.warehouse.base import open_warehouse

ROOT = Path(__file__).resolve().parents[2]
HEADER = "LINE,ORDER,DAY,ITEM,STORE,QTY,PRICE,STATUS,CHANGED\n"


def lines(day: date, n: int) -> str:
    return HEADER + "".join(
        f"{day.toordinal() * 100 + i},{i},{day},1,10,1,1.5,S,{day} 09:00:00\n" for i in range(n)
    )


def night(acme: Acme, day: date, n_lines: int, publish: bool = True) -> list[dict[str, Any]]:
    acme.drop_files(day, items_csv=ITEMS, stores_csv=STORES, lines_csv=lines(day, n_lines))
    runs.start_run(acme.settings, day)
    stages.extract(acme.settings, "acme", day)
    cleaned = [stages.clean(acme.settings, "acme", day)]
    if publish:
        gate.validate(acme.settings, day, cleaned)
        stages.load(acme.settings, day, cleaned)
        with open_warehouse(acme.settings.warehouse_url) as wh:
            wh.execute("update forecast.runs set status = 'published' where run_date = ?", [day])
    return cleaned


@pytest.fixture
def three_runs_suites(acme: Acme, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "expectations"
    shutil.copytree(ROOT / "expectations", folder)
    suite = json.loads((folder / "order_lines.json").read_text())
    suite["meta"]["nightcast"]["volume"] = {"runs": 3, "k": 3, "min_tolerance": 0.3}
    (folder / "order_lines.json").write_text(json.dumps(suite))
    monkeypatch.setenv("NIGHTCAST_EXPECTATIONS_DIR", str(folder))
    acme.settings = get_settings()
    return folder / "order_lines.json"


def volume_result(acme: Acme, day: date) -> tuple[Any, ...]:
    with open_warehouse(acme.settings.warehouse_url) as wh:
        row = wh.fetchone(
            "select severity, success, observed_value, details from ops.dq_results "
            "where run_date = ? and suite = 'order_lines' and expectation = 'nightcast_volume'",
            [day],
        )
    assert row is not None
    return row


def test_volume_is_skipped_until_n_runs_then_warns_on_a_collapse(
    acme: Acme, three_runs_suites: Path
) -> None:
    days = [RUN_DATE + timedelta(days=i) for i in range(5)]
    night(acme, days[0], 20)
    assert "not learned yet" in volume_result(acme, days[0])[3]
    night(acme, days[1], 22)
    night(acme, days[2], 19)
    night(acme, days[3], 21)  # 3 runs of history now: 21 is normal
    assert volume_result(acme, days[3])[:2] == ("warning", True)
    cleaned = night(acme, days[4], 2, publish=False)
    res = gate.validate(acme.settings, days[4], cleaned)  # a warning does not stop the run
    assert res["critical_failures"] == 0 and res["warnings"] >= 1
    severity, success, observed, details = volume_result(acme, days[4])
    assert (severity, success) == ("warning", False)
    assert "source acme: 2 rows" in observed and "fewer than the band" in details
    # Both reports of the night: Nightcast's page and the GX Data Docs site.
    docs = acme.settings.lake.local_path() / "dq_docs" / f"date={days[4]}"
    assert res["report"] == str(docs / "index.html") and (docs / "index.html").exists()
    assert res["data_docs"] == str(docs / "gx" / "index.html")
    pages = list((docs / "gx" / "validations" / "order_lines").rglob("*.html"))
    assert len(pages) == 1 and "order_line_id" in pages[0].read_text()


def test_volume_severity_critical_stops_the_run(acme: Acme, three_runs_suites: Path) -> None:
    suite = json.loads(three_runs_suites.read_text())
    suite["meta"]["nightcast"]["volume"]["severity"] = "critical"
    three_runs_suites.write_text(json.dumps(suite))
    days = [RUN_DATE + timedelta(days=i) for i in range(4)]
    for d in days[:3]:
        night(acme, d, 20)
    cleaned = night(acme, days[3], 200, publish=False)
    with pytest.raises(DataQualityError, match="nightcast_volume") as err:
        gate.validate(acme.settings, days[3], cleaned)
    assert err.value.sources == ("acme",)  # what the failure alert tells on-call to re-extract
