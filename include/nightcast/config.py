"""Deployment settings, declared, read and checked in one place (:class:`Settings`).

One setting switches the target: ``NIGHTCAST_WAREHOUSE_URL`` (a DuckDB file by
default; dbt's profile is derived from it) and the ``AIRFLOW_CONN_<ID>`` connection
of each ERP source. Code never falls back to an empty secret: a missing required
variable raises :class:`MissingSettingError` naming it, a bad one
:class:`SettingError` naming it and its value in one line.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date, time
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from nightcast import connections
from nightcast.errors import DeterministicError
from nightcast.storage import Location, StorageError, location

PROJECT_ROOT = Path(__file__).resolve().parents[2]


# The folder of Settings.gate_docs(D) that holds night D's GX Data Docs site.
GX_DOCS = "gx"


class SettingError(ValueError, DeterministicError):
    """An environment variable is unusable; the message names it, never its secret part.

    Deterministic: every retry reads the same environment, so the task fails at once.
    """


class MissingSettingError(SettingError):
    """A required environment variable is not set."""


# Settings renamed when the lake moved to object storage: a deployment still setting the
# old name gets an error naming the new one, not a lake silently back on the default.
RENAMED = {"NIGHTCAST_LAKE_DIR": "NIGHTCAST_LAKE_URL"}
# Values never echoed in an error: they may hold a password or a token.
_SECRET_FIELDS = {"warehouse_url", "alert_webhook_url"}


_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-_]*[A-Za-z0-9])?|\[[0-9A-Fa-f:]+\]")
_DASK = re.compile(r"(?:(?:tcp|tls|ucx|ws|wss)://)?[A-Za-z0-9.\-_\[\]:]+:\d+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def _doc(text: str, **kw: Any) -> Any:
    return Field(description=text, **kw)


def _default_paths(data: dict[str, Any]) -> dict[str, str]:
    """The warehouse file and the models folder, under the data folder unless set."""
    root = Path(str(data.get("data_dir") or PROJECT_ROOT / "data")).expanduser().resolve()
    return {
        "warehouse_path": str(data.get("warehouse_path") or root / "warehouse.duckdb"),
        "models_dir": str(data.get("models_dir") or root / "models"),
    }


class Settings(BaseSettings):
    """Every ``NIGHTCAST_*`` setting of a deployment, declared once: type, default, bounds
    and what it does. Read from the environment by :func:`get_settings` (cheap; call it
    where needed); a bad value raises :class:`SettingError` naming the variable and the
    value (never a secret's) in one line. ``nightcast config reference`` prints this
    table as Markdown (docs/configuration.md)."""

    model_config = SettingsConfigDict(
        env_prefix="NIGHTCAST_",
        frozen=True,
        extra="ignore",
        env_ignore_empty=True,
        arbitrary_types_allowed=True,
        populate_by_name=True,
    )

    # ------------------------------------------------------------------ where things live
    data_dir: Path = _doc(
        "lake, models, reports and dbt artefacts, unless the _URL settings move them",
        default=PROJECT_ROOT / "data",
    )
    lake_url: str = _doc(
        "the lake (landings, clean/quarantine, forecast inputs and parts, GX Data Docs): "
        "a local folder or s3://bucket/prefix; default <data dir>/lake",
        default="",
    )
    models_url: str = _doc(
        "model artifacts: a local folder or s3://bucket/prefix; default <data dir>/models",
        default="",
    )
    reports_url: str = _doc(
        "the nightly HTML reports: a local folder or s3://bucket/prefix; default <data dir>/reports",
        default="",
    )
    models_dir: Path = _doc("model artifacts on local disk when no models URL is set", default=None)
    s3_conn_id: str | None = _doc(
        "take the object store's endpoint, region and keys from this Airflow connection "
        "(AIRFLOW_CONN_<ID>, type aws) instead of the AWS_* variables",
        default=None,
    )
    warehouse_path: Path = _doc("the DuckDB warehouse file", default=None)
    warehouse_url: str = _doc(
        "the warehouse: duckdb:///<path> (default: the warehouse path) or "
        "postgresql+psycopg://user:password@host:port/database",
        default=None,
    )
    warehouse_conn_id: str | None = _doc(
        "take the warehouse from this Airflow connection (type postgres, or duckdb with the "
        "file as host) instead of NIGHTCAST_WAREHOUSE_URL: inside a task through Airflow's "
        "connection API (UI, AIRFLOW_CONN_<ID>, secrets backends), outside from AIRFLOW_CONN_<ID>",
        default=None,
    )
    sources_dir: Path = _doc(
        "the folder of source mappings (one YAML per ERP)",
        default=PROJECT_ROOT / "include" / "nightcast" / "sources" / "mappings",
    )
    dbt_project_dir: Path = _doc("the dbt project", default=PROJECT_ROOT / "dbt_project")
    dbt_target: Literal["duckdb", "postgres"] | None = _doc(
        "dbt's target (profiles.yml); default: the one of the warehouse URL", default=None
    )
    expectations_dir: Path = _doc(
        "the GX expectation suites", default=PROJECT_ROOT / "expectations"
    )
    # ------------------------------------------------------------------ the night
    timezone: str = _doc("the deployment's business time zone (IANA name)", default="UTC")
    horizon_days: int = _doc("forecast horizon, days", default=28, ge=1, le=366)
    lookback_days: int = _doc("incremental re-read for late edits, days", default=3, ge=0, le=365)
    forecast_batch_series: int = _doc(
        "series per mapped forecast_batch task (bounds one task's memory and time)",
        default=5000,
        ge=1,
    )
    simulated_sources: Annotated[tuple[str, ...], NoDecode] = _doc(
        "comma-separated sources whose ERP is the demo simulator (each night first "
        "simulates the business days up to it); empty in production",
        default=(),
    )
    # ------------------------------------------------------------------ the model
    lightgbm_device: Literal["cpu", "gpu", "cuda", "auto"] = _doc(
        "LightGBM device; auto probes the GPU and falls back to CPU with a warning",
        default="cpu",
    )
    lightgbm_num_threads: int = Field(
        default=1,
        ge=1,
        le=1024,
        validation_alias="LIGHTGBM_NUM_THREADS",
        description="LightGBM threads per task (LIGHTGBM_NUM_THREADS)",
    )
    explain_top_k: int = _doc("SHAP contributions stored per forecast row", default=5, ge=1, le=50)
    explain_max_series: int = _doc(
        "series explained per night (above it, a deterministic sample of this size)",
        default=5000,
        ge=1,
    )
    shadow: bool = _doc(
        "the latest challenger also forecasts into forecast.shadow_forecasts", default=False
    )
    promotion_margin: float = _doc(
        "a challenger must beat the champion's holdout WAPE x (1 - this); a negative margin "
        "lets it be that much worse (-1: any challenger within the coverage band wins)",
        default=0.02,
        ge=-1,
        lt=1,
    )
    baseline_margin: float = _doc(
        "a challenger must beat the best simple baseline's WAPE x (1 - this); negative as above",
        default=0.0,
        ge=-1,
        lt=1,
    )
    coverage_min: float = _doc(
        "lowest P10-P90 holdout coverage a challenger may have", default=0.6, gt=0, lt=1
    )
    coverage_max: float = _doc(
        "highest P10-P90 holdout coverage a challenger may have", default=0.95, gt=0, le=1
    )
    holdout_windows: int = _doc("weekly retrain holdout windows", default=2, ge=1, le=52)
    dask_address: str | None = _doc(
        "train the weekly challenger on this Dask scheduler (tcp://host:8786)", default=None
    )
    dask_timeout_s: float = _doc("seconds each Dask booster may take", default=3600.0, gt=0)
    # ------------------------------------------------------------------ monitoring and alerts
    accuracy_lookback_days: int = _doc(
        "forecasts of the last N days are rescored each night", default=56, ge=1, le=3660
    )
    drift_psi_max: float = _doc("feature drift alert above this PSI", default=0.25, gt=0)
    accuracy_wape_max: float = _doc("accuracy alert above this WAPE", default=0.8, gt=0)
    accuracy_degradation_max: float = _doc(
        "accuracy alert when WAPE worsens by more than this share", default=0.25, gt=0
    )
    publish_deadline: str = _doc(
        "run date D must be published by this local time on D+1 (HH:MM)", default="06:30"
    )
    alert_conn_id: str | None = _doc(
        "an Airflow connection (type apprise) whose extra config lists the Apprise URLs "
        "alerts go to (Slack, Teams, email, PagerDuty, ...), besides the webhook and email below",
        default=None,
    )
    alert_webhook_url: str | None = _doc(
        "alerts are POSTed here as Slack-compatible JSON", default=None
    )
    alert_email_to: Annotated[tuple[str, ...], NoDecode] = _doc(
        "comma-separated alert recipients", default=()
    )
    alert_email_from: str = _doc("alert sender address", default="nightcast@localhost")
    smtp_host: str | None = _doc("SMTP server for alert mail", default=None)
    smtp_port: int = _doc("SMTP port", default=25, ge=1, le=65535)
    statsd_host: str | None = _doc(
        "StatsD host for metrics (unset: ops.metrics only)", default=None
    )
    statsd_port: int = _doc("StatsD UDP port", default=8125, ge=1, le=65535)
    statsd_prefix: str = _doc("StatsD metric prefix", default="nightcast")
    # ------------------------------------------------------------------ audit
    actor: str | None = _doc("who acts, in the audit trail (default: the OS user)", default=None)
    code_version: str | None = _doc(
        "the code version the audit trail records (default: nightcast <version> + git commit)",
        default=None,
    )

    # ------------------------------------------------------------------ validation
    @model_validator(mode="before")
    @classmethod
    def _derived_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = {**data, **_default_paths(data)}
        if out.get("warehouse_conn_id"):
            if out.get("warehouse_url") is not None:
                raise ValueError(
                    "set NIGHTCAST_WAREHOUSE_URL or NIGHTCAST_WAREHOUSE_CONN_ID, not both"
                )
            out["warehouse_url"] = _warehouse_from_connection(str(out["warehouse_conn_id"]))
        if out.get("warehouse_url") is None:
            wh = Path(str(out["warehouse_path"])).expanduser().resolve()
            out["warehouse_url"] = f"duckdb:///{wh}"
        return out

    @field_validator("simulated_sources", "alert_email_to", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator(
        "data_dir",
        "models_dir",
        "warehouse_path",
        "sources_dir",
        "dbt_project_dir",
        "expectations_dir",
    )
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return Path(value).expanduser().resolve()

    @field_validator("data_dir", "models_dir")
    @classmethod
    def _folder(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError("is a file, not a folder")
        return value

    @field_validator("sources_dir", "dbt_project_dir", "expectations_dir")
    @classmethod
    def _existing_folder(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError("no such folder")
        return value

    @field_validator("warehouse_path")
    @classmethod
    def _file(cls, value: Path) -> Path:
        if value.is_dir():
            raise ValueError("is a folder, not the DuckDB file")
        return value

    @field_validator("statsd_host", "smtp_host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not _HOST.fullmatch(value):
            raise ValueError("not a host name or address (no scheme, port or spaces)")
        return value

    @field_validator("dask_address")
    @classmethod
    def _dask(cls, value: str | None) -> str | None:
        if value is not None and not _DASK.fullmatch(value):
            raise ValueError("not a Dask scheduler address (tcp://host:8786)")
        return value

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/]+\S*", value):
            raise ValueError("not an http(s) URL")
        return value

    @field_validator("alert_email_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        if not _EMAIL.fullmatch(value):
            raise ValueError("not an e-mail address")
        return value

    @field_validator("alert_email_to")
    @classmethod
    def _recipients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in value if not _EMAIL.fullmatch(a)]
        if bad:
            raise ValueError(f"not an e-mail address: {bad[0]!r}")
        return value

    @field_validator("simulated_sources")
    @classmethod
    def _source_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [n for n in value if not n.isidentifier()]  # as a mapping's source name
        if bad:
            raise ValueError(f"not a source name (letters, digits, _): {bad[0]!r}")
        return value

    @field_validator("statsd_prefix", "s3_conn_id", "warehouse_conn_id", "alert_conn_id")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
            raise ValueError("may only hold letters, digits, '_', '.' and '-'")
        return value

    @field_validator("actor", "code_version")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or not value.isprintable()):
            raise ValueError("must be printable text, not blank")
        return value

    @field_validator("lake_url", "models_url", "reports_url")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return ""
        try:
            return location(value).url
        except StorageError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError("not an IANA time zone (e.g. Europe/Berlin, UTC)") from None
        return value

    @field_validator("publish_deadline")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        try:
            time.fromisoformat(value)
        except ValueError:
            raise ValueError("must be HH:MM (local time)") from None
        return value

    @field_validator("warehouse_url")
    @classmethod
    def _warehouse_url(cls, value: str) -> str:
        try:
            return check_url(WAREHOUSE_URL_VAR, value)
        except SettingError as exc:
            raise ValueError(str(exc).removeprefix(WAREHOUSE_URL_VAR).lstrip(" :")) from None

    @model_validator(mode="after")
    def _coverage_band(self) -> Settings:
        if self.coverage_min >= self.coverage_max:
            raise ValueError(
                f"NIGHTCAST_COVERAGE_MIN ({self.coverage_min}) must be below "
                f"NIGHTCAST_COVERAGE_MAX ({self.coverage_max})"
            )
        return self

    # ------------------------------------------------------------------ derived
    @property
    def lake(self) -> Location:
        return location(self.lake_url or self.data_dir / "lake")

    @property
    def reports(self) -> Location:
        return location(self.reports_url or self.data_dir / "reports")

    @property
    def models_location(self) -> Location:
        return location(self.models_url or self.models_dir)

    def gate_docs(self, run_date: date) -> Location:
        """Night D's data-quality pages on the lake: ``index.html`` (the gate's own page)
        and, in ``GX_DOCS``, the GX Data Docs site."""
        return self.lake / "dq_docs" / f"date={run_date.isoformat()}"

    @property
    def deadline(self) -> time:
        return time.fromisoformat(self.publish_deadline)


def env_name(field: str) -> str:
    """The environment variable of a settings field."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    return alias if isinstance(alias, str) else f"NIGHTCAST_{field.upper()}"


def reference_markdown() -> str:
    """Every setting as a Markdown table (docs/configuration.md is this, generated)."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `nightcast.config.Settings` by `nightcast config reference`",
        "(tests/test_settings.py fails when this file and the code differ). Every",
        "variable is read and checked when a task starts: a bad value stops it with one",
        "line naming the variable. Empty values count as unset.",
        "",
        "| variable | type | default | bounds | what it does |",
        "|---|---|---|---|---|",
    ]
    for name, info in Settings.model_fields.items():
        default = info.get_default()
        if name in ("models_dir", "warehouse_path", "warehouse_url"):
            shown = {
                "models_dir": "<data dir>/models",
                "warehouse_path": "<data dir>/warehouse.duckdb",
                "warehouse_url": "duckdb:///<warehouse path>",
            }[name]
        elif isinstance(default, Path):
            shown = default.relative_to(PROJECT_ROOT).as_posix() + "/ (in the checkout)"
        elif default in (None, "", ()):
            shown = "unset"
        else:
            shown = str(default)
        bounds = ", ".join(
            f"{op} {getattr(m, attr)}"
            for m in info.metadata
            for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
            if getattr(m, attr, None) is not None
        )
        kind = _type_name(info.annotation)
        lines.append(
            f"| `{env_name(name)}` | {kind} | `{shown}` | {bounds or '-'} | {info.description} |"
        )
    return "\n".join(lines) + "\n"


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (Union, UnionType) and type(None) in args:
        return _type_name(next(a for a in args if a is not type(None))) + " (optional)"
    if origin is tuple:
        return "comma-separated list"
    return {"str": "text", "int": "whole number", "float": "number", "bool": "true/false"}.get(
        getattr(annotation, "__name__", ""), getattr(annotation, "__name__", str(annotation))
    )


def get_settings() -> Settings:
    """The deployment's settings, read and checked from the environment now."""
    for old, new in RENAMED.items():
        if os.environ.get(old):
            raise SettingError(
                f"{old} was renamed {new} (a local folder or s3://bucket/prefix): "
                f"set {new}={os.environ[old]!r} instead"
            )
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingError(_one_line(exc)) from None


def lenient_settings() -> Settings:
    """The settings for a failure callback, which must page on-call even when a variable
    is unusable (that error is often what it reports): each bad variable at its default."""
    try:
        return Settings()
    except ValidationError as exc:
        bad = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
    defaults = {
        f: Settings.model_fields[f].get_default() for f in bad if f in Settings.model_fields
    }
    if "warehouse_url" in bad:  # never another warehouse: writes to it fail, and say why
        defaults["warehouse_url"] = "unusable://NIGHTCAST_WAREHOUSE_URL-is-invalid"
    try:
        return Settings(**defaults)
    except ValidationError:  # a rule across variables: the defaults of everything
        paths = _default_paths({})
        return Settings.model_construct(
            warehouse_path=Path(paths["warehouse_path"]),
            models_dir=Path(paths["models_dir"]),
            warehouse_url="unusable://NIGHTCAST-settings-are-invalid",
        )


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ())]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if not loc:  # a model-level rule names its variables itself
            parts.append(msg)
            continue
        field = loc[0]
        var = env_name(field) if field in Settings.model_fields else field
        if field in _SECRET_FIELDS:
            parts.append(f"{var}: {msg}")
        else:
            parts.append(f"{var}={err.get('input')!r}: {msg}")
    return "; ".join(parts)


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
    found |= connections.resolved_passwords()  # connections from Airflow's metadata DB
    spellings = found | {quote(s, safe="") for s in found} | {unquote(s) for s in found}
    return {s for s in spellings if len(s) >= MIN_SECRET_LENGTH}


# The warehouse URL while its Airflow connection cannot be looked up (a DAG file being
# parsed outside a task): opening it looks the connection up again and says what failed.
DEFERRED_CONNECTION = "airflow-connection://"


def _connection(conn_id: str, example: str) -> connections.Connection:
    try:
        return connections.get_connection(conn_id)
    except connections.ConnectionNotFoundError as exc:
        raise MissingSettingError(f"{exc} (e.g. {example})") from None
    except connections.ConnectionFormatError as exc:
        raise SettingError(str(exc)) from None


def connection_url(conn_id: str) -> str:
    """SQLAlchemy URL of database connection ``conn_id`` (an ERP source, the warehouse).

    Inside an Airflow task the connection comes from Airflow's connection API (UI,
    ``AIRFLOW_CONN_<ID>``, a secrets backend); outside, from ``AIRFLOW_CONN_<ID>``
    (:mod:`nightcast.connections`). Airflow's types (``sqlite``, ``postgres``,
    ``mysql``) are mapped onto SQLAlchemy drivers here.
    """
    var = connections.env_var(conn_id)
    conn = _connection(
        conn_id, f"{var}=sqlite:////abs/path/erp.sqlite; `make env` writes the embedded defaults"
    )
    if conn.raw is not None and not conn.raw.startswith("{"):
        # The variable's own text: its checks name the variable and keep its exact spelling.
        return airflow_uri_to_sqlalchemy(check_url(var, conn.raw))
    return connection_to_sqlalchemy(conn)


def connection_to_sqlalchemy(conn: connections.Connection) -> str:
    """The SQLAlchemy URL of an Airflow connection given by its fields (the UI's form,
    JSON): ``extra`` becomes the URL's query (driver options such as ``sslmode``)."""
    from sqlalchemy.engine import URL

    kind = conn.conn_type.lower()
    if kind in ("sqlite", "duckdb"):
        path = conn.host or conn.schema
        if not path:
            raise SettingError(f"{conn.origin}: a {kind} connection names no file (host)")
        return f"{kind}:///{path}"
    driver = _DRIVERS.get(kind) or (kind if "+" in kind else None)
    if driver is None:
        raise SettingError(
            f"{conn.origin} has type {conn.conn_type!r}; a database connection is one of "
            "sqlite, postgres, mysql (or a SQLAlchemy dialect+driver)"
        )
    query = {str(k): str(v) for k, v in conn.extra.items() if v is not None}
    url = URL.create(
        driver,
        username=conn.login,
        password=conn.password,
        host=conn.host,
        port=conn.port,
        database=conn.schema,
        query=query,
    )
    return url.render_as_string(hide_password=False)


def connection_path(conn_id: str) -> Path:
    """Folder of a file-drop connection (Airflow ``fs`` type): ``extra.path``, else the
    host, else the URI's path (``fs:///drop``, ``fs://?path=%2Fdrop``,
    ``{"conn_type": "fs", "extra": {"path": "/drop"}}``)."""
    var = connections.env_var(conn_id)
    conn = _connection(
        conn_id, f'{var}=\'{{"conn_type": "fs", "extra": {{"path": "/data/drop"}}}}\''
    )
    path = conn.extra.get("path") or conn.host or (f"/{conn.schema}" if conn.schema else None)
    if not path:
        raise MissingSettingError(
            f"{conn.origin} names no folder: expected extra.path (JSON or the UI), or fs:///abs/path"
        )
    return Path(str(path)).expanduser()


def _warehouse_from_connection(conn_id: str) -> str:
    """The warehouse URL of Airflow connection ``conn_id`` (``NIGHTCAST_WAREHOUSE_CONN_ID``).

    Outside a task a connection defined only in Airflow's metadata DB cannot be looked
    up (a DAG file being parsed, say): the URL is then deferred, and opening the
    warehouse looks it up again and raises what failed."""
    try:
        url = connection_url(conn_id)
    except MissingSettingError:
        if connections.in_airflow_task():
            raise
        return f"{DEFERRED_CONNECTION}{conn_id}"
    except SettingError as exc:
        raise ValueError(str(exc)) from None
    if not url.startswith(("duckdb:", "postgresql")):
        raise ValueError(
            f"the warehouse connection {conn_id!r} is a {url.split(':', 1)[0]} database; "
            "the warehouse is DuckDB (type duckdb, the file as host) or PostgreSQL"
        )
    return url


# Airflow's connection types (URI schemes) -> the SQLAlchemy driver Nightcast reads them with.
_DRIVERS = {
    "sqlite": "sqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}


def airflow_uri_to_sqlalchemy(uri: str) -> str:
    """Translate an Airflow connection URI into a SQLAlchemy URL."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise SettingError("not a connection URI: expected scheme://user@host:port/database")
    base = scheme.split("+", 1)[0]
    if "+" in scheme or base not in _DRIVERS:
        return uri
    if base == "sqlite":
        # Airflow writes sqlite:////abs/path; SQLAlchemy wants the same form.
        return f"sqlite://{rest}" if rest.startswith("/") else f"sqlite:///{rest}"
    return f"{_DRIVERS[base]}://{rest}"
