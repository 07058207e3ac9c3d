"""The extract stage of a simulated (demo) source: night D first simulates the ERP up to D."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from _acme import RUN_DATE, Acme

from nightcast import demo_erp
from nightcast.config import get_settings
from nightcast.pipeline import stages
from nightcast.sources.extract import landing_path, read_landed
from nightcast.sources.mapping_rules import MappingError
from nightcast.sources.simulated import SimulatedSourceError

END = date(2025, 2, 10)
NIGHT = END + timedelta(days=3)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("simulated") / "erp.sqlite"
    demo_erp.generate(f"sqlite:///{path}", size="tiny", start=date(2025, 1, 1), end=END, seed=5)
    return path


@pytest.fixture
def erp(seeded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A deployment of the demo source whose ERP stops three days before NIGHT."""
    shutil.copy(seeded, tmp_path / "erp.sqlite")
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_DEMO_ERP", url)
    monkeypatch.setenv("NIGHTCAST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_PATH", str(tmp_path / "data" / "wh.duckdb"))
    for name in ("NIGHTCAST_WAREHOUSE_URL", "NIGHTCAST_LAKE_URL", "NIGHTCAST_SOURCES_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NIGHTCAST_SIMULATED_SOURCES", "demo")
    (tmp_path / "data").mkdir()
    yield url


def _lines(night: date) -> pa.Table:
    return read_landed(landing_path(get_settings().lake, "demo", "order_lines", night))


def _order_days(table: pa.Table) -> set[str]:
    return {ts[:10] for ts in table.column("order_ts").to_pylist()}


def test_extract_simulates_the_days_up_to_the_night_and_a_rerun_changes_nothing(
    erp: str,
) -> None:
    stages.extract(get_settings(), "demo", NIGHT)

    assert demo_erp.last_simulated_day(erp) == NIGHT
    landed = _lines(NIGHT)
    # The first night reads the whole history, the three simulated days included.
    assert {str(END + timedelta(days=k)) for k in range(4)} <= _order_days(landed)

    stages.extract(get_settings(), "demo", NIGHT)  # a rerun (task cleared)
    assert demo_erp.last_simulated_day(erp) == NIGHT
    assert _lines(NIGHT).equals(landed)


def test_without_the_setting_the_erp_is_left_alone(
    erp: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NIGHTCAST_SIMULATED_SOURCES")  # production: a real ERP is never written

    stages.extract(get_settings(), "demo", NIGHT)

    assert demo_erp.last_simulated_day(erp) == END
    assert str(NIGHT) not in _order_days(_lines(NIGHT))


def test_a_simulated_source_without_a_demo_erp_names_the_setting_and_the_fix(
    erp: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_DEMO_ERP", f"sqlite:///{tmp_path / 'real.sqlite'}")

    with pytest.raises(SimulatedSourceError) as err:
        stages.extract(get_settings(), "demo", NIGHT)
    msg = str(err.value)
    assert "NIGHTCAST_SIMULATED_SOURCES names source 'demo'" in msg
    assert "'nightcast_demo_erp' (AIRFLOW_CONN_NIGHTCAST_DEMO_ERP) holds no demo ERP" in msg
    assert f"nightcast demo-erp init --end {NIGHT - timedelta(days=1)}" in msg


def test_only_a_database_source_can_be_simulated(
    acme: Acme, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NIGHTCAST_SIMULATED_SOURCES", "acme")

    with pytest.raises(MappingError, match=r"acme\.yaml is a csv_folder source"):
        stages.extract(get_settings(), "acme", RUN_DATE)
