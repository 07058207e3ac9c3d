"""Deployment settings, read from the environment in one place.

One setting switches the target: ``NIGHTCAST_WAREHOUSE_URL`` (a DuckDB file by
default) and the ``AIRFLOW_CONN_<ID>`` connection of each ERP source. Code never
falls back to an empty secret: a missing required variable raises
:class:`MissingSettingError` naming it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from nightcast.errors import DeterministicError
from nightcast.storage import Location, StorageError, location

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class SettingError(ValueError, DeterministicError):
    """An environment variable is unusable; the message names it, never its secret part.

    Deterministic: every retry reads the same environment, so the task fails at once.
    """


class MissingSettingError(SettingError):
    """A required environment variable is not set."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    try:
        return int(raw)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, not {raw!r}") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name) or str(default)
    try:
        return float(raw)
    except ValueError:
        raise SettingError(f"{name} must be a number, not {raw!r}") from None


def _path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    return Path(raw).expanduser().resolve() if raw else default


@dataclass(frozen=True)
class Settings:
    """Where things live for one deployment."""

    data_dir: Path
    # The lake (landing, clean/quarantine, forecast inputs and parts, GX Data Docs,
    # reports): NIGHTCAST_LAKE_URL, a local folder or s3://bucket/prefix.
    lake: Location
    # The nightly HTML reports: NIGHTCAST_REPORTS_URL, a local folder or s3://bucket/prefix.
    reports: Location
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
    # Where model artifacts live (nightcast.storage): NIGHTCAST_MODELS_URL, a local
    # folder or s3://bucket/prefix; empty = models_dir (the embedded default).
    models_url: str = ""

    @property
    def models_location(self) -> Location:
        return location(self.models_url or self.models_dir)


def get_settings() -> Settings:
    """Read the settings from the environment (cheap; call it where needed)."""
    data_dir = _path("NIGHTCAST_DATA_DIR", PROJECT_ROOT / "data")
    warehouse_path = _path("NIGHTCAST_WAREHOUSE_PATH", data_dir / "warehouse.duckdb")
    return Settings(
        data_dir=data_dir,
        lake=location(_storage_url("NIGHTCAST_LAKE_URL") or data_dir / "lake"),
        reports=location(_storage_url("NIGHTCAST_REPORTS_URL") or data_dir / "reports"),
        warehouse_path=warehouse_path,
        sources_dir=_path(
            "NIGHTCAST_SOURCES_DIR", PROJECT_ROOT / "include" / "nightcast" / "sources" / "mappings"
        ),
        dbt_project_dir=_path("NIGHTCAST_DBT_PROJECT_DIR", PROJECT_ROOT / "dbt_project"),
        expectations_dir=_path("NIGHTCAST_EXPECTATIONS_DIR", PROJECT_ROOT / "expectations"),
        models_dir=_path("NIGHTCAST_MODELS_DIR", data_dir / "models"),
        timezone=os.environ.get("NIGHTCAST_TIMEZONE", "UTC"),
        horizon_days=_int("NIGHTCAST_HORIZON_DAYS", 28),
        lookback_days=_int("NIGHTCAST_LOOKBACK_DAYS", 3),
        # One setting switches the target: a DuckDB file (default) or PostgreSQL.
        warehouse_url=os.environ.get("NIGHTCAST_WAREHOUSE_URL") or f"duckdb:///{warehouse_path}",
        forecast_batch_series=_int("NIGHTCAST_FORECAST_BATCH_SERIES", 5000),
        explain_top_k=_int("NIGHTCAST_EXPLAIN_TOP_K", 5),
        explain_max_series=_int("NIGHTCAST_EXPLAIN_MAX_SERIES", 5000),
        statsd_host=os.environ.get("NIGHTCAST_STATSD_HOST") or None,
        statsd_port=_int("NIGHTCAST_STATSD_PORT", 8125),
        statsd_prefix=os.environ.get("NIGHTCAST_STATSD_PREFIX") or "nightcast",
        accuracy_lookback_days=_int("NIGHTCAST_ACCURACY_LOOKBACK_DAYS", 56),
        drift_psi_max=_float("NIGHTCAST_DRIFT_PSI_MAX", 0.25),
        accuracy_wape_max=_float("NIGHTCAST_ACCURACY_WAPE_MAX", 0.8),
        accuracy_degradation_max=_float("NIGHTCAST_ACCURACY_DEGRADATION_MAX", 0.25),
        dask_address=os.environ.get("NIGHTCAST_DASK_ADDRESS") or None,
        dask_timeout_s=_float("NIGHTCAST_DASK_TIMEOUT_S", 3600.0),
        simulated_sources=tuple(
            name.strip()
            for name in os.environ.get("NIGHTCAST_SIMULATED_SOURCES", "").split(",")
            if name.strip()
        ),
        models_url=_storage_url("NIGHTCAST_MODELS_URL"),
    )


# Settings renamed when the lake moved to object storage: a deployment still setting the
# old name gets an error naming the new one, not a lake silently back on the default.
RENAMED = {"NIGHTCAST_LAKE_DIR": "NIGHTCAST_LAKE_URL"}


def _storage_url(name: str) -> str:
    """A storage URL setting (a local path or s3://bucket/prefix), checked now: a typo in
    the scheme fails here, naming the variable, not on the first write of a night."""
    for old, new in RENAMED.items():
        if new == name and os.environ.get(old):
            raise SettingError(
                f"{old} was renamed {new} (a local folder or s3://bucket/prefix): "
                f"set {new}={os.environ[old]!r} instead"
            )
    raw = os.environ.get(name, "").strip()
    if not raw:
        return ""
    try:
        return location(raw).url
    except StorageError as exc:
        raise SettingError(f"{name}={raw!r}: {exc}") from exc


WAREHOUSE_URL_VAR = "NIGHTCAST_WAREHOUSE_URL"
# Schemes whose "URL" is a local path: an '@' or '%' in it is part of a file name.
_FILE_SCHEMES = ("duckdb", "sqlite", "fs", "file")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_QUOTE_HINT = (
    "percent-encode the password (python3 -c 'import sys, urllib.parse; "
    'print(urllib.parse.quote(sys.argv[1], safe=""))\' PASSWORD)'
)


def check_url(var: str, url: str) -> str:
    """``url`` unchanged when a driver reads it as written, else :class:`SettingError`.

    Catches what drivers misread and then echo back in their errors (libpq prints an
    invalid percent-escape verbatim, password and all): a ``%`` that is not ``%XX``, or an
    ``@``, ``/``, ``?`` or ``#`` left raw in the user or password. The message names
    ``var`` and the host, never the user or password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        raise SettingError(
            f"{var} is not a URL: expected scheme://user@host:port/database, with any "
            "password after the user (user:PASSWORD@), percent-encoded"
        )
    if scheme.split("+", 1)[0].lower() in _FILE_SCHEMES:
        return url
    userinfo, at, host = rest.rpartition("@")
    where = f"{var} ({scheme}://…@{host})" if at else f"{var} ({scheme}://{rest})"
    raw = [c for c in "@/?#" if c in userinfo]
    if raw:
        raise SettingError(
            f"{where}: the user or password holds a raw {raw[0]!r}, so drivers split the "
            f"URL in the wrong place; {_QUOTE_HINT}"
        )
    if _BAD_ESCAPE.search(userinfo):
        raise SettingError(
            f"{where}: the user or password holds a '%' that is not a percent-escape (%XX); "
            f"{_QUOTE_HINT}"
        )
    if _BAD_ESCAPE.search(host):
        raise SettingError(f"{where}: a '%' that is not a percent-escape (%XX); write '%' as %25")
    return url


def url_passwords(url: str) -> list[str]:
    """The password of ``url`` as a parser reads it and as a person meant it (raw ``@``/``/``)."""
    _, sep, rest = url.partition("://")
    if not sep:
        return []
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    found = []
    for userinfo in (authority.rpartition("@")[0], rest.rpartition("@")[0]):
        password = userinfo.partition(":")[2]
        if password:
            found += [password, unquote(password)]
    return found


_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|WEBHOOK|_KEY$", re.IGNORECASE)
_NOT_SECRET_NAME = re.compile(r"_(FILE|PATH|CMD)$", re.IGNORECASE)
# A shorter secret is redacted inside URLs only: masking "abc" in every message is noise.
MIN_SECRET_LENGTH = 4


def configured_secrets() -> set[str]:
    """Every credential this deployment's environment holds, in each spelling a message
    may carry it (raw, percent-encoded, percent-decoded): URL passwords of any variable
    (``NIGHTCAST_WAREHOUSE_URL``, ``AIRFLOW_CONN_*``, Airflow's own), JSON connections'
    passwords, and whole values of ``*PASSWORD*``, ``*SECRET*``, ``*TOKEN*``, ``*WEBHOOK*``
    and ``*_KEY`` variables."""
    found: set[str] = set()
    for name, value in os.environ.items():
        if not value:
            continue
        if _SECRET_NAME.search(name) and not _NOT_SECRET_NAME.search(name):
            found.add(value)
        if "://" in value:
            found.update(url_passwords(value))
        if name.startswith("AIRFLOW_CONN_") and value.lstrip().startswith("{"):
            try:
                password = json.loads(value).get("password")
            except (ValueError, AttributeError):
                password = None
            if password:
                found.add(str(password))
    spellings = found | {quote(s, safe="") for s in found} | {unquote(s) for s in found}
    return {s for s in spellings if len(s) >= MIN_SECRET_LENGTH}


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
    return airflow_uri_to_sqlalchemy(check_url(var, raw))


def connection_path(conn_id: str) -> Path:
    """Folder of a file-drop connection (Airflow ``fs`` type), from ``AIRFLOW_CONN_<CONN_ID>``.

    Accepts the JSON form ``{"conn_type": "fs", "extra": {"path": "/drop"}}`` and
    the URI forms ``fs:///drop`` and ``fs://?path=%2Fdrop``.
    """
    from urllib.parse import parse_qs, urlsplit

    var = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = os.environ.get(var)
    if not raw:
        raise MissingSettingError(
            f"connection {conn_id!r} is not configured: set {var} to the drop folder, "
            f'e.g. {var}=\'{{"conn_type": "fs", "extra": {{"path": "/data/drop"}}}}\''
        )
    if raw.lstrip().startswith("{"):
        try:
            path = (json.loads(raw).get("extra") or {}).get("path")
        except (ValueError, AttributeError) as err:
            raise SettingError(f"{var} is not a JSON connection object: {err}") from None
    else:
        parts = urlsplit(raw)
        path = parse_qs(parts.query).get("path", [None])[0] or unquote(parts.path) or None
    if not path:
        raise MissingSettingError(
            f"{var} names no folder: expected extra.path in its JSON, or fs:///abs/path"
        )
    return Path(path).expanduser()


def airflow_uri_to_sqlalchemy(uri: str) -> str:
    """Translate an Airflow connection URI into a SQLAlchemy URL."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise SettingError("not a connection URI: expected scheme://user@host:port/database")
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
