"""The Nightcast page of the Airflow UI as one HTML document (inline CSS, no script).

Links are relative (``nights/D/report``), so the page works wherever the API
server mounts it, behind a proxy's path prefix included. Every value is escaped.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

import pandas as pd

from nightcast.forecasting.metrics import BASELINE_LABELS
from nightcast.reporting.fmt import percent
from nightcast.reporting.html import table
from nightcast.reporting.overview import DQ, REPORT, Model, NightView, Overview

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;
  margin:0;padding:12px 20px;background:#fff}
h1{font-size:21px;margin:4px 0 8px}h2{font-size:17px;margin:22px 0 6px;border-bottom:1px solid #ddd}
.verdict{font-size:16px;margin:6px 0 10px;padding:8px 12px;border-radius:6px}
.verdict.ok{background:#e8f5ec}.verdict.bad{background:#fdecea}.verdict.warn{background:#fff4d6}
.ok{color:#0a7d32}.bad{color:#b3261e}.warn{color:#9a6700}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border-bottom:1px solid #e5e5e5;padding:4px 8px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
details{margin:4px 0}summary{cursor:pointer}
.note{color:#555;font-size:12px}
"""

NOTHING = "—"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else NOTHING


def versus_text(model: Model | None) -> str:
    """A model's holdout WAPE against the best simple baseline's, in words."""
    if model is None:
        return NOTHING
    bt = model.backtest
    if bt is None or bt.wape is None:
        return "not evaluated yet (the weekly retrain compares models with the baselines)"
    best = bt.best_baseline
    if best is None:
        return f"WAPE {percent(bt.wape)}; no baseline on the same holdout"
    name, wape = best
    return (
        f"WAPE {percent(bt.wape)} vs {BASELINE_LABELS.get(name, name)} {percent(wape)} "
        f"({bt.versus.split(', ')[0]})"
    )


def verdict_html(ov: Overview) -> str:
    """The answer to "is 7am safe?": what BI serves and whether it is fresh."""
    served = ov.bi_run
    if served is None:
        shows = "BI has no published forecast yet"
    else:
        shows = (
            f"BI serves run {served.run_date.isoformat()} (published {_when(served.published_at)}, "
            f"model {served.model_version or NOTHING})"
        )
    if ov.is_stale is None:
        cls, state = "warn", f"freshness unknown: {ov.stale_reason}"
    elif ov.is_stale:
        cls, state = "bad", f"STALE: {ov.stale_reason}"
    else:
        cls, state = "ok", "fresh"
    return f'<p id="verdict" class="verdict {cls}">{escape(shows)}: <b>{escape(state)}</b></p>'


def model_html(ov: Overview) -> str:
    champ = ov.champion
    if champ is None:
        line = "No champion registered yet: the first night trains one."
        versus = NOTHING
    else:
        trained = champ.trained_for_run.isoformat() if champ.trained_for_run else "?"
        line = f'Champion <b data-field="champion">{escape(champ.version)}</b>, trained for run {trained}'
        if champ.status_reason:
            line += f" ({escape(champ.status_reason)})"
        versus = versus_text(champ)
    parts = [f'<p id="champion">{line}.</p>']
    parts.append(
        f'<p>Holdout accuracy vs the best simple baseline: <span id="champion-vs-baseline">'
        f"{escape(versus)}</span></p>"
    )
    for fb in ov.fallbacks:
        until = fb.fallback_until.isoformat() if fb.fallback_until else "?"
        parts.append(
            f'<p class="note">Fallback {escape(fb.version)} until {until}: '
            "<code>nightcast model rollback</code> returns to it.</p>"
        )
    return "".join(parts)


def _status_cell(v: NightView) -> str:
    status = v.night.status
    cls = "ok" if status == "published" else ("warn" if status == "running" else "bad")
    title = f' title="{escape(v.night.message)}"' if v.night.message else ""
    return f'<td data-field="status" class="{cls}"{title}>{escape(status)}</td>'


def _gate_text(v: NightView) -> tuple[str, str]:
    c = v.checks
    if c.total == 0:
        return "warn", "not run"
    cls = "bad" if c.critical else ("warn" if c.failed else "ok")
    return cls, f"{c.passed}/{c.total} passed, {c.critical} critical"


def _drift_text(v: NightView) -> tuple[str, str]:
    parts = []
    drifted = v.drifted
    checked = 0 if v.feature_drift is None else len(v.feature_drift)
    if not checked:
        parts.append("features not checked (no monitor run)")
    elif drifted.empty:
        parts.append(f"0 of {checked} features")
    else:
        worst = ", ".join(f"{r.feature} {r.status}" for r in drifted.head(3).itertuples())
        parts.append(f"{len(drifted)} of {checked} features: {worst}")
    if len(v.schema_drift):
        parts.append(f"{len(v.schema_drift)} schema change(s)")
    breach = bool(len(drifted)) and bool((drifted["status"] == "breach").any())
    if breach:
        cls = "bad"
    elif len(drifted) or len(v.schema_drift):
        cls = "warn"
    else:
        cls = "ok" if checked else ""
    return cls, "; ".join(parts)


def _links(v: NightView) -> str:
    day = v.night.run_date.isoformat()
    links = []
    if v.report:
        links.append(f'<a href="nights/{day}/{REPORT}" target="_blank">report</a>')
    if v.gate_page:
        links.append(f'<a href="nights/{day}/{DQ}/index.html" target="_blank">gate</a>')
    if v.data_docs:
        links.append(f'<a href="nights/{day}/{DQ}/gx/index.html" target="_blank">Data Docs</a>')
    return " · ".join(links) or NOTHING


def night_row(v: NightView) -> str:
    n = v.night
    gate_cls, gate = _gate_text(v)
    drift_cls, drift = _drift_text(v)
    quarantined = f"{v.quarantined:,}" + (" (held back)" if v.held_back else "")
    wape = NOTHING if v.wape_1_7 is None else f"{percent(v.wape_1_7)} ({v.scored:,} forecasts)"
    cells = [
        f'<td data-field="night">{n.run_date.isoformat()}</td>',
        _status_cell(v),
        f'<td data-field="published">{_when(n.published_at)}</td>',
        f'<td data-field="model">{escape(n.model_version or NOTHING)}</td>',
        f'<td data-field="loaded" class="n">{v.intake.loaded:,}</td>',
        f'<td data-field="quarantined" class="n">{quarantined}</td>',
        f'<td data-field="gate" class="{gate_cls}">{escape(gate)}</td>',
        f'<td data-field="wape" class="n">{escape(wape)}</td>',
        f'<td data-field="vs-baseline">{escape(versus_text(v.model))}</td>',
        f'<td data-field="drift" class="{drift_cls}">{escape(drift)}</td>',
        f'<td data-field="pages">{_links(v)}</td>',
    ]
    return f'<tr data-night="{n.run_date.isoformat()}">{"".join(cells)}</tr>'


HEADERS = (
    "night",
    "status",
    "published",
    "model",
    "rows loaded",
    "quarantined",
    "quality gate",
    "live WAPE 1-7 days",
    "model's holdout vs best baseline",
    "drift",
    "pages",
)


def _frame_table(df: pd.DataFrame, headers: list[str], numeric: set[int]) -> str:
    return table(headers, df.fillna("").astype(str).values.tolist(), numeric)


def details_html(v: NightView) -> str:
    """The night's particulars: message, quarantine reasons, failed checks, drift."""
    n = v.night
    day = n.run_date.isoformat()
    parts = []
    if n.message:
        parts.append(f"<p>{escape(n.message)}</p>")
    if v.intake.extracted or v.intake.loaded:
        loaded = f"Extracted {v.intake.extracted:,} rows, loaded {v.intake.loaded:,}"
    else:
        loaded = "Nothing was loaded"
    parts.append(f"<p>{loaded}; {n.series_count:,} series, {n.rows_forecast:,} forecast rows.</p>")
    if len(v.quarantine):
        q = v.quarantine.assign(held_back=v.quarantine["held_back"].map({True: "yes", False: ""}))
        parts.append(
            _frame_table(
                q[["source", "table_name", "rows", "reasons", "held_back"]],
                ["source", "table", "rows", "top reasons", "held back"],
                {2},
            )
        )
    if len(v.failed_checks):
        cols = ["suite", "expectation", "column_name", "severity", "observed_value"]
        parts.append(
            _frame_table(
                v.failed_checks[cols], ["suite", "check", "column", "severity", "observed"], set()
            )
        )
    if len(v.drifted):
        rows = [
            (r.feature, f"{r.psi:.3f}", "" if pd.isna(r.ks) else f"{r.ks:.3f}", r.status)
            for r in v.drifted.itertuples()
        ]
        parts.append(table(["feature", "PSI", "KS", "drift"], rows, {1, 2}))
    if len(v.schema_drift):
        parts.append(_frame_table(v.schema_drift, ["source", "table", "column", "change"], set()))
    summary = f"{day}: {escape(n.status)}"
    return f'<details id="night-{day}"><summary>{summary}</summary>{"".join(parts)}</details>'


def render_page(ov: Overview, generated_at: datetime) -> str:
    """The whole page."""
    if not ov.nights:
        body = f'<p id="verdict" class="verdict warn">No night has run yet in {escape(ov.warehouse)}.</p>'
    else:
        rows = "".join(night_row(v) for v in ov.nights)
        head = "".join(f"<th>{escape(h)}</th>" for h in HEADERS)
        shown = f"Last {len(ov.nights)} of {ov.total_nights} night(s)"
        body = (
            verdict_html(ov)
            + f"<h2>Model in service</h2>{model_html(ov)}"
            + f'<h2>{shown}</h2><table id="nights"><thead><tr>{head}</tr></thead>'
            + f"<tbody>{rows}</tbody></table>"
            + "<h2>Details</h2>"
            + "".join(details_html(v) for v in ov.nights)
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Nightcast</title><style>{CSS}</style></head><body>"
        f"<h1>Nightcast: is 7am safe?</h1>{body}"
        f'<p class="note">Read from {escape(ov.warehouse)} at {generated_at:%Y-%m-%d %H:%M}. '
        "Live WAPE: the P50 error of published forecasts 1-7 days ahead, as the monitor of "
        "that night scored them over its lookback. Holdout vs best baseline: the model's "
        "weekly evaluation against seasonal naive and moving-average forecasts of the same "
        "holdout. Drift: features whose PSI warns or breaches.</p></body></html>"
    )
