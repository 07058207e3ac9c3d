"""Deployment settings, read from the environment in one place.

One setting switches the target: ``NIGHTCAST_WAREHOUSE_URL`` (a DuckDB file by
default) and the ``AIRFLOW_CONN_<ID>`` connection of each ERP source. Code never
falls back to an empty secret: a missing required variable raises
:class:`MissingSettingError` naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class MissingSettingError(RuntimeError):
    """A required environment variable is not set."""


def _path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    return Path(raw).expanduser().resolve() if raw else default


@dataclass(frozen=True)
class Settings:
    """Where things live for one deployment."""

    data_dir: Path
    lake_dir: Path
    warehouse_path: Path
    sources_dir: Path
    dbt_project_dir: Path
    expectations_dir: Path
    models_dir: Path
    timezone: str
    horizon_days: int
    lookback_days: int
    warehouse_url: str
    # Series per mapped forecast_batch task: bounds one task's memory and time, and
    # sets how many batches the forecasting workers share.
    forecast_batch_series: int = 5000
    # Explanations (nightcast.pipeline.explain): top-k SHAP contributions per forecast row,
    # for every series up to explain_max_series (pred_contrib costs ~40 CPU-s per 1,000
    # series x 28 days on one thread), above it for a deterministic sample of that size.
    explain_top_k: int = 5
    explain_max_series: int = 5000
    # StatsD (nightcast.monitoring.metrics): metrics go to ops.metrics always, and as UDP
    # lines to this host too when it is set.
    statsd_host: str | None = None
    statsd_port: int = 8125
    statsd_prefix: str = "nightcast"
    # Monitoring (nightcast.pipeline.monitor): forecasts with a forecast date in the last
    # accuracy_lookback_days are rescored each night; thresholds that raise alerts.
    accuracy_lookback_days: int = 56
    drift_psi_max: float = 0.25
    accuracy_wape_max: float = 0.8
    accuracy_degradation_max: float = 0.25
    # Scale-out (nightcast.forecasting.distributed): when set, the weekly retrain boosts
    # on this Dask scheduler; each booster must finish within dask_timeout_s.
    dask_address: str | None = None
    dask_timeout_s: float = 3600.0
    # Sources whose ERP is the demo simulator (nightcast.demo_erp): their extract first
    # simulates the business days up to the run date. Empty in production.
    simulated_sources: tuple[str, ...] = ()


def get_settings() -> Settings:
    """Read the settings from the environment (cheap; call it where needed)."""
    data_dir = _path("NIGHTCAST_DATA_DIR", PROJECT_ROOT / "data")
    warehouse_path = _path("NIGHTCAST_WAREHOUSE_PATH", data_dir / "warehouse.duckdb")
    return Settings(
        data_dir=data_dir,
        lake_dir=_path("NIGHTCAST_LAKE_DIR", data_dir / "lake"),
        warehouse_path=warehouse_path,
        sources_dir=_path(
            "NIGHTCAST_SOURCES_DIR", PROJECT_ROOT / "include" / "nightcast" / "sources" / "mappings"
        ),
        dbt_project_dir=_path("NIGHTCAST_DBT_PROJECT_DIR", PROJECT_ROOT / "dbt_project"),
        expectations_dir=_path("NIGHTCAST_EXPECTATIONS_DIR", PROJECT_ROOT / "expectations"),
        models_dir=_path("NIGHTCAST_MODELS_DIR", data_dir / "models"),
        timezone=os.environ.get("NIGHTCAST_TIMEZONE", "UTC"),
        horizon_days=int(os.environ.get("NIGHTCAST_HORIZON_DAYS", "28")),
        lookback_days=int(os.environ.get("NIGHTCAST_LOOKBACK_DAYS", "3")),
        # One setting switches the target: a DuckDB file (default) or PostgreSQL.
        warehouse_url=os.environ.get("NIGHTCAST_WAREHOUSE_URL") or f"duckdb:///{warehouse_path}",
        forecast_batch_series=int(os.environ.get("NIGHTCAST_FORECAST_BATCH_SERIES") or "5000"),
        explain_top_k=int(os.environ.get("NIGHTCAST_EXPLAIN_TOP_K") or "5"),
        explain_max_series=int(os.environ.get("NIGHTCAST_EXPLAIN_MAX_SERIES") or "5000"),
        statsd_host=os.environ.get("NIGHTCAST_STATSD_HOST") or None,
        statsd_port=int(os.environ.get("NIGHTCAST_STATSD_PORT") or "8125"),
        statsd_prefix=os.environ.get("NIGHTCAST_STATSD_PREFIX") or "nightcast",
        accuracy_lookback_days=int(os.environ.get("NIGHTCAST_ACCURACY_LOOKBACK_DAYS") or "56"),
        drift_psi_max=float(os.environ.get("NIGHTCAST_DRIFT_PSI_MAX") or "0.25"),
        accuracy_wape_max=float(os.environ.get("NIGHTCAST_ACCURACY_WAPE_MAX") or "0.8"),
        accuracy_degradation_max=float(
            os.environ.get("NIGHTCAST_ACCURACY_DEGRADATION_MAX") or "0.25"
        ),
        dask_address=os.environ.get("NIGHTCAST_DASK_ADDRESS") or None,
        dask_timeout_s=float(os.environ.get("NIGHTCAST_DASK_TIMEOUT_S") or "3600"),
        simulated_sources=tuple(
            name.strip()
            for name in os.environ.get("NIGHTCAST_SIMULATED_SOURCES", "").split(",")
            if name.strip()
        ),
    )


def connection_url(conn_id: str) -> str:
    """SQLAlchemy URL of an ERP connection, from ``AIRFLOW_CONN_<CONN_ID>``.

    The same variable Airflow reads, so a deployment configures a source once.
    Airflow URIs use ``sqlite://`` / ``postgres://`` / ``mysql://`` schemes; they
    are mapped onto SQLAlchemy drivers here.
    """
    var = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = os.environ.get(var)
    if not raw:
        raise MissingSettingError(
            f"connection {conn_id!r} is not configured: set {var} "
            f"(e.g. {var}=sqlite:////abs/path/erp.sqlite); run `make env` for the embedded defaults"
        )
    return airflow_uri_to_sqlalchemy(raw)


def connection_path(conn_id: str) -> Path:
    """Folder of a file-drop connection (Airflow ``fs`` type), from ``AIRFLOW_CONN_<CONN_ID>``.

    Accepts the JSON form ``{"conn_type": "fs", "extra": {"path": "/drop"}}`` and
    the URI forms ``fs:///drop`` and ``fs://?path=%2Fdrop``.
    """
    import json
    from urllib.parse import parse_qs, unquote, urlsplit

    var = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = os.environ.get(var)
    if not raw:
        raise MissingSettingError(
            f"connection {conn_id!r} is not configured: set {var} to the drop folder, "
            f'e.g. {var}=\'{{"conn_type": "fs", "extra": {{"path": "/data/drop"}}}}\''
        )
    if raw.lstrip().startswith("{"):
        path = (json.loads(raw).get("extra") or {}).get("path")
    else:
        parts = urlsplit(raw)
        path = parse_qs(parts.query).get("path", [None])[0] or unquote(parts.path) or None
    if not path:
        raise MissingSettingError(
            f"{var} names no folder (expected extra.path or fs:///abs/path): {raw[:60]!r}"
        )
    return Path(path).expanduser()


def airflow_uri_to_sqlalchemy(uri: str) -> str:
    """Translate an Airflow connection URI into a SQLAlchemy URL."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise ValueError(f"not a connection URI (expected scheme://...): {uri[:40]!r}")
    mapping = {
        "sqlite": "sqlite",
        "postgres": "postgresql+psycopg",
        "postgresql": "postgresql+psycopg",
        "mysql": "mysql+pymysql",
        "mariadb": "mysql+pymysql",
    }
    base = scheme.split("+", 1)[0]
    if "+" in scheme or base not in mapping:
        return uri
    if base == "sqlite":
        # Airflow writes sqlite:////abs/path; SQLAlchemy wants the same form.
        return f"sqlite://{rest}" if rest.startswith("/") else f"sqlite:///{rest}"
    return f"{mapping[base]}://{rest}"
