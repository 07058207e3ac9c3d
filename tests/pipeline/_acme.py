"""A tiny CSV-drop source (``acme``) and a DuckDB warehouse, for stage-level tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from nightcast.config import Settings, get_settings

RUN_DATE = date(2025, 5, 1)

MAPPING = """
source: acme
kind: csv_folder
connection: acme_drop
pool: erp_acme
tables:
  items:
    mode: full
    file: items.csv
    columns:
      item_id: {from: ITEM, type: id}
      sku: {from: ITEM}
      name: {from: NAME, default: UNKNOWN}
      department: {value: Food}
      category: {value: Fruit}
      subcategory: {value: Fresh}
      list_price: {value: "1.0", type: float}
      launch_date: {value: null, type: date}
      discontinue_date: {value: null, type: date}
      updated_at: {from: CHANGED, type: timestamp}
  locations:
    mode: full
    file: stores.csv
    columns:
      location_id: {from: STORE, type: id}
      name: {value: Shop}
      location_type: {value: store}
      country: {value: FR}
      region: {value: North}
      updated_at: {value: null, type: timestamp}
  order_lines:
    mode: incremental
    file: lines.csv
    columns:
      order_line_id: {from: LINE, type: id}
      order_id: {from: ORDER, type: id, required: true}
      order_date: {from: DAY, type: date, required: true}
      item_id: {from: ITEM, type: id, required: true}
      location_id: {from: STORE, type: id, required: true}
      quantity: {from: QTY, type: float, required: true}
      unit_price: {from: PRICE, type: float}
      amount: {value: null, type: float}
      currency: {value: EUR}
      status: {from: STATUS, required: true, values: STATUS_VALUES}
      updated_at: {from: CHANGED, type: timestamp, required: true}
"""

ITEMS = "ITEM,NAME,CHANGED\n1,Apple,2025-04-01 10:00:00\n2,Pear,2025-04-01 10:00:00\n"
STORES = "STORE\n10\n11\n"
LINES = (
    "LINE,ORDER,DAY,ITEM,STORE,QTY,PRICE,STATUS,CHANGED\n"
    "100,1,2025-05-01,1,10,2,1.5,S,2025-05-01 09:00:00\n"
    "101,1,2025-05-01,2,10,1,2.0,S,2025-05-01 09:00:00\n"
    "102,2,2025-05-01,1,11,3,1.5,R,2025-05-01 10:00:00\n"  # 'R' unknown until the fix
    "103,2,2025-05-01,2,11,4,2.0,R,2025-05-01 10:00:00\n"
    "104,3,2025-05-01,1,11,x,1.5,S,2025-05-01 11:00:00\n"  # never a number
)


@dataclass
class Acme:
    settings: Settings
    drop: Path

    def write_mapping(self, status_values: str) -> None:
        text = MAPPING.replace("STATUS_VALUES", status_values)
        (self.settings.sources_dir / "acme.yaml").write_text(text)

    def drop_files(self, day: date, **files: str) -> None:
        night = self.drop / day.isoformat()
        night.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (night / name.replace("_", ".")).write_text(text)


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Acme]:
    drop = tmp_path / "drop"
    drop.mkdir()
    sources = tmp_path / "sources"
    sources.mkdir()
    monkeypatch.setenv("NIGHTCAST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_PATH", str(tmp_path / "data" / "wh.duckdb"))
    monkeypatch.delenv("NIGHTCAST_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("NIGHTCAST_LAKE_URL", raising=False)
    monkeypatch.setenv("NIGHTCAST_SOURCES_DIR", str(sources))
    monkeypatch.setenv(
        "AIRFLOW_CONN_ACME_DROP", json.dumps({"conn_type": "fs", "extra": {"path": str(drop)}})
    )
    (tmp_path / "data").mkdir()
    fixture = Acme(get_settings(), drop)
    fixture.write_mapping("{S: shipped}")
    fixture.drop_files(RUN_DATE, items_csv=ITEMS, stores_csv=STORES, lines_csv=LINES)
    yield fixture
