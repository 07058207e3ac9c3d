"""Map landed source rows onto a canonical table; quarantine what cannot be used.

Every input row ends up in exactly one place: the clean frame, or the
quarantine frame with a reason per failing column. ``rows_in == clean +
quarantined`` is checked before anything is returned.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from nightcast.cleaning.parsers import flag_bad_encoding, parse_date, parse_number, parse_timestamp
from nightcast.errors import DeterministicError
from nightcast.sources.mapping import ColumnRule, TableMapping

log = logging.getLogger("nightcast.cleaning")

QUARANTINE_COLUMNS = [
    "run_date",
    "source",
    "table_name",
    "row_number",
    "natural_key",
    "column_name",
    "reason",
    "raw_value",
    "raw_row",
]


class SchemaDriftError(ValueError, DeterministicError):
    """The landed file lacks a column the mapping needs: fixed by re-extracting after the fix."""

    rerun_from = "extract"

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.sources = (source,)


@dataclass
class CleanResult:
    """One source table for one run: clean rows, quarantined rows and counts."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: int
    unexpected_columns: list[str] = field(default_factory=list)

    @property
    def rows_quarantined(self) -> int:
        return int(self.quarantine["row_number"].nunique()) if len(self.quarantine) else 0


def _prepare(rule: ColumnRule, raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Normalise, trim and null-token one column; returns (text, bad_encoding mask)."""
    text = raw.astype("string")
    if rule.normalize:
        # NFKC folds full-width digits and no-break spaces that Excel-made exports carry.
        text = text.str.normalize(rule.normalize)
    bad_encoding = flag_bad_encoding(text)
    stripped = text.str.strip()
    if rule.trim:
        text = stripped
    # Null tokens match after trimming either way: ' NULL ' is still a null.
    return text.mask(stripped.isin(rule.null_tokens)), bad_encoding


def _parse(
    rule: ColumnRule, raw: pd.Series, source: str, timezone: str = "UTC"
) -> tuple[pd.Series, pd.Series]:
    """Parse one column; returns (values, reason per row or None)."""
    reasons = pd.Series(None, index=raw.index, dtype="object")
    text, bad_encoding = _prepare(rule, raw)
    reasons[bad_encoding] = "bad_encoding"
    if rule.values is not None:
        mapped = text.map(rule.values)
        unknown = text.notna() & mapped.isna()
        reasons[unknown & reasons.isna()] = "unknown_value"
        text = mapped.astype("string")
    if rule.default is not None:
        text = text.fillna(str(rule.default))
    values: pd.Series
    parsed_reasons: pd.Series | None = None
    if rule.type == "id":
        values = (source + ":" + text).astype("string")
    elif rule.type == "string":
        values = text
    elif rule.type in ("float", "int"):
        values, parsed_reasons = parse_number(text, rule.decimal, rule.thousands, rule.currency)
        if rule.type == "int":
            fraction = values.notna() & (values != np.floor(values))
            parsed_reasons = parsed_reasons.mask(fraction & parsed_reasons.isna(), "not_an_integer")
            values = values.where(~fraction).astype("Int64")
        elif rule.scale is not None:
            values = values * rule.scale
    elif rule.type == "date":
        values, parsed_reasons = parse_date(text, rule.formats, rule.excel_serial, timezone)
    else:
        values, parsed_reasons = parse_timestamp(
            text, rule.formats, rule.timezone, timezone, rule.excel_serial
        )
    if parsed_reasons is not None:
        reasons = reasons.fillna(parsed_reasons) if reasons.notna().any() else parsed_reasons
    missing = values.isna() & reasons.isna()
    if rule.required:
        reasons[missing] = "missing_required"
    return values, reasons


def deployment_timezone() -> str:
    """The zone every timestamp is stored in (``NIGHTCAST_TIMEZONE``, default UTC)."""
    return os.environ.get("NIGHTCAST_TIMEZONE", "UTC")


def clean_table(
    landed: pa.Table,
    table: TableMapping,
    source: str,
    run_date: date,
    landed_path: Path,
    timezone: str | None = None,
) -> CleanResult:
    """Clean one landed table. Rows keep their 1-based position in the landed file.

    Timestamps are normalised to ``timezone`` (default: the deployment's zone).
    """
    zone = timezone or deployment_timezone()
    raw = (
        landed.to_pandas(types_mapper=pd.ArrowDtype).astype("string")
        if landed.num_rows
        else pd.DataFrame({c: pd.Series([], dtype="string") for c in landed.column_names})
    )
    raw.index = pd.RangeIndex(1, len(raw) + 1, name="row_number")
    needed = {r.source_column for r in table.columns.values() if r.source_column}
    absent = sorted(needed - set(raw.columns))
    if absent:
        raise SchemaDriftError(
            f"source {source!r} table {table.table!r}: landed file {landed_path} has no column(s) "
            f"{absent}; the ERP schema changed or the mapping is wrong. Columns present: {sorted(raw.columns)}",
            source,
        )
    unexpected = sorted(set(raw.columns) - needed)
    out: dict[str, pd.Series] = {}
    reasons: dict[str, pd.Series] = {}
    for name, rule in table.columns.items():
        col = (
            raw[rule.source_column]
            if rule.source_column
            else pd.Series([rule.value] * len(raw), index=raw.index, dtype="string")
        )
        out[name], reasons[name] = _parse(rule, col, source, zone)
    clean = pd.DataFrame(out, index=raw.index)
    clean.insert(0, "source", source)
    clean["_run_date"] = pd.Timestamp(run_date)

    reason_frame = pd.DataFrame(reasons, index=raw.index)
    bad_rows = reason_frame.notna().any(axis=1)
    key = table.key
    # Older versions of a key in the same batch are superseded, not lost: they go
    # to quarantine with their own reason so the reconciliation still balances.
    order_col = "updated_at" if "updated_at" in clean.columns else None
    ok = clean[~bad_rows]
    sort_cols = [key, order_col] if order_col else [key]
    ranked = ok.sort_values(sort_cols, kind="stable", na_position="first")
    superseded = ranked.index[ranked.duplicated(subset=[key], keep="last")]
    reason_frame.loc[superseded, key] = "duplicate_key_superseded"

    quarantined_idx = reason_frame.index[reason_frame.notna().any(axis=1)]
    quarantine = _quarantine_frame(
        raw, reason_frame.loc[quarantined_idx], clean[key], table, source, run_date
    )
    clean = clean.drop(index=quarantined_idx).sort_values(key, kind="stable").reset_index(drop=True)
    result = CleanResult(clean, quarantine, len(raw), unexpected)
    if len(clean) + result.rows_quarantined != len(raw):
        raise AssertionError(
            f"{source}.{table.table}: reconciliation failed: {len(raw)} read != "
            f"{len(clean)} clean + {result.rows_quarantined} quarantined"
        )
    return result


def _quarantine_frame(
    raw: pd.DataFrame,
    reasons: pd.DataFrame,
    keys: pd.Series,
    table: TableMapping,
    source: str,
    run_date: date,
) -> pd.DataFrame:
    long = reasons.stack().rename("reason").reset_index()
    long = long[long["reason"].notna()].reset_index(drop=True)
    if long.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in QUARANTINE_COLUMNS})
    long.columns = pd.Index(["row_number", "column_name", "reason"])
    src_col = {n: r.source_column for n, r in table.columns.items()}
    raw_rows = raw.loc[long["row_number"]]
    long["raw_value"] = [
        None if src_col[c] is None else raw_rows.iloc[i][src_col[c]]
        for i, c in enumerate(long["column_name"])
    ]
    long["raw_row"] = [
        json.dumps({k: (None if pd.isna(v) else str(v)) for k, v in row.items()})
        for row in raw_rows.to_dict("records")
    ]
    long["natural_key"] = (
        keys.reindex(long["row_number"])
        .astype("object")
        .where(lambda s: s.notna(), None)
        .to_numpy()
    )
    long["run_date"] = pd.Timestamp(run_date)
    long["source"] = source
    long["table_name"] = table.table
    long["raw_value"] = long["raw_value"].map(lambda v: None if v is None or pd.isna(v) else str(v))
    return long[QUARANTINE_COLUMNS]
