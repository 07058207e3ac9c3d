"""Result types of the data-quality gate, shaped like ``ops.dq_results``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

CRITICAL = "critical"
WARNING = "warning"
SEVERITIES = (CRITICAL, WARNING)

# Same order as the ``ops.dq_results`` DDL in nightcast.warehouse.schema.
DQ_RESULT_COLUMNS = (
    "run_date",
    "suite",
    "expectation",
    "column_name",
    "severity",
    "success",
    "observed_value",
    "details",
)

RERUN_HINT = (
    "Fix the source or the mapping, then clear the task in the Airflow UI to rerun; "
    "BI keeps showing the last published forecast."
)


@dataclass(frozen=True)
class CheckResult:
    """One expectation or custom check evaluated on one table for one run date."""

    run_date: date | None
    suite: str
    expectation: str
    column_name: str | None
    severity: str
    success: bool
    observed_value: str
    details: str

    def describe(self) -> str:
        column = self.column_name or "-"
        return (
            f"[{self.severity}] {self.suite}.{column}: {self.expectation} "
            f"observed {self.observed_value}; {self.details}"
        )


class DataQualityError(RuntimeError):
    """Tonight's data failed a critical expectation; nothing was published."""

    def __init__(self, message: str, failures: list[CheckResult]) -> None:
        super().__init__(message)
        self.failures = failures


@dataclass
class GateReport:
    """All results of one gate run, across tables."""

    results: list[CheckResult] = field(default_factory=list)

    def extend(self, results: Iterable[CheckResult]) -> None:
        self.results.extend(results)

    @property
    def critical_failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success and r.severity == CRITICAL]

    @property
    def warnings(self) -> list[CheckResult]:
        """Failed checks of severity ``warning`` (they are recorded, not blocking)."""
        return [r for r in self.results if not r.success and r.severity == WARNING]

    @property
    def passed(self) -> bool:
        return not self.critical_failures

    def summary(self) -> str:
        ok = sum(r.success for r in self.results)
        return (
            f"{len(self.results)} checks, {ok} passed, "
            f"{len(self.critical_failures)} critical failed, {len(self.warnings)} warnings failed"
        )

    def raise_if_critical(self) -> None:
        failures = self.critical_failures
        if not failures:
            return
        lines = [f"Data-quality gate failed: {len(failures)} critical check(s) failed."]
        for r in failures:
            lines.append(
                f"- table {r.suite}, column {r.column_name or '-'}: {r.expectation} "
                f"(observed {r.observed_value}): {r.details}"
            )
        if self.warnings:
            lines.append(
                f"({len(self.warnings)} warning check(s) also failed; see ops.dq_results.)"
            )
        lines.append(RERUN_HINT)
        raise DataQualityError("\n".join(lines), failures)


def results_frame(results: Iterable[CheckResult], run_date: date | None = None) -> pd.DataFrame:
    """Rows for ``ops.dq_results``; ``run_date`` fills results created without one."""
    rows = []
    for r in results:
        row = dataclasses.asdict(r)
        if row["run_date"] is None:
            if run_date is None:
                raise ValueError(f"result without run_date and none given: {r.describe()}")
            row["run_date"] = run_date
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(DQ_RESULT_COLUMNS))
    return frame.astype({"success": bool}) if rows else frame
