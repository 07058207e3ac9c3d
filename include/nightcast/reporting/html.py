"""The nightly report as one self-contained HTML page (inline CSS and SVG, no script, no network)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

import pandas as pd

from nightcast.forecasting.labels import feature_label
from nightcast.reporting.data import HORIZON_BUCKETS, MAX_CATEGORIES, Headline, ReportData
from nightcast.reporting.fmt import change, human, percent
from nightcast.reporting.svg import ACTUAL_COLOUR, PALETTE, Band, Line, bar_chart, time_chart
from nightcast.warehouse.names import labelled

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;
  margin:0 auto;max-width:1180px;padding:16px 24px;background:#fff}
h1{font-size:24px;margin:8px 0}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.summary{font-size:17px;margin:4px 0 12px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:150px}
.card .k{font-size:12px;color:#555;text-transform:uppercase;letter-spacing:.03em}
.card .v{font-size:22px;font-weight:600}
.ok{color:#0a7d32}.bad{color:#b3261e}.warn{color:#9a6700}
.grid{display:flex;flex-wrap:wrap;gap:8px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:14px}
th,td{border-bottom:1px solid #e5e5e5;padding:3px 10px;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
svg.chart{max-width:100%;height:auto;background:#fff}
svg .title{font-size:14px;font-weight:600}svg .tick{font-size:11px;fill:#444}
svg .label{font-size:12px;fill:#222}svg .grid{stroke:#eee}svg .axis{stroke:#888}
.note{color:#555;font-size:13px}
"""


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: set[int]) -> str:
    """An HTML table; cells are escaped, columns in ``numeric`` right-aligned."""
    head = "".join(
        f"<th{' class=n' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=n' if i in numeric else ''}>{escape(str(v))}</td>"
            for i, v in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def freshness_text(h: Headline) -> tuple[str, str]:
    """(css class, text) of the stale flag, as of run date D."""
    if h.is_stale:
        return "bad", f"STALE: {h.stale_reason}"
    return "ok", "fresh"


NOTHING = "—"


def headline_html(h: Headline) -> str:
    vs = change(h.p50_next_28, h.actual_last_28)
    cls, fresh = freshness_text(h)
    if h.published:
        sentence = (
            f"Run {h.run_date:%a %d %b %Y} ({escape(h.run_status)}) forecasts "
            f"<b>{human(h.p50_next_28)}</b> units (P50) over the next 28 days for "
            f"{h.series_forecast:,} series, {percent(vs, signed=True)} vs the last 28 days' "
            f"actuals ({human(h.actual_last_28)})."
        )
    else:
        # An unpublished run has no forecast: 0 units and -100% would be read as a forecast.
        shows = f"run {h.bi_run.isoformat()}" if h.bi_run else "no forecast yet"
        sentence = (
            f"Run {h.run_date:%a %d %b %Y} ({escape(h.run_status)}): <b>nothing published</b> "
            f"for this run date; BI shows {shows}. Actuals of the last 28 days: "
            f"{human(h.actual_last_28)}."
        )
    sentence += f" BI forecasts are <b class={cls}>{escape(fresh)}</b>."

    def forecast(text: str) -> str:
        return text if h.published else NOTHING

    cards = [
        ("run date", h.run_date.isoformat(), "runDate"),
        ("model version", h.model_version, "modelVersion"),
        ("series forecast", forecast(f"{h.series_forecast:,}"), "seriesForecast"),
        ("P50 next 7 days", forecast(human(h.p50_next_7)), "p50Next7"),
        ("P50 next 28 days", forecast(human(h.p50_next_28)), "p50Next28"),
        ("actuals last 28 days", human(h.actual_last_28), "actualLast28"),
        ("next 28 vs last 28", forecast(percent(vs, signed=True)), "changeVsActual"),
        (
            "freshness",
            "STALE" if h.is_stale else "fresh",
            "fresh",
        ),
    ]
    items = "".join(
        f'<div class="card"><div class="k">{escape(k)}</div>'
        f'<div class="v" data-metric="{key}">{escape(v)}</div></div>'
        for k, v, key in cards
    )
    return f'<p class="summary" id="summary">{sentence}</p><div class="cards">{items}</div>'


def forecast_chart(
    title: str, fc: pd.DataFrame, act: pd.DataFrame, size: tuple[int, int], colour: str
) -> str:
    xs, axs = list(fc["forecast_date"]), list(act["sales_date"])
    return time_chart(
        title,
        f"{title}: actual daily units for {len(axs)} days, then the P50 forecast for "
        f"{len(xs)} days with the P10 to P90 band.",
        lines=[
            Line("actual", axs, list(act["quantity"].astype(float)), ACTUAL_COLOUR),
            Line("P50 forecast", xs, list(fc["p50"].astype(float)), colour),
        ],
        bands=[Band("P10-P90", xs, list(fc["p10"]), list(fc["p90"]), colour)],
        y_label="units per day",
        size=size,
    )


def categories_html(data: ReportData) -> str:
    fc, act = data.category_forecast, data.category_actuals
    if fc.empty:
        return '<p class="note">no forecast for this run date</p>'
    order = fc.groupby("category")["p50"].sum().sort_values(ascending=False)
    charts = []
    for i, cat in enumerate(order.index[:MAX_CATEGORIES]):
        charts.append(
            forecast_chart(
                f"Category {cat}",
                fc[fc["category"] == cat],
                act[act["category"] == cat],
                (370, 230),
                PALETTE[i % 3],
            )
        )
    more = len(order) - MAX_CATEGORIES
    note = f'<p class="note">{more} smaller categories not shown</p>' if more > 0 else ""
    return f'<div class="grid">{"".join(charts)}</div>{note}'


def accuracy_html(acc: pd.DataFrame) -> str:
    if acc.empty:
        return (
            '<p class="note">no scored forecasts yet (actuals arrive after the forecast dates)</p>'
        )
    lines = [
        Line(label, list(part["run_date"]), list(part["wape"]), PALETTE[i % len(PALETTE)])
        for i, (_, _, label) in enumerate(HORIZON_BUCKETS)
        if len(part := acc[acc["bucket"] == label])
    ]
    chart = time_chart(
        "Forecast accuracy: WAPE by run date and horizon",
        "Weighted absolute percentage error of the P50 forecast of each published run, "
        "by horizon bucket; lower is better.",
        lines=lines,
        y_label="WAPE",
        x_label="run date",
        percent=True,
    )
    latest = acc.sort_values("run_date").groupby("bucket").tail(1).set_index("bucket")
    rows = [
        (label, latest.at[label, "run_date"].isoformat(), percent(latest.at[label, "wape"]))
        for _, _, label in HORIZON_BUCKETS
        if label in latest.index
    ]
    return chart + table(["horizon", "latest scored run", "WAPE"], rows, {2})


def movers_html(data: ReportData) -> str:
    mv = data.movers
    if mv.empty:
        return '<p class="note">no forecast for this run date</p>'
    vs_prev = data.previous_run is not None
    basis = f"previous published run {data.previous_run}" if vs_prev else "last 28 days of actuals"
    key = "change_vs_previous" if vs_prev else "change_vs_actual"
    bars = [(f"{r.item_name} @ {r.location_name}", float(getattr(r, key))) for r in mv.itertuples()]
    chart = bar_chart(
        f"Biggest movers: 28-day P50 change vs {basis}",
        f"The {len(bars)} series whose 28-day P50 total changed most vs the {basis}.",
        bars,
        x_label="change in 28-day P50 units",
    )
    rows = [
        (
            labelled(r.item_id, r.item_name),
            labelled(r.location_id, r.location_name),
            human(r.p50_28),
            human(r.previous_p50_28),
            percent(change(r.p50_28, r.previous_p50_28), signed=True),
            human(r.actual_28),
            percent(change(r.p50_28, r.actual_28), signed=True),
        )
        for r in mv.itertuples()
    ]
    headers = ["item", "location", "P50 next 28d", "previous run", "vs previous"]
    headers += ["actual last 28d", "vs actual"]
    return chart + table(headers, rows, {2, 3, 4, 5, 6})


def dq_html(data: ReportData) -> str:
    dq = data.dq
    failed = dq[~dq["success"].astype(bool)]
    crit = int((failed["severity"] == "critical").sum())
    warn = len(failed) - crit
    cls = "bad" if crit else ("warn" if warn else "ok")
    parts = [
        f'<p id="dq-status" class="{cls}">{len(dq):,} checks: {len(dq) - len(failed):,} passed, '
        f"{crit:,} critical and {warn:,} warning failures</p>"
    ]
    if len(failed):
        rows = failed[["suite", "expectation", "column_name", "severity", "observed_value"]]
        parts.append(
            table(
                ["suite", "check", "column", "severity", "observed"], rows.fillna("").values, set()
            )
        )
    q = data.quarantine
    total = int(q["rows"].sum()) if len(q) else 0
    held = bool(len(q)) and bool(q["held_back"].any())
    if held:
        # The gate stopped the night: the rejects were recorded, and nothing else was loaded.
        status = (
            f"{total:,} input rows rejected by the cleaner; the night was held back by the "
            "data-quality gate, so none of the night's rows was loaded (ops.quarantine, held_back)"
        )
    else:
        status = f"{total:,} input rows quarantined"
    parts.append(f'<p id="quarantine-status">{escape(status)}</p>')
    if len(q):
        rows = q[["source", "table_name", "rows", "reasons"]].values
        parts.append(table(["source", "table", "rows", "top reasons"], rows, {2}))
    sd = data.schema_drift
    parts.append(f"<p>{len(sd):,} schema changes seen at extract</p>")
    if len(sd):
        parts.append(table(["source", "table", "column", "change"], sd.values, set()))
    return "".join(parts)


def drift_html(fd: pd.DataFrame | None) -> str:
    if fd is None or fd.empty:
        return '<p id="drift-status" class="note">no drift data</p>'
    statuses = fd["status"].astype(str).value_counts()
    summary = ", ".join(f"{n} {s}" for s, n in statuses.items())
    rows = [
        (
            feature_label(r.feature),
            r.feature,
            f"{r.psi:.3f}",
            "" if pd.isna(r.ks) else f"{r.ks:.3f}",
            r.status,
        )
        for r in fd.itertuples()
    ]
    return f'<p id="drift-status">{len(fd)} features: {escape(summary)}</p>' + table(
        ["feature", "model name", "PSI", "KS", "status"], rows, {2, 3}
    )


def render(data: ReportData, generated_at: datetime) -> str:
    """The whole page for run date D."""
    h = data.headline
    cls, fresh = freshness_text(h)
    total = forecast_chart(
        "Total demand: actuals and forecast (all series)",
        data.totals,
        data.actuals,
        (1100, 340),
        PALETTE[0],
    )
    sections = [
        ("headline", "Summary", headline_html(h)),
        ("total", "Total forecast", total),
        ("categories", "By category", categories_html(data)),
        ("accuracy", "Accuracy trend", accuracy_html(data.accuracy)),
        ("movers", "Biggest movers", movers_html(data)),
        ("quality", "Data quality", dq_html(data)),
        ("drift", "Feature drift", drift_html(data.feature_drift)),
        ("freshness", "Freshness", f'<p id="freshness-status" class="{cls}">{escape(fresh)}</p>'),
    ]
    body = "".join(f'<section id="{sid}"><h2>{t}</h2>{html}</section>' for sid, t, html in sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Nightcast nightly report {h.run_date.isoformat()}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<h1>Nightcast nightly report: run date {h.run_date.isoformat()}</h1>{body}"
        f'<p class="note">Generated {generated_at:%Y-%m-%d %H:%M} from the warehouse. '
        "Bands sum each series' P10 and P90, so they are wider than the total's own interval.</p>"
        "</body></html>"
    )
