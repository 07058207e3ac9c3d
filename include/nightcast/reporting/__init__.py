"""The nightly HTML report: one static, self-contained page per run date for analysts at 7am."""

from nightcast.reporting.data import ReportData, load_report_data
from nightcast.reporting.html import render

__all__ = ["ReportData", "load_report_data", "render"]
