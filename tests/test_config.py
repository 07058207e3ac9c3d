"""Deployment settings and ERP connection URLs, from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from nightcast.config import (
    PROJECT_ROOT,
    MissingSettingError,
    SettingError,
    airflow_uri_to_sqlalchemy,
    connection_url,
    get_settings,
)
from nightcast.storage import location


def test_missing_connection_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_ACME_ERP", raising=False)
    with pytest.raises(MissingSettingError) as info:
        connection_url("acme_erp")
    assert "AIRFLOW_CONN_ACME_ERP" in str(info.value)
    assert "'acme_erp'" in str(info.value)


def test_empty_connection_is_missing_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ACME_ERP", "")
    with pytest.raises(MissingSettingError, match="AIRFLOW_CONN_ACME_ERP"):
        connection_url("acme_erp")


def test_connection_url_reads_the_airflow_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ACME_ERP", "postgres://etl:s3cret@erp.internal:5432/sales")
    assert connection_url("acme_erp") == "postgresql+psycopg://etl:s3cret@erp.internal:5432/sales"


@pytest.mark.parametrize(
    ("airflow", "expected"),
    [
        ("sqlite:////abs/path/erp.sqlite", "sqlite:////abs/path/erp.sqlite"),
        ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("mysql://u:p@h:3306/db", "mysql+pymysql://u:p@h:3306/db"),
        ("mariadb://u:p@h/db", "mysql+pymysql://u:p@h/db"),
        ("postgres://u:p@h/db?sslmode=require", "postgresql+psycopg://u:p@h/db?sslmode=require"),
        # Already a SQLAlchemy URL with a driver, or a scheme we do not know: unchanged.
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("mssql+pyodbc://u:p@dsn", "mssql+pyodbc://u:p@dsn"),
    ],
)
def test_airflow_uris_map_to_sqlalchemy_urls(airflow: str, expected: str) -> None:
    assert airflow_uri_to_sqlalchemy(airflow) == expected


def test_sqlite_absolute_path_survives_the_translation() -> None:
    url = sa.make_url(airflow_uri_to_sqlalchemy("sqlite:////abs/path/erp.sqlite"))
    assert url.drivername == "sqlite"
    assert url.database == "/abs/path/erp.sqlite"


def test_postgres_url_parses_with_the_psycopg_driver() -> None:
    url = sa.make_url(airflow_uri_to_sqlalchemy("postgres://etl:pw@erp:5432/sales"))
    assert (url.drivername, url.username, url.password, url.host, url.port, url.database) == (
        "postgresql+psycopg",
        "etl",
        "pw",
        "erp",
        5432,
        "sales",
    )


def test_not_a_uri_is_rejected() -> None:
    with pytest.raises(ValueError, match="scheme://"):
        airflow_uri_to_sqlalchemy("/just/a/path.sqlite")


def test_settings_read_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTCAST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_PATH", str(tmp_path / "elsewhere" / "wh.duckdb"))
    (tmp_path / "mappings").mkdir()
    monkeypatch.setenv("NIGHTCAST_SOURCES_DIR", str(tmp_path / "mappings"))
    monkeypatch.setenv("NIGHTCAST_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("NIGHTCAST_HORIZON_DAYS", "14")
    monkeypatch.setenv("NIGHTCAST_LOOKBACK_DAYS", "7")
    monkeypatch.delenv("NIGHTCAST_LAKE_URL", raising=False)
    monkeypatch.delenv("NIGHTCAST_REPORTS_URL", raising=False)
    monkeypatch.delenv("NIGHTCAST_MODELS_DIR", raising=False)

    s = get_settings()

    assert s.data_dir == tmp_path / "data"
    assert s.lake == location(tmp_path / "data" / "lake")  # follows the data dir
    assert s.reports == location(tmp_path / "data" / "reports")
    assert s.models_dir == tmp_path / "data" / "models"
    assert s.models_location.url == str(tmp_path / "data" / "models")  # no NIGHTCAST_MODELS_URL
    assert s.warehouse_path == tmp_path / "elsewhere" / "wh.duckdb"
    assert s.warehouse_url == f"duckdb:///{tmp_path / 'elsewhere' / 'wh.duckdb'}"
    assert s.sources_dir == tmp_path / "mappings"
    assert s.timezone == "Europe/Berlin"
    assert s.horizon_days == 14
    assert s.lookback_days == 7


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "NIGHTCAST_DATA_DIR",
        "NIGHTCAST_LAKE_URL",
        "NIGHTCAST_WAREHOUSE_PATH",
        "NIGHTCAST_SOURCES_DIR",
        "NIGHTCAST_MODELS_DIR",
        "NIGHTCAST_TIMEZONE",
        "NIGHTCAST_HORIZON_DAYS",
        "NIGHTCAST_LOOKBACK_DAYS",
    ):
        monkeypatch.delenv(var, raising=False)
    s = get_settings()
    assert s.data_dir == PROJECT_ROOT / "data"
    assert s.warehouse_path == PROJECT_ROOT / "data" / "warehouse.duckdb"
    assert (s.sources_dir / "demo.yaml").is_file()
    assert (s.timezone, s.horizon_days, s.lookback_days) == ("UTC", 28, 3)


def test_relative_override_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NIGHTCAST_DATA_DIR", "rel/data")
    assert get_settings().data_dir == tmp_path.resolve() / "rel" / "data"


def test_lake_and_reports_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NIGHTCAST_LAKE_URL", "s3://acme-data/nightcast/lake/")
    monkeypatch.setenv("NIGHTCAST_REPORTS_URL", str(tmp_path / "pages"))
    s = get_settings()
    assert (s.lake.url, s.reports) == (
        "s3://acme-data/nightcast/lake",
        location(tmp_path / "pages"),
    )
    monkeypatch.setenv("NIGHTCAST_LAKE_URL", "hdfs://nn/lake")
    with pytest.raises(SettingError, match=r"NIGHTCAST_LAKE_URL='hdfs://nn/lake'.*'hdfs'"):
        get_settings()
    # The old setting is not silently ignored (that would put the lake back on local disk).
    monkeypatch.delenv("NIGHTCAST_LAKE_URL")
    monkeypatch.setenv("NIGHTCAST_LAKE_DIR", "/srv/lake")
    with pytest.raises(SettingError, match=r"NIGHTCAST_LAKE_DIR was renamed NIGHTCAST_LAKE_URL"):
        get_settings()


def test_models_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTCAST_MODELS_URL", "s3://acme-ml/nightcast/models/")
    assert get_settings().models_location.url == "s3://acme-ml/nightcast/models"
    monkeypatch.setenv("NIGHTCAST_MODELS_URL", "gs://acme-ml/models")
    with pytest.raises(ValueError, match=r"NIGHTCAST_MODELS_URL='gs://acme-ml/models'.*'gs'"):
        get_settings()
