"""Volume check: tonight's row count per source table against a band learned from history.

The band is ``median ± max(k · MAD, min_tolerance · median)`` over the row counts of the
last ``runs`` successful (published) nights, MAD scaled by 1.4826 so ``k`` reads like a
number of standard deviations. Until ``min_runs`` nights of history exist the check
passes and says so. Declared per suite under ``meta.nightcast.volume``::

    "volume": {"runs": 14, "min_runs": 14, "k": 5, "min_tolerance": 0.5, "severity": "warning"}
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from nightcast.quality.results import SEVERITIES, WARNING, CheckResult

EXPECTATION = "nightcast_volume"
MAD_SCALE = 1.4826


@dataclass(frozen=True)
class VolumeRule:
    """``meta.nightcast.volume`` of a suite, with defaults."""

    runs: int = 14
    min_runs: int = 14
    k: float = 5.0
    min_tolerance: float = 0.5
    severity: str = WARNING

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None, where: str = "suite") -> VolumeRule:
        meta = dict(meta or {})
        unknown = set(meta) - {"runs", "min_runs", "k", "min_tolerance", "severity"}
        if unknown:
            raise ValueError(f"{where}: meta.nightcast.volume has unknown keys {sorted(unknown)}")
        runs = int(meta.get("runs", cls.runs))
        rule = cls(
            runs=runs,
            min_runs=int(meta.get("min_runs", runs)),
            k=float(meta.get("k", cls.k)),
            min_tolerance=float(meta.get("min_tolerance", cls.min_tolerance)),
            severity=str(meta.get("severity", cls.severity)),
        )
        if rule.severity not in SEVERITIES:
            raise ValueError(f"{where}: meta.nightcast.volume.severity must be one of {SEVERITIES}")
        if not 1 <= rule.min_runs <= rule.runs:
            raise ValueError(f"{where}: meta.nightcast.volume needs 1 <= min_runs <= runs")
        return rule


def volume_band(history: Sequence[int], k: float, min_tolerance: float) -> tuple[float, float]:
    """``(low, high)`` accepted row counts learned from ``history`` (non-empty)."""
    med = float(statistics.median(history))
    mad = float(statistics.median(abs(h - med) for h in history)) * MAD_SCALE
    half = max(k * mad, min_tolerance * med)
    return max(0.0, med - half), med + half


def check_volume(
    rows: int,
    history: Sequence[int],
    rule: VolumeRule,
    *,
    table: str,
    source: str,
    run_date: date | None = None,
) -> CheckResult:
    """Tonight's ``rows`` of ``source``'s ``table`` must lie in the band of ``history``.

    ``history`` is newest first; only the first ``rule.runs`` values are used.
    """
    used = list(history)[: rule.runs]
    if len(used) < rule.min_runs:
        return CheckResult(
            run_date=run_date,
            suite=table,
            expectation=EXPECTATION,
            column_name=None,
            severity=rule.severity,
            success=True,
            observed_value=f"source {source}: {rows} rows ({len(used)} of {rule.min_runs} "
            "runs of history)",
            details=f"volume band of {source}.{table} not learned yet: needs {rule.min_runs} "
            f"successful runs, has {len(used)}; not assessed",
        )
    low, high = volume_band(used, rule.k, rule.min_tolerance)
    med = statistics.median(used)
    ok = low <= rows <= high
    observed = f"source {source}: {rows} rows (band {low:.0f}..{high:.0f}, median {med:g})"
    if ok:
        details = f"{source}.{table} row count within the band of the last {len(used)} runs"
    else:
        direction = "fewer" if rows < low else "more"
        details = (
            f"{source}.{table}: {rows} rows tonight, {direction} than the band {low:.0f}..{high:.0f} "
            f"learned from the last {len(used)} successful runs (median {med:g}); "
            "a silent or stale source, a wrong extract window or a duplicated export?"
        )
    return CheckResult(
        run_date=run_date,
        suite=table,
        expectation=EXPECTATION,
        column_name=None,
        severity=rule.severity,
        success=ok,
        observed_value=observed,
        details=details,
    )
