"""Fixtures of the forecasting engine tests; the helpers live in ``_demand``."""

from __future__ import annotations

import pandas as pd
import pytest
from _demand import make_demand


@pytest.fixture(scope="session")
def demand() -> pd.DataFrame:
    return make_demand()
