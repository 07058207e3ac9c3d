"""Checks GX Core cannot express on one DataFrame: cross-table keys, run-date freshness,
quarantine rate. They return the same :class:`CheckResult` as the GX suites."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd

from nightcast.quality.results import CRITICAL, CheckResult, Offending

MAX_EXAMPLES = 3


def format_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return "null"
    if isinstance(value, pd.Timestamp | datetime):
        ts = pd.Timestamp(value)
        if ts == ts.normalize():
            return ts.date().isoformat()
        return ts.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    try:
        if pd.isna(value):
            return "null"
    except (TypeError, ValueError):
        pass
    return str(value)


def format_examples(
    df: pd.DataFrame, positions: Sequence[int], columns: Sequence[str], key: str | None
) -> str:
    """``row 2 order_line_id=demo:1 quantity=-4.0; ...`` for the first few positions."""
    shown = [c for c in dict.fromkeys([*([key] if key else []), *columns]) if c in df.columns]
    parts = []
    for pos in list(positions)[:MAX_EXAMPLES]:
        if not 0 <= pos < len(df):
            continue
        cells = " ".join(f"{c}={format_value(df[c].iat[pos])}" for c in shown)
        parts.append(f"row {pos} {cells}".rstrip())
    return "; ".join(parts)


def run_date_from(df: pd.DataFrame) -> date | None:
    if "_run_date" in df.columns and len(df) and pd.notna(df["_run_date"].iat[0]):
        return pd.Timestamp(df["_run_date"].iat[0]).date()
    return None


def check_referential_integrity(
    df: pd.DataFrame,
    column: str,
    known_ids: Collection[str],
    table: str,
    *,
    references: str = "",
    run_date: date | None = None,
    severity: str = CRITICAL,
    key: str | None = None,
) -> CheckResult:
    """Every non-null ``df[column]`` must be in ``known_ids``.

    ``known_ids`` should be the ids already in the warehouse plus tonight's batch of the
    referenced table: an order line may reference an item created today.
    """
    ref = references or "reference"
    name = (
        f"nightcast_referential_integrity_{ref}"
        if references
        else "nightcast_referential_integrity"
    )
    run_date = run_date or run_date_from(df)
    if column not in df.columns:
        return CheckResult(
            run_date=run_date,
            suite=table,
            expectation=name,
            column_name=column,
            severity=severity,
            success=False,
            observed_value="column missing",
            details=f"{table} has no column {column!r}",
        )
    values = df[column]
    known = known_ids if isinstance(known_ids, set | frozenset) else set(known_ids)
    bad = values.notna() & ~values.isin(known)
    n_bad = int(bad.sum())
    n_checked = int(values.notna().sum())
    if not n_bad:
        return CheckResult(
            run_date=run_date,
            suite=table,
            expectation=name,
            column_name=column,
            severity=severity,
            success=True,
            observed_value=f"0 unknown of {n_checked}",
            details=f"all {column} values exist in {ref}",
        )
    positions = [int(p) for p in bad.to_numpy().nonzero()[0]]
    distinct = values[bad].unique()
    sample_ids = ", ".join(format_value(v) for v in distinct[:MAX_EXAMPLES])
    top = values[bad].value_counts(sort=True).head(MAX_EXAMPLES)
    return CheckResult(
        run_date=run_date,
        suite=table,
        expectation=name,
        column_name=column,
        severity=severity,
        success=False,
        observed_value=f"{n_bad} unknown of {n_checked}",
        details=f"{n_bad} {table} rows reference {column} not in {ref} ({len(distinct)} "
        f"distinct: {sample_ids}), e.g. {format_examples(df, positions, [column], key)}",
        rule=f"every {column} exists in {ref}",
        offending=tuple(Offending(column, format_value(v), int(n)) for v, n in top.items()),
    )


def check_freshness(
    df: pd.DataFrame,
    column: str,
    run_date: date,
    max_age_days: int,
    *,
    table: str = "",
    severity: str = CRITICAL,
) -> CheckResult:
    """The newest ``df[column]`` must be at most ``max_age_days`` before ``run_date``.

    An empty frame passes: a source with no changes tonight is not an error here (the
    extract-window reconciliation is where a silent source gets noticed).
    """
    suite = table or "unknown"
    name = "nightcast_freshness"
    if column not in df.columns:
        return CheckResult(
            run_date=run_date,
            suite=suite,
            expectation=name,
            column_name=column,
            severity=severity,
            success=False,
            observed_value="column missing",
            details=f"{suite} has no column {column!r}",
        )
    stamps = pd.to_datetime(df[column], errors="coerce", utc=True).dropna()
    if stamps.empty:
        return CheckResult(
            run_date=run_date,
            suite=suite,
            expectation=name,
            column_name=column,
            severity=severity,
            success=True,
            observed_value="no rows",
            details=f"no {column} values tonight; freshness not assessed",
        )
    newest = stamps.max().tz_convert(None)
    # The run closes business day D, so anything updated on D counts as age 0.
    age_days = (pd.Timestamp(run_date) - newest.normalize()).days
    observed = f"max {column} {format_value(newest)} ({age_days} days before {run_date})"
    ok = age_days <= max_age_days
    details = (
        f"newest {column} is within {max_age_days} days of the run date"
        if ok
        else f"{suite} is stale: newest {column} is {format_value(newest)}, "
        f"{age_days} days before run date {run_date} (max {max_age_days}); "
        f"the extract may have read an old snapshot or a wrong window"
    )
    rule = f"newest {column} at most {max_age_days} days before the run date"
    return CheckResult(
        run_date=run_date,
        suite=suite,
        expectation=name,
        column_name=column,
        severity=severity,
        success=ok,
        observed_value=observed,
        details=details,
        rule=rule,
    )


def check_quarantine_rate(
    rows_in: int,
    rows_quarantined: int,
    threshold: float,
    *,
    table: str = "",
    run_date: date | None = None,
    severity: str = CRITICAL,
) -> CheckResult:
    """Share of input rows the cleaner rejected must stay under ``threshold``."""
    suite = table or "unknown"
    rate = rows_quarantined / rows_in if rows_in > 0 else 0.0
    ok = rate < threshold or rows_quarantined == 0
    observed = f"{rate:.2%} ({rows_quarantined} of {rows_in})"
    details = (
        f"quarantine rate under {threshold:.2%}"
        if ok
        else f"{rows_quarantined} of {rows_in} {suite} rows quarantined ({rate:.2%}, "
        f"threshold {threshold:.2%}); see ops.quarantine for the reasons"
    )
    rule = f"quarantine rate under {threshold:.2%}"
    return CheckResult(
        run_date=run_date,
        suite=suite,
        expectation="nightcast_quarantine_rate",
        column_name=None,
        severity=severity,
        success=ok,
        observed_value=observed,
        details=details,
        rule=rule,
    )
