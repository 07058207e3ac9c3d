"""Data-quality gate: GX Core suites plus custom checks, run before anything is published."""

from nightcast.quality.checks import (
    check_freshness,
    check_quarantine_rate,
    check_referential_integrity,
)
from nightcast.quality.gate import get_context, load_suite, severity_of, validate_table
from nightcast.quality.report import write_html_report
from nightcast.quality.results import (
    DQ_RESULT_COLUMNS,
    CheckResult,
    DataQualityError,
    GateReport,
    results_frame,
)

__all__ = [
    "DQ_RESULT_COLUMNS",
    "CheckResult",
    "DataQualityError",
    "GateReport",
    "check_freshness",
    "check_quarantine_rate",
    "check_referential_integrity",
    "get_context",
    "load_suite",
    "results_frame",
    "severity_of",
    "validate_table",
    "write_html_report",
]
