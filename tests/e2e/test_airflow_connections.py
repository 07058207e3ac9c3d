"""A night whose ERP and warehouse connections exist only in Airflow's metadata DB.

They are added with `airflow connections add` (what an engineer does in the UI's Admin >
Connections, stored in the same table), and the environment holds neither
``AIRFLOW_CONN_NIGHTCAST_DEMO_ERP`` nor ``NIGHTCAST_WAREHOUSE_URL``: the DAG still parses,
and every task finds both through Airflow's connection API.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from _deployment import demo_deployment, run_dag
from _services import fresh_postgres_database

from nightcast.config import DEFERRED_CONNECTION, get_settings

pytestmark = pytest.mark.e2e

NIGHT = date(2025, 5, 1)
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow(*args: str, check: bool = True) -> str:
    done = subprocess.run(
        [AIRFLOW, *args], capture_output=True, text=True, env=os.environ.copy(), check=False
    )
    assert done.returncode == 0 or not check, done.stderr[-2000:]
    return done.stdout


def test_a_night_uses_connections_defined_only_in_airflow(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    warehouse = sa.make_url(fresh_postgres_database("nightcast_e2e_conn_warehouse"))
    data = tmp_path_factory.mktemp("airflow-connections")
    env = {"NIGHTCAST_WAREHOUSE_CONN_ID": "nightcast_warehouse"}
    with demo_deployment(data, env) as dags:
        erp_uri = os.environ.pop("AIRFLOW_CONN_NIGHTCAST_DEMO_ERP")
        try:
            # Outside a task the warehouse connection cannot be looked up yet: deferred.
            assert get_settings().warehouse_url == f"{DEFERRED_CONNECTION}nightcast_warehouse"
            for conn_id in ("nightcast_demo_erp", "nightcast_warehouse"):
                airflow("connections", "delete", conn_id, check=False)
            airflow("connections", "add", "nightcast_demo_erp", "--conn-uri", erp_uri)
            airflow(
                "connections",
                "add",
                "nightcast_warehouse",
                "--conn-type",
                "postgres",
                "--conn-host",
                warehouse.host or "127.0.0.1",
                "--conn-port",
                str(warehouse.port or 5432),
                "--conn-login",
                warehouse.username or "postgres",
                "--conn-schema",
                warehouse.database or "",
            )
            assert not any(k.startswith("AIRFLOW_CONN_NIGHTCAST") for k in os.environ)
            state = run_dag(dags["erp_forecast_nightly"], NIGHT)
        finally:  # the metadata DB outlives this test: later ones use the environment's
            for conn_id in ("nightcast_demo_erp", "nightcast_warehouse"):
                airflow("connections", "delete", conn_id, check=False)
            os.environ["AIRFLOW_CONN_NIGHTCAST_DEMO_ERP"] = erp_uri
    assert state == "success"
    # The night wrote to the PostgreSQL warehouse the connection names, from the ERP the
    # other one names, and nowhere else.
    engine = sa.create_engine(warehouse.set(drivername="postgresql+psycopg"))
    with engine.connect() as conn:
        status = conn.execute(
            sa.text("select status from forecast.runs where run_date = :d"), {"d": NIGHT}
        ).scalar_one()
        extracted = conn.execute(
            sa.text(
                "select sum(rows_extracted) from ops.extract_windows "
                "where run_date = :d and source = 'demo'"
            ),
            {"d": NIGHT},
        ).scalar_one()
        published = conn.execute(sa.text("select count(*) from marts.forecast_latest")).scalar_one()
    engine.dispose()
    assert status == "published"
    assert extracted > 0 and published > 0
    assert not (data / "warehouse.duckdb").exists()
