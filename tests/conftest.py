"""Test-wide environment: an isolated Airflow home and data folder per session.

Set at import time, before anything imports Airflow, which reads its
configuration once.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _ui_world import UiWorld

    from nightcast.storage import Location

ROOT = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="nightcast-tests-"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(_SESSION_DIR / "airflow_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_SESSION_DIR / 'airflow_home' / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "NIGHTCAST_DATA_DIR": str(_SESSION_DIR / "data"),
        "NIGHTCAST_WAREHOUSE_PATH": str(_SESSION_DIR / "data" / "warehouse.duckdb"),
        "AIRFLOW_CONN_NIGHTCAST_DEMO_ERP": f"sqlite:///{_SESSION_DIR / 'data' / 'demo_erp.sqlite'}",
        "LIGHTGBM_NUM_THREADS": "1",
    }
)
for _sub in ("airflow_home", "data"):
    (_SESSION_DIR / _sub).mkdir(parents=True, exist_ok=True)


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """Undo what a test wrote to os.environ: commands under test do write it (``cli.main``
    fills in the embedded defaults, e.g. NIGHTCAST_SIMULATED_SOURCES=demo), and a value
    left behind would change what later tests' nights do."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[object]:
    """SeaweedFS on loopback for the whole session (tests/_s3.py); skip or fail when absent."""
    import _s3

    try:
        server = _s3.start()
    except RuntimeError as err:
        _s3.unavailable(err)
    yield server
    server.stop()


@pytest.fixture
def s3_root(
    s3_server: object, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    """A fresh ``s3://bucket/prefix`` on the test store, with the AWS_* environment set."""
    import uuid

    from _s3 import S3Server

    assert isinstance(s3_server, S3Server)
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]
    return f"s3://{s3_server.bucket}/{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["local", "s3"])
def store_root(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """An empty folder on the local disk, then on the test object store: a test using it
    runs once on each (the lake, models and reports must behave the same on both)."""
    from nightcast.storage import location

    if request.param == "local":
        return location(tmp_path / "store")
    return location(request.getfixturevalue("s3_root"))


@pytest.fixture(scope="session")
def ui_world(tmp_path_factory: pytest.TempPathFactory) -> UiWorld:
    """Three real nights and a weekly retrain for the Nightcast page's tests, built once
    (tests/_ui_world.py; a few minutes)."""
    from _ui_world import build

    return build(tmp_path_factory.mktemp("ui-world"))
