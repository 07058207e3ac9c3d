"""Result types of the data-quality gate, shaped like ``ops.dq_results``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

import pandas as pd

from nightcast.errors import DeterministicError

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


def rerun_hint(sources: Sequence[str]) -> str:
    """What recovers the night: the gate re-checks the cleaned rows, so rerun from the extract."""
    start = ", ".join(f"extract_{s}" for s in sources) or "the extract_<source> task"
    return (
        "Fix the data in the ERP (or the source mapping), then clear "
        f"{start} with downstream; clearing validate alone re-checks the same cleaned rows "
        "and fails again. BI keeps showing the last published forecast."
    )


class Offending(NamedTuple):
    """One value that failed a check, and how many of tonight's rows carry it."""

    column: str | None
    value: str
    rows: int


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """One expectation or custom check evaluated on one table for one run date.

    The first eight fields are ``ops.dq_results``; ``rule`` (the check in words) and
    ``offending`` (its most frequent failing values, most frequent first) feed the message.
    Keyword-only: three adjacent free-text fields are easy to swap by position unnoticed.
    """

    run_date: date | None
    suite: str
    expectation: str
    column_name: str | None
    severity: str
    success: bool
    observed_value: str
    details: str
    rule: str = ""
    offending: tuple[Offending, ...] = ()

    def headline(self) -> str:
        """``items: expect_... on list_price (list_price >= 0): 3 unexpected of 40; top
        offending values -1.0 x2, -5.0 x1``: table, check, column and values in one line."""
        columns = self.column_name or ", ".join(
            dict.fromkeys(o.column for o in self.offending if o.column)
        )
        text = f"{self.suite}: {self.expectation}"
        text += f" on {columns}" if columns else ""
        text += f" ({self.rule})" if self.rule else ""
        text += f": {self.observed_value}"
        if self.offending:
            values = ", ".join(
                f"{o.column}={o.value} x{o.rows}"
                if o.column and o.column != self.column_name
                else f"{o.value} x{o.rows}"
                for o in self.offending
            )
            text += f"; top offending values {values}"
        return text

    def describe(self) -> str:
        column = self.column_name or "-"
        return (
            f"[{self.severity}] {self.suite}.{column}: {self.expectation} "
            f"observed {self.observed_value}; {self.details}"
        )


class DataQualityError(RuntimeError, DeterministicError):
    """Tonight's data failed a critical expectation; nothing was published.

    ``sources`` fed the failed tables tonight: their extract is where a rerun starts.
    """

    rerun_from = "extract"

    def __init__(
        self, message: str, failures: list[CheckResult], sources: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.failures = failures
        self.sources = tuple(sources)


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

    def raise_if_critical(
        self,
        sources_by_table: Mapping[str, Sequence[str]] | None = None,
        rejected_rows: str = "",
    ) -> None:
        """Raise :class:`DataQualityError` on a critical failure.

        ``sources_by_table`` (canonical table to the sources that fed it tonight) lets the
        error name the sources to re-extract; ``rejected_rows`` says where tonight's
        rejected rows can be queried.
        """
        failures = self.critical_failures
        if not failures:
            return
        tables = sorted({r.suite for r in failures})
        feeds = sources_by_table or {}
        sources = sorted({s for t in tables for s in feeds.get(t, ())})
        where = f" in {', '.join(tables)}"
        if sources:
            where += f" (source {', '.join(sources)})"
        # The first line is what pages and BI's stale reason show: the first failure whole.
        first = failures[0]
        headline = f"Data-quality gate failed: {first.headline()}"
        if feeds.get(first.suite):
            headline += f" (source {', '.join(sorted(feeds[first.suite]))})"
        if len(failures) > 1:
            headline += f"; {len(failures) - 1} more critical check(s) failed"
        lines = [headline + ".", f"{len(failures)} critical check(s) failed{where}:"]
        for r in failures:
            lines.append(
                f"- table {r.suite}, column {r.column_name or '-'}: {r.expectation} "
                f"(observed {r.observed_value}): {r.details}"
            )
        if rejected_rows:
            lines.append(rejected_rows)
        if self.warnings:
            lines.append(
                f"({len(self.warnings)} warning check(s) also failed; see ops.dq_results.)"
            )
        lines.append(rerun_hint(sources))
        raise DataQualityError("\n".join(lines), failures, sources)


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
