"""`nightcast explain`: stored contributions, on-demand recomputation and clear errors."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from _explain_world import RUN, make_world

from nightcast.cli import main
from nightcast.pipeline.explain import explain
from nightcast.pipeline.runs import warehouse

ITEM, LOC = "demo:I1", "demo:L0"
DAY = RUN + timedelta(days=3)  # a promotion day for demo:I1


def _run(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    args = ["explain", "--item", ITEM, "--location", LOC, "--date", DAY.isoformat(), *extra]
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_explain_prints_the_stored_table_and_recomputes_the_same_numbers_on_demand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_world(tmp_path, monkeypatch)
    explain(settings, RUN)
    with warehouse(settings) as wh:
        p50 = wh.fetchone(
            "select p50 from forecast.forecasts where item_id = ? and location_id = ? "
            "and forecast_date = ?",
            [ITEM, LOC, DAY],
        )[0]
    rc, out, _ = _run(capsys)
    assert rc == 0
    assert f"P50 forecast {p50:,.2f}" in out and "stored" in out and f"run {RUN}" in out
    assert "on promotion (on_promo)" in out
    assert len([line for line in out.splitlines() if line.startswith("  ")]) == 2 + 5 + 1

    rc, stored_json, _ = _run(capsys, "--json")
    stored = json.loads(stored_json)
    assert stored["source"] == "stored" and stored["p50"] == pytest.approx(p50)
    # More features than stored: computed now from the registered model and D's history,
    # and the stored top 5 are the first 5 of the recomputed ranking.
    rc, computed_json, _ = _run(capsys, "--json", "--top-k", "8", "--run-date", RUN.isoformat())
    computed = json.loads(computed_json)
    assert computed["source"] == "computed" and len(computed["contributions"]) == 8
    for a, b in zip(stored["contributions"], computed["contributions"][:5], strict=False):
        assert a["feature"] == b["feature"]
        assert a["contribution"] == pytest.approx(b["contribution"], rel=1e-6, abs=1e-9)
    assert computed["prediction"] == pytest.approx(stored["prediction"], rel=1e-6)
    assert computed["prediction"] == pytest.approx(p50, rel=1e-6)


def test_unknown_item_location_or_date_names_it_and_what_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_world(tmp_path, monkeypatch)
    rc, _, err = _run(capsys, "--run-date", RUN.isoformat())  # nothing stored: computed
    assert rc == 0
    for args, expected in [
        (
            ["--item", "demo:NOPE"],
            ["item 'demo:NOPE' has no forecast in run 2025-03-31", "demo:I0"],
        ),
        (["--location", "demo:L9"], ["location 'demo:L9'", "demo:L0"]),
        (["--date", "2025-05-01"], ["no run forecasts 2025-05-01", "2025-03-31"]),
        (["--run-date", "2025-03-30"], ["no forecasts for run date 2025-03-30", "2025-03-31"]),
    ]:
        base = {"--item": ITEM, "--location": LOC, "--date": DAY.isoformat()}
        base.update(dict(zip(args[::2], args[1::2], strict=True)))
        rc = main(["explain", *[x for kv in base.items() for x in kv]])
        err = capsys.readouterr().err
        assert rc == 1, args
        for text in expected:
            assert text in err, (args, err)
