"""The nightly report renders in a real browser: Debian's headless ``chromium``.

The DOM Chromium builds (``--dump-dom``) must hold the SVG plots with their shapes and
the headline numbers computed here independently from the data; the screenshot
(``--screenshot``) must not be blank. Without chromium the tests skip on a laptop
and FAIL under CI (``.ci/run`` installs it).
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from _chromium import FLAGS, chromium
from _report_world import PREVIOUS, D, Known, build_warehouse

from nightcast.pipeline.report import report
from nightcast.warehouse.base import open_warehouse


def run_chromium(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [chromium(), *FLAGS, *args], capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, f"chromium {args} failed: {done.stderr[-2000:]}"
    return done


VOID = {"meta", "link", "br", "img", "input", "hr", "area", "base", "col", "source", "wbr"}


class Dom(HTMLParser):
    """What the tests look at in the rendered DOM: charts, shapes, titles, cards and ids."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[dict[str, str | None]] = []
        self.shapes: dict[str, int] = {"polygon": 0, "polyline": 0, "rect": 0}
        self.svg_titles: list[str] = []
        self.cards: dict[str, str] = {}
        self.by_id: dict[str, str] = {}
        self._open: list[tuple[str, dict[str, str | None], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        in_svg = any(t == "svg" for t, _, _ in self._open)
        if tag == "svg":
            self.svgs.append(a)
        if tag in self.shapes and in_svg:
            self.shapes[tag] += 1
        for _, _, text in self._open:
            text.append(" ")  # an element boundary separates words, as a browser shows them
        if tag not in VOID:
            self._open.append((tag, a, []))

    def handle_data(self, data: str) -> None:
        for _, _, text in self._open:
            text.append(data)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            name, a, parts = self._open.pop()
            text = " ".join("".join(parts).split())
            if a.get("id"):
                self.by_id[str(a["id"])] = text
            if a.get("data-metric"):
                self.cards[str(a["data-metric"])] = text
            if name == "title" and any(t == "svg" for t, _, _ in self._open):
                self.svg_titles.append(text)
            if name == tag:
                return


def dump_dom(page: Path) -> Dom:
    """The DOM Chromium built from ``page``, parsed."""
    dom = Dom()
    dom.feed(run_chromium("--dump-dom", page.as_uri()).stdout)
    return dom


def png_rgb(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) to H x W x C."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, "unexpected PNG format"
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), dtype=np.uint8)
    prev = np.zeros(width * bpp, dtype=np.int64)
    for y in range(height):
        kind, row = raw[y, 0], raw[y, 1:].astype(np.int64)
        if kind == 1:  # Sub: a running sum per channel
            row = np.cumsum(row.reshape(width, bpp), axis=0).reshape(-1)
        elif kind == 2:
            row = row + prev
        elif kind in (3, 4):
            row = _sequential_unfilter(kind, row, prev, bpp)
        row %= 256
        out[y] = row
        prev = row
    return out.reshape(height, width, bpp)[:, :, :3]


def _sequential_unfilter(kind: int, row: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    cur, up = row.tolist(), prev.tolist()
    for i in range(len(cur)):
        left = cur[i - bpp] if i >= bpp else 0
        if kind == 3:
            cur[i] = (cur[i] + (left + up[i]) // 2) % 256
        else:
            upleft = up[i - bpp] if i >= bpp else 0
            p = left + up[i] - upleft
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - upleft)
            pred = left if pa <= pb and pa <= pc else (up[i] if pb <= pc else upleft)
            cur[i] = (cur[i] + pred) % 256
    return np.array(cur, dtype=np.int64)


def non_white_share(png: Path) -> float:
    pixels = png_rgb(png)
    return float((pixels.min(axis=2) < 235).mean())


def expected_headline(k: Known, run_date: date) -> dict[str, float]:
    fc, act = k.forecasts, k.actuals
    ahead = (fc["forecast_date"] - run_date).map(lambda d: d.days)
    recent = act["sales_date"] > run_date - timedelta(days=28)
    return {
        "p50_7": fc.loc[ahead <= 7, "p50"].sum(),
        "p50_28": fc.loc[ahead <= 28, "p50"].sum(),
        "actual_28": act.loc[recent, "quantity"].sum(),
        "series": len(fc[["item_id", "location_id"]].drop_duplicates()),
    }


def test_report_renders_plots_and_headline_numbers_in_chromium(
    known: Known, tmp_path: Path
) -> None:
    out = report(known.settings, D)
    page = Path(out["path"])
    dom = dump_dom(page)
    exp = expected_headline(known, D)

    assert dom.cards["runDate"] == "2025-05-01"
    assert dom.cards["modelVersion"] == "m1"
    assert dom.cards["seriesForecast"] == str(exp["series"])
    assert dom.cards["p50Next7"] == f"{exp['p50_7']:,.0f}"
    assert dom.cards["p50Next28"] == f"{exp['p50_28']:,.0f}"
    assert dom.cards["actualLast28"] == f"{exp['actual_28']:,.0f}"
    assert dom.cards["changeVsActual"] == f"{exp['p50_28'] / exp['actual_28'] - 1:+.1%}"
    assert dom.cards["fresh"] == "fresh"
    # total + 2 categories + accuracy + movers, each titled and labelled for screen readers
    assert len(dom.svgs) == 5
    assert all(s.get("role") == "img" and s.get("aria-labelledby") for s in dom.svgs)
    assert "Total demand: actuals and forecast (all series)" in dom.svg_titles
    assert {"Category bakery", "Category dairy"} <= set(dom.svg_titles)
    # one P10-P90 band per forecast chart; actual + P50 lines per forecast chart, 3 WAPE buckets
    assert dom.shapes["polygon"] == 3
    assert dom.shapes["polyline"] == 3 * 2 + 3
    assert "Sourdough loaf @ Main Street: +56" in dom.svg_titles  # 280 vs 224 of the previous run
    assert dom.by_id["dq-status"] == "3 checks: 2 passed, 0 critical and 1 warning failures"
    assert dom.by_id["quarantine-status"] == "3 input rows quarantined"
    assert dom.by_id["drift-status"] == "2 features: 1 drift, 1 ok"
    # self-contained: nothing for the browser to fetch
    source = page.read_text()
    assert "<script" not in source and "src=" not in source and "<link" not in source
    assert page.with_name("nightly_report.html") == page
    assert (known.settings.data_dir / "reports" / "latest.html").read_text() == source

    shot = tmp_path / "report.png"
    run_chromium("--window-size=1200,1400", f"--screenshot={shot}", page.as_uri())
    assert non_white_share(shot) > 0.03, "the screenshot of the report is (almost) blank"


def test_stale_run_and_missing_drift_are_visible(tmp_path: Path) -> None:
    known = build_warehouse(tmp_path, feature_drift=False)
    with open_warehouse(known.settings.warehouse_url) as wh:
        wh.execute(
            "update forecast.runs set status = 'failed', message = ? where run_date = ?",
            ["dbt build failed (1 node(s))\n  model fct_sales_daily: ...", D],
        )
    dom = dump_dom(Path(report(known.settings, D)["path"]))

    assert dom.cards["fresh"] == "STALE"
    assert dom.by_id["freshness-status"] == (
        f"STALE: run {D} is failed: dbt build failed (1 node(s)); BI shows run {PREVIOUS}"
    )
    assert dom.by_id["drift-status"] == "no drift data"


def test_blank_page_screenshot_is_detected_as_blank(tmp_path: Path) -> None:
    page = tmp_path / "blank.html"
    page.write_text("<!DOCTYPE html><html><body></body></html>")
    shot = tmp_path / "blank.png"
    run_chromium("--window-size=800,600", f"--screenshot={shot}", page.as_uri())
    assert non_white_share(shot) < 0.001


@pytest.mark.e2e
def test_report_of_a_real_nightly_dag_run_renders_its_numbers(tmp_path: Path) -> None:
    from _deployment import demo_deployment, query, run_dag

    from nightcast import demo_erp
    from nightcast.config import connection_url, get_settings

    night = date(2025, 5, 1)
    with demo_deployment(tmp_path) as dags:
        demo_erp.advance(connection_url("nightcast_demo_erp"), night)
        assert run_dag(dags["erp_forecast_nightly"], night) == "success"
        page = Path(report(get_settings(), night)["path"])
        (p50_28, series, version) = query(
            "select sum(p50), count(distinct item_id || '|' || location_id), max(model_version) "
            "from forecast.forecasts where run_date = ? and forecast_date <= ?",
            [night, night + timedelta(days=28)],
        )[0]
        (actual_28,) = query(
            "select sum(quantity) from marts.fct_sales_daily where sales_date > ? and sales_date <= ?",
            [night - timedelta(days=28), night],
        )[0]
        (categories,) = query(
            "select count(distinct coalesce(i.category, 'unknown')) from forecast.forecasts as f "
            "left join marts.dim_item as i on i.item_id = f.item_id where f.run_date = ?",
            [night],
        )[0]
        metrics = dict(
            query(
                "select name, value from ops.metrics where run_date = ? and task_id = 'extract' "
                "and dag_id = 'erp_forecast_nightly'",
                [night],
            )
        )
        (extracted,) = query(
            "select sum(rows_extracted) from ops.extract_windows where run_date = ?", [night]
        )[0]
        (checks, crit, warn) = query(
            "select count(*), "
            "coalesce(sum(case when success then 0 when severity = 'critical' then 1 else 0 end), 0), "
            "coalesce(sum(case when success then 0 when severity = 'critical' then 0 else 1 end), 0) "
            "from ops.dq_results where run_date = ?",
            [night],
        )[0]
        (scored,) = query(
            "select count(*) from marts.forecast_accuracy where run_date <= ?", [night]
        )[0]
        item_names = {name for (name,) in query("select item_name from marts.dim_item")}
        location_names = {name for (name,) in query("select location_name from marts.dim_location")}
        # The live view answers for the wall clock: a night replayed from the past is overdue.
        (live_stale,) = query("select is_stale from marts.forecast_freshness")[0]
    dom = dump_dom(page)

    assert p50_28 < 1e6 and actual_28 < 1e6, "formatting below assumes thousands, not millions"
    assert dom.cards["runDate"] == night.isoformat()
    assert dom.cards["modelVersion"] == version
    assert dom.cards["seriesForecast"] == f"{series:,}"
    assert dom.cards["p50Next28"] == f"{p50_28:,.0f}"
    assert dom.cards["actualLast28"] == f"{actual_28:,.0f}"
    # The report says what was true once the night had run: it was published.
    assert live_stale is True and dom.cards["fresh"] == "fresh"
    shown = min(categories, 12)
    assert dom.shapes["polygon"] == 1 + shown  # a P10-P90 band per forecast chart
    # the first night has nothing scored yet: the accuracy section says so instead of a chart
    assert scored == 0 and dom.by_id["accuracy"].startswith("Accuracy trend no scored forecasts")
    assert len(dom.svgs) == 1 + shown + 1  # total, categories, movers
    assert checks > 0 and dom.by_id["dq-status"] == (
        f"{checks:,} checks: {checks - crit - warn:,} passed, {crit:,} critical and "
        f"{warn:,} warning failures"
    )
    # The movers by the ERP's names (the dbt dimensions), not by ids.
    movers = [title.rsplit(": ", 1)[0].split(" @ ") for title in dom.svg_titles if " @ " in title]
    assert movers and all(
        item in item_names and where in location_names for item, where in movers
    ), movers
    shot = tmp_path / "nightly.png"
    run_chromium("--window-size=1200,1400", f"--screenshot={shot}", page.as_uri())
    assert non_white_share(shot) > 0.03, "the screenshot of the report is (almost) blank"
    # the stage hook recorded the extract counters of this run as metrics
    rows_metrics = sum(v for k, v in metrics.items() if k.startswith("rows_extracted."))
    assert rows_metrics == extracted > 0
