"""The nightly HTML report: one static, self-contained page per run date for analysts at 7am."""

from datetime import date

from nightcast.config import Settings
from nightcast.reporting.data import ReportData, load_report_data
from nightcast.reporting.html import render
from nightcast.storage import Location


def report_path(settings: Settings, run_date: date) -> Location:
    """Where run D's report is: ``<reports>/date=D/nightly_report.html``."""
    return settings.reports / f"date={run_date.isoformat()}" / "nightly_report.html"


__all__ = ["ReportData", "load_report_data", "render", "report_path"]
