"""ERP shapes of the demo business + the example mappings, landed and cleaned (SQLite targets)."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from nightcast import demo_erp
from nightcast.cleaning.clean import clean_table
from nightcast.demo_erp import shapes
from nightcast.sources.extract import Window, end_of_day, open_source, read_landed
from nightcast.sources.mapping import SourceMapping, load_mapping, load_mappings

EXAMPLES = Path(__file__).resolve().parents[2] / "include" / "nightcast" / "sources" / "examples"
NIGHT = date(2025, 3, 1)
CANONICAL_STATUS = {"open", "shipped", "cancelled", "returned"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('shapes') / 'demo.sqlite'}"
    demo_erp.generate(url, size="tiny", start=date(2025, 1, 1), end=date(2025, 2, 28), seed=3)
    demo_erp.advance(url, NIGHT)
    return url


def _demo_lines(url: str, until: date | None = None) -> dict[str, Any]:
    engine = sa.create_engine(url)
    cut = f"where l.created_at < '{end_of_day(until)}'" if until else ""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select case when o.status = 'cancelled' then 'cancelled' else l.line_status end, "
                f"l.qty from sales_order_line l join sales_order o using (order_id) {cut}"
            )
        ).all()
    engine.dispose()
    return {"n": len(rows), "status": Counter(r[0] for r in rows), "qty": sum(r[1] for r in rows)}


def _land_and_clean(
    mapping: SourceMapping, lake: Path, window: Window | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with open_source(mapping) as land:
        for name, table in mapping.tables.items():
            w = window if window and table.mode == "incremental" else Window("full", None, None)
            res = land(table, NIGHT, w, lake)
            cleaned = clean_table(read_landed(res.path), table, mapping.source, NIGHT, res.path)
            assert cleaned.rows_quarantined == 0, (name, cleaned.quarantine.head().to_dict())
            out[name] = cleaned.clean
    return out


def test_every_example_mapping_loads_with_distinct_sources() -> None:
    mappings = load_mappings(EXAMPLES)
    assert {m.source for m in mappings} == {"odoo", "erpnext", "legacy", "retail"}
    for m in mappings:
        assert set(m.tables) == {"items", "locations", "order_lines", "promotions", "stockouts"}
    kinds = {m.source: m.kind for m in mappings}
    assert kinds["legacy"] == kinds["retail"] == "csv_folder" and kinds["odoo"] == "sql"
    assert next(m for m in mappings if m.source == "odoo").pool == "erp_odoo"


@pytest.mark.parametrize("shape", ["odoo", "erpnext"])
def test_sql_shape_lands_every_demo_line_through_its_mapping(
    demo: str, shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dst = f"sqlite:///{tmp_path / shape}.sqlite"
    counts = getattr(shapes, f"to_{shape}")(demo, dst)
    again = getattr(shapes, f"to_{shape}")(demo, dst)  # rerunnable: a full rewrite
    assert counts == again
    monkeypatch.setenv(f"AIRFLOW_CONN_NIGHTCAST_{shape.upper()}", dst)
    mapping = load_mapping(EXAMPLES / f"{shape}.yaml")
    clean = _land_and_clean(
        mapping, tmp_path / "lake", Window("incremental", None, end_of_day(NIGHT))
    )
    expected = _demo_lines(demo)
    lines = clean["order_lines"]
    assert len(lines) == expected["n"] > 0
    assert Counter(lines["status"]) == expected["status"]
    assert lines["quantity"].sum() == pytest.approx(expected["qty"])
    assert set(lines["status"]) <= CANONICAL_STATUS and "cancelled" in set(lines["status"])
    assert (lines.loc[lines["quantity"] < 0, "status"] == "returned").all()
    assert lines["order_line_id"].str.startswith(f"{shape}:").all()
    # Every line references an item and a location of the same source.
    assert set(lines["item_id"]) <= set(clean["items"]["item_id"])
    assert set(lines["location_id"]) <= set(clean["locations"]["location_id"])
    assert set(clean["locations"]["location_type"]) <= {"store", "warehouse", "online"}
    assert clean["items"]["category"].ne("UNKNOWN").all()
    assert clean["promotions"]["discount_pct"].between(0, 1).all()
    assert len(clean["stockouts"]) > 0


def test_odoo_until_leaves_out_later_orders(demo: str, tmp_path: Path) -> None:
    dst = f"sqlite:///{tmp_path / 'odoo.sqlite'}"
    shapes.to_odoo(demo, dst, until=date(2025, 2, 1))
    engine = sa.create_engine(dst)
    with engine.connect() as conn:
        n: int = conn.execute(sa.text("select count(*) from sale_order_line")).scalar_one()
        last: Any = conn.execute(sa.text("select max(create_date) from sale_order")).scalar_one()
    engine.dispose()
    assert n == _demo_lines(demo, date(2025, 2, 1))["n"]
    assert str(last) < "2025-02-02"


def test_csv_drop_history_then_nightly_increment(
    demo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "drop"
    first = shapes.to_csv_drop(demo, drop, NIGHT, history=True)
    assert first["sales_lines.csv"] == _demo_lines(demo)["n"]
    raw = (drop / NIGHT.isoformat() / "sales_lines.csv").read_bytes()
    assert b";" in raw.splitlines()[0] and b"\r\n" in raw
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_LEGACY_DROP", f"fs://?path={drop}")
    mapping = load_mapping(EXAMPLES / "legacy_csv.yaml")
    clean = _land_and_clean(mapping, tmp_path / "lake")
    assert Counter(clean["order_lines"]["status"]) == _demo_lines(demo)["status"]
    assert clean["promotions"]["location_id"].isna().any()  # N/A = every store

    nightly = shapes.to_csv_drop(demo, tmp_path / "nightly", NIGHT)
    assert 0 < nightly["sales_lines.csv"] < first["sales_lines.csv"]
    assert nightly["items.csv"] == first["items.csv"]  # dimensions: full export every night
