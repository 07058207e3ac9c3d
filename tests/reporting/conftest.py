"""Fixtures of the nightly report tests; the hand-built warehouse is in ``_report_world``."""

from __future__ import annotations

from pathlib import Path

import pytest
from _report_world import Known, build_warehouse


@pytest.fixture
def known(tmp_path: Path) -> Known:
    return build_warehouse(tmp_path)
