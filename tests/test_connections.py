"""Airflow connections outside a task (``AIRFLOW_CONN_<ID>``) and inside one (Airflow's
connection API) give the same URL, folder and keys; the warehouse can be a connection.

The in-task path is run for real in tests/e2e/test_airflow_connections.py (a night whose
connections are only in Airflow's metadata DB); here Airflow's own parser stands in for
the metadata DB, so both readings of every form are compared field by field.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from airflow.sdk import Connection as AirflowConnection

from nightcast import connections
from nightcast.config import (
    DEFERRED_CONNECTION,
    MissingSettingError,
    SettingError,
    configured_secrets,
    connection_path,
    connection_to_sqlalchemy,
    connection_url,
    get_settings,
)
from nightcast.warehouse.base import open_warehouse

URIS = [
    "sqlite:////abs/path/erp.sqlite",
    "sqlite:///relative/erp.sqlite",
    "postgres://etl:s3cret@erp.internal:5432/sales",
    "postgresql://etl:p%40ss%2Fw%3Ard@erp.internal/sales?sslmode=require&application_name=nc",
    "mysql://root@127.0.0.1:3306/test",
    "mariadb://u:p@h/db",
    "postgresql+psycopg://u:pw@h:5432/db",
    "duckdb:////data/warehouse.duckdb",
]
JSONS = [
    {
        "conn_type": "postgres",
        "host": "db.internal",
        "port": 5433,
        "login": "etl",
        "password": "p@ss/w:rd%",
        "schema": "sales",
        "extra": {"sslmode": "require"},
    },
    {"conn_type": "mysql", "host": "erp", "login": "root", "schema": "erpnext"},
    {"conn_type": "sqlite", "host": "/abs/erp.sqlite"},
    {"conn_type": "duckdb", "host": "/data/warehouse.duckdb"},
]


@pytest.mark.parametrize("uri", URIS)
def test_a_uri_reads_as_airflow_reads_it(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ERP", uri)
    ours = connections.get_connection("erp")
    theirs = AirflowConnection.from_uri(uri, conn_id="erp")
    assert (ours.conn_type, ours.host, ours.port, ours.login, ours.password, ours.schema) == (
        theirs.conn_type,
        theirs.host or None,
        theirs.port,
        theirs.login,
        theirs.password,
        theirs.schema or None,
    )
    assert dict(ours.extra) == theirs.extra_dejson
    assert ours.origin == "AIRFLOW_CONN_ERP"


@pytest.mark.parametrize("uri", URIS)
def test_the_same_url_in_a_task_and_outside(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    """Outside a task the variable's text is translated; in a task Airflow hands over the
    fields. Both must open the same database as the same user with the same options."""
    monkeypatch.setenv("AIRFLOW_CONN_ERP", uri)
    outside = sa.make_url(connection_url("erp"))
    inside = sa.make_url(
        connection_to_sqlalchemy(connections.from_airflow(AirflowConnection.from_uri(uri, "erp")))
    )
    assert outside == inside, (str(outside), str(inside))


@pytest.mark.parametrize("doc", JSONS, ids=lambda d: d["conn_type"])
def test_json_connections_give_the_same_url_in_a_task(
    monkeypatch: pytest.MonkeyPatch, doc: dict[str, object]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ERP", json.dumps(doc))
    outside = sa.make_url(connection_url("erp"))
    inside = sa.make_url(
        connection_to_sqlalchemy(
            connections.from_airflow(AirflowConnection.from_json(json.dumps(doc), "erp"))
        )
    )
    assert outside == inside
    if doc.get("password"):  # a password with URL delimiters survives as itself
        assert outside.password == doc["password"]


@pytest.mark.parametrize(
    "value",
    [
        "fs:///data/drop",
        "fs://?path=%2Fdata%2Fdrop",
        '{"conn_type": "fs", "extra": {"path": "/data/drop"}}',
        '{"conn_type": "fs", "extra": "{\\"path\\": \\"/data/drop\\"}"}',
    ],
)
def test_drop_folders_in_every_form(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DROP", value)
    assert connection_path("drop") == Path("/data/drop")


def test_an_unknown_database_type_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ERP", '{"conn_type": "http", "host": "erp"}')
    with pytest.raises(SettingError, match=r"AIRFLOW_CONN_ERP has type 'http'"):
        connection_url("erp")


def test_a_malformed_json_connection_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ERP", '{"conn_type": "postgres", "port": "five"}')
    with pytest.raises(SettingError, match="AIRFLOW_CONN_ERP is not a JSON connection object"):
        connection_url("erp")


def test_the_warehouse_from_a_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NIGHTCAST_WAREHOUSE_URL", raising=False)
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_CONN_ID", "nightcast_warehouse")
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTCAST_WAREHOUSE", "postgres://nightcast:wh-s3cret@wh.internal:5432/dwh"
    )
    url = sa.make_url(get_settings().warehouse_url)
    assert (url.drivername, url.host, url.database, url.password) == (
        "postgresql+psycopg",
        "wh.internal",
        "dwh",
        "wh-s3cret",
    )
    assert "wh-s3cret" in configured_secrets()


def test_warehouse_url_and_connection_together_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", "duckdb:////tmp/a.duckdb")
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_CONN_ID", "nightcast_warehouse")
    with pytest.raises(
        SettingError, match="NIGHTCAST_WAREHOUSE_URL or NIGHTCAST_WAREHOUSE_CONN_ID"
    ):
        get_settings()


def test_an_erp_database_is_not_a_warehouse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NIGHTCAST_WAREHOUSE_URL", raising=False)
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_CONN_ID", "erp")
    monkeypatch.setenv("AIRFLOW_CONN_ERP", "mysql://root@127.0.0.1:3306/test")
    with pytest.raises(SettingError, match="the warehouse connection 'erp' is a mysql"):
        get_settings()


def test_a_warehouse_connection_airflow_alone_knows_is_looked_up_when_opened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A DAG file parsed outside a task cannot reach the metadata DB: the settings still
    load (the DAG parses), and opening the warehouse there says which connection is missing."""
    monkeypatch.delenv("NIGHTCAST_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_NIGHTCAST_WAREHOUSE", raising=False)
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_CONN_ID", "nightcast_warehouse")
    settings = get_settings()
    assert settings.warehouse_url == f"{DEFERRED_CONNECTION}nightcast_warehouse"
    with (
        pytest.raises(MissingSettingError, match="AIRFLOW_CONN_NIGHTCAST_WAREHOUSE") as info,
        open_warehouse(settings.warehouse_url),
    ):
        pass
    assert "'nightcast_warehouse'" in str(info.value)
