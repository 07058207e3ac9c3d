"""A self-contained HTML page of one night's gate results.

GX Data Docs need validation results stored in a context with a filesystem docs site;
the gate runs on an ephemeral context, so it writes this single page instead, which
the lake can serve as ``<lake>/dq_docs/date=D/index.html``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from nightcast.quality.results import CRITICAL, CheckResult, GateReport
from nightcast.storage import Location, location

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}
tr.fail-critical td{background:#fde2e2} tr.fail-warning td{background:#fff4d6}
.ok{color:#176b2c}.bad{color:#a30000}
"""


def write_html_report(
    results: Iterable[CheckResult], folder: Location | Path, run_date: date
) -> Location:
    """Write ``folder/index.html`` (failures first) and return its path."""
    report = GateReport(list(results))
    ordered = sorted(
        report.results,
        key=lambda r: (r.success, r.severity != CRITICAL, r.suite, r.column_name or ""),
    )
    rows = []
    for r in ordered:
        css = "" if r.success else f"fail-{r.severity}"
        status = '<span class="ok">pass</span>' if r.success else '<span class="bad">FAIL</span>'
        cells = [r.suite, r.column_name or "", r.expectation, r.severity]
        rows.append(
            f'<tr class="{css}"><td>{status}</td>'
            + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
            + f"<td>{html.escape(r.observed_value)}</td><td>{html.escape(r.details)}</td></tr>"
        )
    verdict = "PASSED" if report.passed else "FAILED (nothing was published)"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Nightcast data quality {run_date}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Data quality {run_date}: {verdict}</h1><p>{html.escape(report.summary())}</p>"
        "<table><tr><th>result</th><th>table</th><th>column</th><th>expectation</th>"
        "<th>severity</th><th>observed</th><th>details</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
    path = location(folder) / "index.html"
    path.write_text(page)
    return path
