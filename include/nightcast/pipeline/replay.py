"""Replay quarantined rows after a mapping fix: ``nightcast quarantine replay``.

``ops.quarantine.raw_row`` holds each rejected row exactly as it was landed (JSON of
the original strings), so the rows of one run date, source and table can be cleaned
again with the CURRENT mapping. Rows that now pass the cleaner and the table's
data-quality suite are upserted into ``raw`` and leave the quarantine, all in one
transaction; the others stay, with their new reasons. Rows the cleaner superseded by
a newer version of the same key (``duplicate_key_superseded``) are never replayed, and
a replayed row never overwrites a newer version of its key already in the warehouse.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from nightcast.cleaning.clean import QUARANTINE_COLUMNS, clean_table
from nightcast.config import Settings
from nightcast.pipeline.gate import REFERENCED
from nightcast.pipeline.runs import record_task, warehouse
from nightcast.pipeline.stages import get_mapping
from nightcast.quality import GateReport, validate_table
from nightcast.warehouse.base import Warehouse

log = logging.getLogger("nightcast.pipeline")

SUPERSEDED = "duplicate_key_superseded"
# Checks that judge a whole night, not a set of replayed rows.
NIGHT_ONLY_CHECKS = ("nightcast_freshness", "nightcast_quarantine_rate", "nightcast_volume")
IN_CHUNK = 500


@dataclass
class ReplayResult:
    """What one replay of (run date, source, table) did."""

    run_date: date
    source: str
    table: str
    candidates: int = 0
    replayed: int = 0
    older_than_warehouse: int = 0
    still_quarantined: int = 0
    superseded_kept: int = 0
    held_back: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        if self.held_back and not self.candidates:
            return (
                f"{self.source}.{self.table} {self.run_date}: held back by the data-quality "
                f"gate, so nothing of the night was loaded and its {self.held_back} rejected "
                "row(s) are not replayed (replay re-adds rows of a loaded night); fix the data "
                f"or the mapping, then rerun the night from extract_{self.source} with downstream"
            )
        text = (
            f"{self.source}.{self.table} {self.run_date}: {self.replayed} replayed into "
            f"raw.{self.table}, {self.still_quarantined} still quarantined"
        )
        if self.older_than_warehouse:
            text += f", {self.older_than_warehouse} dropped (a newer version is already loaded)"
        if self.superseded_kept:
            text += f", {self.superseded_kept} superseded duplicates kept in quarantine"
        if self.reasons:
            text += "; reasons: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.reasons.items()))
        return text


def _newer_in_warehouse(wh: Warehouse, table: str, key: str, clean: pd.DataFrame) -> set[str]:
    """Keys of ``clean`` whose warehouse row has a later ``updated_at``."""
    if "updated_at" not in clean.columns or clean.empty:
        return set()
    mine = dict(zip(clean[key].astype(str), pd.to_datetime(clean["updated_at"]), strict=True))
    keys = list(mine)
    newer: set[str] = set()
    for i in range(0, len(keys), IN_CHUNK):
        chunk = keys[i : i + IN_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        for k, stamp in wh.fetchall(
            f"select {key}, updated_at from raw.{table} where {key} in ({marks})", chunk
        ):
            ours = mine[str(k)]
            if stamp is not None and (pd.isna(ours) or pd.Timestamp(stamp) > ours):
                newer.add(str(k))
    return newer


def _audit(
    settings: Settings, wh: Warehouse, table: str, run_date: date, clean: pd.DataFrame
) -> None:
    """The table's suite on the rows about to be loaded; a critical failure aborts."""
    known: dict[str, set[str]] = {}
    for ref, col in REFERENCED.items():
        known[ref] = {r[0] for r in wh.fetchall(f"select {col} from raw.{ref}")}
        if table == ref:
            known[ref] |= set(clean[col].dropna().astype(str))
    results = validate_table(
        table,
        clean,
        run_date,
        expectations_dir=settings.expectations_dir,
        known_ids=known,
    )
    report = GateReport([r for r in results if r.expectation not in NIGHT_ONLY_CHECKS])
    report.raise_if_critical()


def _quarantine_rows(frame: pd.DataFrame, run_date: date) -> pa.Table:
    out = frame[QUARANTINE_COLUMNS].copy()
    out["run_date"] = run_date
    out["row_number"] = out["row_number"].astype("int64")
    for c in QUARANTINE_COLUMNS[2:]:
        if c != "row_number":
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    return pa.Table.from_pandas(out, preserve_index=False)


def replay_table(settings: Settings, run_date: date, source: str, table: str) -> ReplayResult:
    """Replay the quarantined rows of one (run date, source, table); see the module doc."""
    started = time.monotonic()
    mapping = get_mapping(settings, source)
    if table not in mapping.tables:
        raise LookupError(
            f"source {source!r} maps no table {table!r} (tables: {sorted(mapping.tables)})"
        )
    tm = mapping.tables[table]
    result = ReplayResult(run_date, source, table)
    with warehouse(settings) as wh:
        q = wh.df(
            "select * from ops.quarantine where run_date = ? and source = ? and table_name = ? "
            "and not held_back order by row_number",
            [run_date, source, table],
        )
        if q.empty:
            held = wh.fetchone(
                "select count(distinct row_number) from ops.quarantine where run_date = ? "
                "and source = ? and table_name = ? and held_back",
                [run_date, source, table],
            )
            result.held_back = int(held[0]) if held else 0
            log.info("replay %s", result.describe() if result.held_back else "nothing quarantined")
            return result
        superseded_rows = set(q.loc[q["reason"] == SUPERSEDED, "row_number"].astype(int))
        kept = q[q["row_number"].astype(int).isin(superseded_rows)]
        candidates = q[~q["row_number"].astype(int).isin(superseded_rows)]
        firsts = candidates.drop_duplicates("row_number")
        row_numbers = [int(n) for n in firsts["row_number"]]
        raw_rows: list[dict[str, Any]] = [json.loads(r) for r in firsts["raw_row"]]
        result.candidates = len(row_numbers)
        result.superseded_kept = len(superseded_rows)
        columns = list(dict.fromkeys(c for row in raw_rows for c in row))
        landed = pa.table(
            {c: pa.array([row.get(c) for row in raw_rows], type=pa.string()) for c in columns}
        )
        where = Path(f"ops.quarantine[run_date={run_date}, source={source}, table={table}]")
        cleaned = clean_table(landed, tm, source, run_date, where)
        requarantined = cleaned.quarantine.copy()
        if len(requarantined):
            requarantined["row_number"] = [
                row_numbers[int(p) - 1] for p in requarantined["row_number"]
            ]
        clean = cleaned.clean
        newer = _newer_in_warehouse(wh, table, tm.key, clean)
        to_load = clean[~clean[tm.key].astype(str).isin(newer)].reset_index(drop=True)
        if len(to_load):
            _audit(settings, wh, table, run_date, to_load)
        result.replayed = len(to_load)
        result.older_than_warehouse = len(clean) - len(to_load)
        result.still_quarantined = cleaned.rows_quarantined
        if len(requarantined):
            counts = requarantined.groupby(["column_name", "reason"]).size()
            result.reasons = {f"{c}:{r}": int(n) for (c, r), n in counts.items()}
        if result.candidates != (
            result.replayed + result.older_than_warehouse + result.still_quarantined
        ):
            raise AssertionError(
                f"replay {source}.{table} {run_date}: {result.candidates} quarantined rows != "
                f"{result.replayed} replayed + {result.older_than_warehouse} dropped + "
                f"{result.still_quarantined} still quarantined"
            )
        parts = [f[QUARANTINE_COLUMNS] for f in (kept, requarantined) if len(f)]
        remaining = pd.concat(parts, ignore_index=True) if parts else None
        with wh.transaction():
            if len(to_load):
                data = pa.Table.from_pandas(to_load, preserve_index=False)
                wh.upsert_arrow(f"raw.{table}", data, tm.key)
            wh.execute(
                "delete from ops.quarantine where run_date = ? and source = ? and table_name = ? "
                "and not held_back",
                [run_date, source, table],
            )
            if remaining is not None:
                wh.insert_arrow("ops.quarantine", _quarantine_rows(remaining, run_date))
            record_task(
                wh,
                run_date,
                "replay",
                source=source,
                table=table,
                rows_in=result.candidates,
                rows_out=result.replayed,
                rows_quarantined=result.still_quarantined,
                seconds=time.monotonic() - started,
                summary=result.describe(),
            )
    log.info("replay %s", result.describe())
    return result


def replay_quarantine(
    settings: Settings, run_date: date, source: str, table: str | None = None
) -> list[ReplayResult]:
    """Replay every quarantined table of (run date, source), or only ``table``."""
    if table is not None:
        return [replay_table(settings, run_date, source, table)]
    with warehouse(settings) as wh:
        tables = [
            str(r[0])
            for r in wh.fetchall(
                "select distinct table_name from ops.quarantine where run_date = ? and source = ? "
                "order by 1",
                [run_date, source],
            )
        ]
    return [replay_table(settings, run_date, source, t) for t in tables]
