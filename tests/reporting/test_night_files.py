"""The files the Nightcast page serves (``overview.night_file``), on a local folder and on S3.

A night's report and its gate folder (GX's own Data Docs site, static assets included)
are written where the pipeline writes them; the page must serve exactly those, and
nothing outside the night's folder, on either store.
"""

from __future__ import annotations

from datetime import date

import pytest

from nightcast.config import GX_DOCS, get_settings
from nightcast.quality.docs import write_gx_data_docs
from nightcast.reporting import report_path
from nightcast.reporting.overview import DQ, REPORT, NotServed, night_file
from nightcast.storage import Location

D = date(2025, 5, 1)


def test_a_nights_pages_are_served_and_nothing_beside_them(
    store_root: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NIGHTCAST_LAKE_URL", (store_root / "lake").url)
    monkeypatch.setenv("NIGHTCAST_REPORTS_URL", (store_root / "reports").url)
    settings = get_settings()
    report_path(settings, D).write_text("<!DOCTYPE html><title>report of D</title>")
    site = write_gx_data_docs([], settings.gate_docs(D) / GX_DOCS, D)
    (settings.gate_docs(D) / "index.html").write_text("the gate's page")
    (settings.lake / "models.txt").write_text("not a page")
    (settings.gate_docs(date(2025, 5, 2)) / "index.html").write_text("another night")

    assert night_file(settings, D, REPORT).read_text().endswith("report of D</title>")
    assert night_file(settings, D, DQ).read_text() == "the gate's page"  # index.html
    assert night_file(settings, D, DQ, f"{GX_DOCS}/index.html") == site
    css = [
        f
        for f in (settings.gate_docs(D) / GX_DOCS).files("*.css", recursive=True)
        if "static" in f.path
    ]
    assert css, "GX wrote no stylesheet"
    rel = css[0].relative_to(settings.gate_docs(D))
    assert night_file(settings, D, DQ, rel).read_bytes() == css[0].read_bytes()

    for outside in (
        "../date=2025-05-02/index.html",
        "../../models.txt",
        f"{GX_DOCS}/../../../models.txt",
        "/index.html",
        "gx//index.html",
        ".hidden",
        "gx/%2e%2e/index.html",
    ):
        with pytest.raises(NotServed):
            night_file(settings, D, DQ, outside)
    with pytest.raises(NotServed, match="does not exist"):
        night_file(settings, D, DQ, "gx/nothing.html")
    with pytest.raises(NotServed, match="does not exist"):
        night_file(settings, date(2025, 4, 30), REPORT)
    with pytest.raises(NotServed, match="unknown kind"):
        night_file(settings, D, "models")
