"""Airflow connections (ERP sources, the warehouse, the object store), resolved the way
Airflow resolves them.

Inside an Airflow task, through Airflow's own connection API (``airflow.sdk.Connection``):
a connection defined in the UI (the metadata DB), in an ``AIRFLOW_CONN_<ID>`` variable or
in a configured secrets backend is found, in Airflow's order. Outside Airflow (the
``nightcast`` CLI, scripts, tests), from the same ``AIRFLOW_CONN_<ID>`` variable, in
either of Airflow's two forms: a URI (``postgres://user:pass@host:5432/db?sslmode=require``)
or JSON (``{"conn_type": "fs", "extra": {"path": "/drop"}}``).

Either way the result is a :class:`Connection` of Airflow's fields; ``nightcast.config``
turns it into a SQLAlchemy URL or a folder. This module sits below ``storage`` so that
the object store's keys can come from a connection too; it imports Airflow only where
Airflow is already running the task.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from nightcast.errors import DeterministicError

# Passwords of the connections resolved in this process; nightcast.config.configured_secrets
# adds them to what messages and task logs redact (a connection from the metadata DB is in
# no environment variable for it to find).
_RESOLVED_PASSWORDS: set[str] = set()


class ConnectionNotFoundError(LookupError, DeterministicError):
    """No connection of that id; the message says where it was looked for."""


class ConnectionFormatError(ValueError, DeterministicError):
    """An ``AIRFLOW_CONN_<ID>`` value Airflow would not read either; the message names it."""


@dataclass(frozen=True)
class Connection:
    """An Airflow connection's fields, wherever it was defined."""

    conn_id: str
    conn_type: str
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Where it came from, for messages: "AIRFLOW_CONN_ERP" or "Airflow connection 'erp'".
    origin: str = ""
    # The variable's text when it came from the environment (URI checks name the variable).
    raw: str | None = None


def env_var(conn_id: str) -> str:
    """The environment variable Airflow reads connection ``conn_id`` from."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def in_airflow_task() -> bool:
    """True while Airflow's task runner runs this process's task (``dag.test()`` included):
    its supervisor then answers connection lookups from the metadata DB."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


def get_connection(conn_id: str) -> Connection:
    """Connection ``conn_id``: through Airflow's connection API inside a task, else from
    ``AIRFLOW_CONN_<ID>``. Raises :class:`ConnectionNotFoundError` naming both places."""
    conn = _from_airflow(conn_id) if in_airflow_task() else _from_environment(conn_id)
    if conn.password:
        _RESOLVED_PASSWORDS.add(conn.password)
    return conn


def resolved_passwords() -> set[str]:
    return set(_RESOLVED_PASSWORDS)


def _from_airflow(conn_id: str) -> Connection:
    from airflow.sdk import Connection as AirflowConnection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        found = AirflowConnection.get(conn_id)
    except AirflowNotFoundException:
        raise ConnectionNotFoundError(
            f"connection {conn_id!r} is not defined in Airflow: add it in the UI (Admin > "
            f"Connections), with `airflow connections add {conn_id} --conn-uri ...`, in a "
            f"secrets backend, or as {env_var(conn_id)}"
        ) from None
    return from_airflow(found)


def from_airflow(found: Any) -> Connection:
    """The fields of a connection Airflow's API returned (``airflow.sdk.Connection``)."""
    return Connection(
        conn_id=found.conn_id,
        conn_type=str(found.conn_type or ""),
        host=found.host or None,
        port=found.port or None,
        login=found.login or None,
        password=found.password or None,
        schema=found.schema or None,
        extra=found.extra_dejson,
        origin=f"Airflow connection {found.conn_id!r}",
    )


def _from_environment(conn_id: str) -> Connection:
    var = env_var(conn_id)
    raw = os.environ.get(var, "").strip()
    if not raw:
        raise ConnectionNotFoundError(
            f"connection {conn_id!r} is not configured: set {var} (outside Airflow the "
            "connection is read from that variable; inside a task Airflow's connections "
            "are used too)"
        )
    if raw.startswith("{"):
        return _from_json(conn_id, var, raw)
    return _from_uri(conn_id, var, raw)


def _from_json(conn_id: str, var: str, raw: str) -> Connection:
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        extra = doc.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra)
        if not isinstance(extra, dict):
            raise ValueError("extra is not an object")
        port = int(doc["port"]) if doc.get("port") not in (None, "") else None
    except (ValueError, TypeError) as exc:
        raise ConnectionFormatError(f"{var} is not a JSON connection object: {exc}") from None
    return Connection(
        conn_id=conn_id,
        conn_type=str(doc.get("conn_type") or ""),
        host=doc.get("host") or None,
        port=port,
        login=doc.get("login") or None,
        password=doc.get("password") or None,
        schema=doc.get("schema") or None,
        extra=extra,
        origin=var,
        raw=raw,
    )


def _from_uri(conn_id: str, var: str, raw: str) -> Connection:
    """Airflow's URI form, read as Airflow reads it: ``postgresql`` is type ``postgres``,
    the path after the first ``/`` is the schema, the query is the extra (or the JSON in
    ``__extra__``)."""
    scheme, sep, _ = raw.partition("://")
    if not sep or not scheme:
        raise ConnectionFormatError(
            f"{var} is not a connection URI: expected type://user:password@host:port/schema "
            "or a JSON object"
        )
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ConnectionFormatError(f"{var}: {exc}") from None
    conn_type = scheme.replace("-", "_")
    if conn_type == "postgresql":
        conn_type = "postgres"
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    extra: dict[str, Any] = query
    if "__extra__" in query:
        try:
            extra = json.loads(query["__extra__"])
        except ValueError as exc:
            raise ConnectionFormatError(f"{var}: __extra__ is not JSON: {exc}") from None
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return Connection(
        conn_id=conn_id,
        conn_type=conn_type,
        host=unquote(parts.hostname) if parts.hostname else None,
        port=port,
        login=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        schema=unquote(path) or None,
        extra=extra,
        origin=var,
        raw=raw,
    )
