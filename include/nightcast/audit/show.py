"""``nightcast audit show``: the forecast a run published for an item, location or date,
then the provenance of each publication event (model, code, checksums, inputs)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from nightcast.audit.records import find_publications
from nightcast.warehouse.base import Warehouse
from nightcast.warehouse.names import labelled, names

_ROW_COLUMNS = ("item_id", "location_id", "forecast_date", "horizon", "p10", "p50", "p90")


def forecast_rows(
    wh: Warehouse,
    run_date: date,
    *,
    item: str | None = None,
    location: str | None = None,
    forecast_date: date | None = None,
) -> list[dict[str, Any]]:
    """Run ``run_date``'s rows of ``forecast.forecasts`` for the item, location and date
    asked, one per series and forecast date, in series then date order."""
    where: list[str] = ["run_date = ?"]
    params: list[Any] = [run_date]
    for column, value in (
        ("item_id", item),
        ("location_id", location),
        ("forecast_date", forecast_date),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    cols = [*_ROW_COLUMNS, "model_version"]
    rows = wh.fetchall(
        f"select {', '.join(cols)} from forecast.forecasts where {' and '.join(where)} "
        "order by item_id, location_id, forecast_date",
        params,
    )
    return [dict(zip(cols, r, strict=True)) for r in rows]


def _day(value: Any) -> str:
    return value.date().isoformat() if hasattr(value, "date") else str(value)


def _moment(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if hasattr(value, "strftime") else str(value)


def format_forecast(rows: list[dict[str, Any]], found: dict[str, dict[str, str]]) -> list[str]:
    """One block per series: its name, then a line per forecast date."""
    out: list[str] = []
    series: tuple[str, str] | None = None
    for r in rows:
        if (r["item_id"], r["location_id"]) != series:
            series = (r["item_id"], r["location_id"])
            item = labelled(series[0], found["item"].get(series[0]))
            where = labelled(series[1], found["location"].get(series[1]))
            out.append(f"  forecast of {item} at {where}:")
            out.append(f"    {'date':<10}  {'h':>3}  {'P10':>9}  {'P50':>9}  {'P90':>9}  model")
        out.append(
            f"    {_day(r['forecast_date']):<10}  {r['horizon']:>3}  {r['p10']:>9,.2f}  "
            f"{r['p50']:>9,.2f}  {r['p90']:>9,.2f}  {r['model_version']}"
        )
    return out


def format_inputs(snapshot: str | None, files: bool) -> list[str]:
    """The input files of one event: counted, or (``files``) each with its sha256."""
    listed = json.loads(snapshot) if snapshot else []
    missing = sum(1 for f in listed if not f.get("sha256"))
    rows = sum(int(f.get("rows") or 0) for f in listed)
    kinds = sorted({f"{f['source']}.{f['table']}" for f in listed})
    text = f"  inputs:   {len(listed)} file(s), {rows:,} rows, "
    text += f"{len(listed) - missing} sha256 recorded" + (f", {missing} MISSING" if missing else "")
    if not files:
        shown = ", ".join(kinds[:6]) + (f" and {len(kinds) - 6} more" if len(kinds) > 6 else "")
        return [f"{text} ({shown}); --files lists each with its sha256"] if listed else [text]
    out = [text]
    for f in listed:
        out.append(
            f"    {f['source']}.{f['table']}: {f['rows']} rows, sha256 {f['sha256'] or 'missing'}"
            f"  {f['path']}"
        )
    return out


def show_publications(
    wh: Warehouse,
    *,
    run_date: date | None = None,
    item: str | None = None,
    location: str | None = None,
    forecast_date: date | None = None,
    files: bool = False,
) -> tuple[str, int]:
    """(the text of ``nightcast audit show``, number of events). Newest event first; the
    forecast rows asked for come first, once per run, when an item, location or date is
    asked (a run date alone would list the whole run)."""
    events = find_publications(
        wh, run_date=run_date, item=item, location=location, forecast_date=forecast_date
    )
    if not events:
        return "no audit publication matches", 0
    asked = any(v is not None for v in (item, location, forecast_date))
    shown_runs: set[Any] = set()
    out: list[str] = []
    for e in events:
        run = e["run_date"]
        out.append(
            f"run {_day(run)}: {e['decision']} at {_moment(e['decided_at'])} by {e['actor']}"
            + (f" ({e['reason']})" if e["reason"] else "")
        )
        if asked and run in shown_runs:
            out.append("  forecast rows: as above")
        elif asked:
            shown_runs.add(run)
            rows = forecast_rows(wh, run, item=item, location=location, forecast_date=forecast_date)
            found = {
                "item": names(wh, "item", (r["item_id"] for r in rows)),
                "location": names(wh, "location", (r["location_id"] for r in rows)),
            }
            out.extend(format_forecast(rows, found))
        out.append(f"  event:    {e['event_id']}")
        out.append(f"  model:    {e['model_version'] or '-'}")
        out.append(f"  params:   {e['model_params'] or '-'}")
        out.append(f"  code:     {e['code_version'] or '-'}")
        out.append(
            f"  checksum: the run's {e['forecast_rows']:,} forecast rows, "
            f"sha256 {e['forecast_checksum']}"
        )
        out.extend(format_inputs(e["input_snapshot"], files))
    return "\n".join(out), len(events)
