"""`nightcast mapping check`: a mapping file and its source checked without running a night.

Against the demo ERP in SQLite, a CSV drop written from it, and the Odoo and ERPNext
shapes on the local PostgreSQL and MariaDB servers (skipped without them, failed under CI).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from unittest import mock

import pytest
import sqlalchemy as sa
import yaml
from _services import fresh_mariadb_database, fresh_postgres_database

from nightcast import demo_erp
from nightcast.cli import main
from nightcast.demo_erp import shapes

SOURCES = Path(__file__).resolve().parents[2] / "include" / "nightcast" / "sources"
DEMO_YAML = SOURCES / "mappings" / "demo.yaml"
EXAMPLES = SOURCES / "examples"
NIGHT = date(2025, 3, 1)


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    # The command fills unset variables from the embedded defaults; keep that out of other tests.
    with mock.patch.dict(os.environ):
        yield


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny demo ERP (SQLite) with one simulated night."""
    url = f"sqlite:///{tmp_path_factory.mktemp('check') / 'demo.sqlite'}"
    demo_erp.generate(url, size="tiny", start=date(2025, 2, 1), end=date(2025, 2, 28), seed=5)
    demo_erp.advance(url, NIGHT)
    return url


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["mapping", "check", *args])
    return code, capsys.readouterr().out.splitlines()


def _edited(tmp_path: Path, source: Path, edit: dict[str, str]) -> Path:
    """A copy of ``source`` with each ``old`` text replaced by ``new`` (named like it)."""
    text = source.read_text()
    for old, new in edit.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / source.name
    path.write_text(text)
    return path


# --- the file alone ----------------------------------------------------------------------


def test_no_connect_checks_the_file_alone(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_DEMO_ERP", "sqlite:////nonexistent/erp.sqlite")
    files = [str(DEMO_YAML), *map(str, sorted(EXAMPLES.glob("*.yaml")))]
    code, out = _check(capsys, "--no-connect", *files)
    assert code == 0
    assert out[0] == "demo.yaml: ok: 5 table(s), 39 mapped column(s); connection not checked"
    assert len(out) == len(files)


def test_a_broken_file_prints_one_line_per_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _edited(
        tmp_path,
        DEMO_YAML,
        {"sku: {from: sku}": "sku: {frm: sku}", "mode: full\n    query: select * from store": (
            "mode: fulll\n    query: select * from store")},
    )  # fmt: skip
    good = tmp_path / "good.yaml"
    shutil.copy(DEMO_YAML, good)
    code, out = _check(capsys, "--no-connect", str(bad), str(good))
    assert code == 1
    assert out[0] == "demo.yaml: tables.items.columns.sku.frm = 'sku': unknown key (did you mean " \
        "'from'? known: from, value, type, required, default, format, formats, values, " \
        "null_tokens, scale, decimal, thousands, currency, excel_serial, timezone, normalize, trim)"  # fmt: skip
    assert out[1] == "demo.yaml: tables.locations.mode = 'fulll': must be 'full' or 'incremental'"
    assert out[2] == "demo.yaml: 2 problem(s)"
    assert out[3].startswith("good.yaml: ok: ")  # every file is checked


def test_an_unreadable_file_is_a_problem_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _check(capsys, "--no-connect", str(tmp_path / "absent.yaml"))
    assert code == 1
    assert out[0].startswith(f"{tmp_path / 'absent.yaml'}: cannot read it: ")


# --- a database: the demo ERP in SQLite ----------------------------------------------------


def test_the_demo_mapping_against_the_demo_erp(
    demo: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_DEMO_ERP", demo)
    code, out = _check(capsys, str(DEMO_YAML))
    assert (code, out) == (
        0,
        [
            "demo.yaml: ok: 5 table(s), 39 mapped column(s); all found over sqlite "
            "connection 'nightcast_demo_erp'"
        ],
    )


def test_a_mapping_that_does_not_fit_the_erp_names_each_key(
    demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_DEMO_ERP", demo)
    path = _edited(
        tmp_path,
        DEMO_YAML,
        {
            "from store order by": "from stores order by",
            "watermark: [l.updated_at, o.updated_at]": "watermark: [l.updated_at, o.changed_at]",
            "quantity: {from: qty,": "quantity: {from: quantity,",
            "watermark: [updated_at]\n    query": "split: stock_out_no\n    watermark: [updated_at]\n    query",
        },
    )
    code, out = _check(capsys, str(path))
    assert code == 1
    assert out == [
        "demo.yaml: tables.locations.query: the ERP refuses it: no such table: stores",
        "demo.yaml: tables.order_lines.watermark = ['l.updated_at', 'o.changed_at']: the query "
        "fails once the window on these columns is in it: no such column: o.changed_at",
        "demo.yaml: tables.order_lines.columns.quantity.from = 'quantity': the query's output "
        "has no such column (it has: line_id, order_id, order_ts, product_id, store_id, qty, "
        "unit_price, amount, line_status, updated_at)",
        "demo.yaml: tables.stockouts.split = 'stock_out_no': the query's output has no such column (it "
        "has: stock_out_id, product_id, store_id, day, updated_at)",
        "demo.yaml: 4 problem(s)",
    ]


def test_a_column_dropped_in_the_erp_is_found_before_a_night_runs(
    demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "erp.sqlite"
    shutil.copy(demo.removeprefix("sqlite:///"), copy)
    engine = sa.create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        conn.execute(sa.text("alter table product drop column subcategory"))
    engine.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_DEMO_ERP", f"sqlite:///{copy}")
    code, out = _check(capsys, str(DEMO_YAML))
    assert code == 1
    assert out[0].startswith(
        "demo.yaml: tables.items.columns.subcategory.from = 'subcategory': the query's output "
        "has no such column (it has: product_id, sku, name, department, category, list_price,"
    )
    assert out[1:] == ["demo.yaml: 1 problem(s)"]


def test_a_missing_sqlite_file_is_reported_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no" / "erp.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_DEMO_ERP", f"sqlite:///{missing}")
    code, out = _check(capsys, str(DEMO_YAML))
    assert (code, out[0]) == (
        1,
        f"demo.yaml: connection = 'nightcast_demo_erp': the SQLite file {missing} "
        "(AIRFLOW_CONN_NIGHTCAST_DEMO_ERP) does not exist",
    )
    assert not missing.exists() and not missing.parent.exists()


def test_an_unconfigured_connection_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NIGHTCAST_ODOO", raising=False)
    code, out = _check(capsys, str(EXAMPLES / "odoo.yaml"))
    assert code == 1
    assert out[0].startswith(
        "odoo.yaml: connection = 'nightcast_odoo': connection 'nightcast_odoo' is not "
        "configured: set AIRFLOW_CONN_NIGHTCAST_ODOO"
    )


# --- a CSV drop folder -----------------------------------------------------------------------


@pytest.fixture
def drop(demo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "drop"
    shapes.to_csv_drop(demo, folder, date(2025, 2, 28))
    shapes.to_csv_drop(demo, folder, NIGHT)
    (folder / "not-a-night").mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_LEGACY_DROP", f"fs://?path={folder}")
    return folder


def test_the_legacy_mapping_against_its_drop_folder(
    drop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _check(capsys, str(EXAMPLES / "legacy_csv.yaml"))
    assert (code, out) == (
        0,
        [
            f"legacy_csv.yaml: ok: 5 table(s), 39 mapped column(s); all found in {drop / '2025-03-01'}"
        ],
    )


def test_a_missing_file_or_column_in_tonights_drop_is_named(
    drop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    night = drop / NIGHT.isoformat()
    (night / "stockouts.csv").unlink()
    stores = night / "stores.csv"
    stores.write_bytes(stores.read_bytes().replace(b"REGION", b"AREA", 1))
    code, out = _check(capsys, str(EXAMPLES / "legacy_csv.yaml"))
    assert code == 1
    assert out[0].startswith(
        f"legacy_csv.yaml: tables.locations.columns.region.from = 'REGION': {stores} has no "
        "such column (it has: STORE_NO, STORE_NAME,"
    )
    assert out[1:] == [
        f"legacy_csv.yaml: tables.stockouts.file = 'stockouts.csv': no such file in {night}",
        "legacy_csv.yaml: 2 problem(s)",
    ]
    # The night before still has everything.
    code, out = _check(capsys, str(EXAMPLES / "legacy_csv.yaml"), "--run-date", "2025-02-28")
    assert code == 0, out


def test_an_optional_file_may_be_absent(
    drop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (drop / NIGHT.isoformat() / "promotions.csv").unlink()
    path = _edited(
        tmp_path,
        EXAMPLES / "legacy_csv.yaml",
        {"file: promotions.csv": "file: promotions.csv\n    optional: true"},
    )
    code, out = _check(capsys, str(path))
    assert code == 0
    assert out[0] == (
        f"note: legacy_csv.yaml: tables.promotions.file = 'promotions.csv': no such file in "
        f"{drop / NIGHT.isoformat()} (optional: a night without it is normal)"
    )
    assert out[1].startswith("legacy_csv.yaml: ok: ")


def test_a_drop_folder_without_nights_or_the_night_asked_for(
    drop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = _check(capsys, str(EXAMPLES / "legacy_csv.yaml"), "--run-date", "2025-03-02")
    assert (code, out[0]) == (
        1,
        "legacy_csv.yaml: connection = 'nightcast_legacy_drop': the drop folder has no night "
        f"{drop / '2025-03-02'}",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_LEGACY_DROP", f"fs://?path={empty}")
    code, out = _check(capsys, str(EXAMPLES / "legacy_csv.yaml"))
    assert code == 1
    assert out[0].startswith(
        f"legacy_csv.yaml: connection = 'nightcast_legacy_drop': the drop folder {empty} "
        "holds no night folder (YYYY-MM-DD) yet"
    )


# --- PostgreSQL (Odoo) and MariaDB (ERPNext) -------------------------------------------------

SERVERS = {
    # shape: (fresh database, the Airflow URI form, a column its items query reads)
    "odoo": (fresh_postgres_database, "postgres", "product_template", "x_launch_date"),
    "erpnext": (fresh_mariadb_database, "mysql", "`tabItem`", "custom_launch_date"),
}


@pytest.fixture(params=sorted(SERVERS))
def erp(
    request: pytest.FixtureRequest, demo: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, sa.Engine]]:
    shape = str(request.param)
    fresh, scheme, *_ = SERVERS[shape]
    url = fresh(f"nightcast_test_mapping_check_{shape}")
    driver = sa.make_url(url).set(
        drivername="postgresql+psycopg" if scheme == "postgres" else "mysql+pymysql"
    )
    getattr(shapes, f"to_{shape}")(demo, driver.render_as_string(hide_password=False))
    airflow_uri = driver.set(drivername=scheme).render_as_string(hide_password=False)
    monkeypatch.setenv(f"AIRFLOW_CONN_NIGHTCAST_{shape.upper()}", airflow_uri)
    engine = sa.create_engine(driver)
    yield shape, engine
    engine.dispose()


def test_an_example_mapping_against_its_erp_server(
    erp: tuple[str, sa.Engine], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shape, engine = erp
    _, _, table, column = SERVERS[shape]
    dialect = "postgresql" if shape == "odoo" else "mysql"
    code, out = _check(capsys, str(EXAMPLES / f"{shape}.yaml"))
    assert (code, out) == (
        0,
        [
            f"{shape}.yaml: ok: 5 table(s), 39 mapped column(s); all found over {dialect} "
            f"connection 'nightcast_{shape}'"
        ],
    )

    # A custom field the mapping reads is dropped in the ERP: the ERP names it.
    with engine.begin() as conn:
        conn.execute(sa.text(f"alter table {table} drop column {column}"))
    # And parallel streams asked to split on a text column.
    doc = yaml.safe_load((EXAMPLES / f"{shape}.yaml").read_text())
    key = doc["tables"]["order_lines"]["columns"]["status"]["from"]
    doc["tables"]["order_lines"].update(parallel=2, split=key)
    path = tmp_path / f"{shape}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    code, out = _check(capsys, str(path))
    assert code == 1
    assert len(out) == 3, out
    assert out[0].startswith(f"{shape}.yaml: tables.items.query: the ERP refuses it: ")
    assert column in out[0]
    assert out[1].startswith(
        f"{shape}.yaml: tables.order_lines.parallel = 2: its streams split on column {key!r}, "
        "which is of type "
    )
    assert out[1].endswith("not an integer; set 'split' to an integer column")
    assert out[2] == f"{shape}.yaml: 2 problem(s)"


def test_an_unreachable_server_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_ODOO", "postgres://etl:s3cret-pw@127.0.0.1:9/odoo")
    code, out = _check(capsys, str(EXAMPLES / "odoo.yaml"))
    assert code == 1
    assert out[0].startswith(
        "odoo.yaml: connection = 'nightcast_odoo': cannot connect to the ERP (postgresql): "
    )
    assert "s3cret-pw" not in "\n".join(out)
    assert out[1:] == ["odoo.yaml: 1 problem(s)"]
