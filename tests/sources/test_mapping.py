"""Source mapping files: the shipped demo mapping loads, and every mistake is named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from nightcast.sources.mapping import (
    MappingError,
    load_mapping,
    load_mappings,
    source_pools,
)
from nightcast.warehouse.duck import ensure_schema
from nightcast.warehouse.schema import CANONICAL_TABLES, NATURAL_KEYS

DEMO_YAML = (
    Path(__file__).resolve().parents[2]
    / "include"
    / "nightcast"
    / "sources"
    / "mappings"
    / "demo.yaml"
)
PIPELINE_COLUMNS = {"source", "_run_date"}


def _warehouse_columns() -> dict[str, set[str]]:
    """Canonical columns as the warehouse DDL really creates them (independent of the parser)."""
    con = duckdb.connect()
    ensure_schema(con)
    rows = con.execute(
        "select table_name, column_name from information_schema.columns where table_schema = 'raw'"
    ).fetchall()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return out


def _demo_doc() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(DEMO_YAML.read_text()))


def _write(folder: Path, doc: dict[str, Any], name: str = "acme.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _error(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = _write(tmp_path, doc)
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    return str(info.value)


def test_demo_mapping_loads_and_maps_every_canonical_column() -> None:
    mapping = load_mapping(DEMO_YAML)
    warehouse = _warehouse_columns()

    assert mapping.source == "demo"
    assert mapping.connection == "nightcast_demo_erp"
    assert mapping.pool == "erp_demo"
    assert set(mapping.tables) == set(CANONICAL_TABLES)
    for name, table in mapping.tables.items():
        assert set(table.columns) == warehouse[name] - PIPELINE_COLUMNS, name
        # The natural key is always required, whatever the file says.
        assert table.columns[NATURAL_KEYS[name]].required, name
        assert table.key == NATURAL_KEYS[name]

    lines = mapping.tables["order_lines"]
    assert lines.mode == "incremental"
    assert lines.watermark_columns == ("l.updated_at", "o.updated_at")
    assert "{window}" in lines.query
    assert lines.columns["currency"].value == "EUR"
    assert lines.columns["currency"].source_column is None
    assert mapping.tables["promotions"].columns["discount_pct"].scale == pytest.approx(0.01)
    assert mapping.tables["items"].columns["name"].default == "UNKNOWN"
    # The file-level null tokens reach every column rule.
    assert "#N/A" in mapping.tables["items"].columns["sku"].null_tokens


def test_unknown_canonical_table(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["widgets"] = doc["tables"]["items"]
    msg = _error(tmp_path, doc)
    assert "acme.yaml" in msg
    assert "widgets" in msg
    assert "unknown canonical table" in msg


def test_unknown_column_key(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["columns"]["sku"] = {"frm": "sku"}
    msg = _error(tmp_path, doc)
    assert "acme.yaml" in msg
    assert "'items'" in msg
    assert "'sku'" in msg
    assert "frm" in msg


def test_missing_canonical_column(tmp_path: Path) -> None:
    doc = _demo_doc()
    del doc["tables"]["locations"]["columns"]["region"]
    msg = _error(tmp_path, doc)
    assert "acme.yaml" in msg
    assert "'locations'" in msg
    assert "region" in msg


def test_column_that_is_not_canonical(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["columns"]["colour"] = {"from": "colour"}
    msg = _error(tmp_path, doc)
    assert "acme.yaml" in msg and "'items'" in msg and "colour" in msg


def test_reserved_column_cannot_be_mapped(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["columns"]["source"] = {"value": "other"}
    msg = _error(tmp_path, doc)
    assert "'items'" in msg and "source" in msg


def test_column_with_both_from_and_value(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["order_lines"]["columns"]["currency"] = {"from": "cur", "value": "EUR"}
    msg = _error(tmp_path, doc)
    assert "acme.yaml" in msg
    assert "'order_lines'" in msg
    assert "'currency'" in msg
    assert "exactly one of 'from'" in msg


def test_column_with_neither_from_nor_value(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["order_lines"]["columns"]["currency"] = {"type": "string"}
    msg = _error(tmp_path, doc)
    assert "'order_lines'" in msg and "'currency'" in msg


def test_incremental_without_watermark(tmp_path: Path) -> None:
    doc = _demo_doc()
    del doc["tables"]["order_lines"]["watermark"]
    msg = _error(tmp_path, doc)
    assert "acme.yaml" in msg
    assert "'order_lines'" in msg
    assert "watermark" in msg


def test_incremental_query_without_window_placeholder(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["order_lines"]["query"] = "select * from sales_order_line"
    msg = _error(tmp_path, doc)
    assert "acme.yaml" in msg
    assert "'order_lines'" in msg
    assert "{window}" in msg


def test_full_table_needs_no_window_placeholder(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["order_lines"]["mode"] = "full"
    doc["tables"]["order_lines"]["query"] = "select * from sales_order_line"
    mapping = load_mapping(_write(tmp_path, doc))
    assert mapping.tables["order_lines"].mode == "full"


def test_bad_mode(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["mode"] = "delta"
    msg = _error(tmp_path, doc)
    assert "'items'" in msg and "delta" in msg


def test_bad_column_type(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["columns"]["list_price"] = {"from": "list_price", "type": "money"}
    msg = _error(tmp_path, doc)
    assert "acme.yaml" in msg
    assert "'items'" in msg
    assert "'list_price'" in msg
    assert "money" in msg


def test_scale_on_a_non_float_column(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["columns"]["sku"] = {"from": "sku", "scale": 0.01}
    msg = _error(tmp_path, doc)
    assert "acme.yaml" in msg
    assert "'items'" in msg
    assert "'sku'" in msg
    assert "scale" in msg


def test_missing_top_level_key(tmp_path: Path) -> None:
    doc = _demo_doc()
    del doc["connection"]
    msg = _error(tmp_path, doc)
    assert "acme.yaml" in msg and "connection" in msg


def test_source_name_must_be_an_identifier(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["source"] = "acme erp"
    msg = _error(tmp_path, doc)
    assert "acme.yaml" in msg and "acme erp" in msg


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("source: [unclosed\n")
    with pytest.raises(MappingError, match=r"broken\.yaml"):
        load_mapping(path)


def test_duplicate_source_names_across_files(tmp_path: Path) -> None:
    doc = _demo_doc()
    _write(tmp_path, doc, "a_first.yaml")
    _write(tmp_path, doc, "b_second.yaml")
    with pytest.raises(MappingError) as info:
        load_mappings(tmp_path)
    msg = str(info.value)
    assert "'demo'" in msg
    assert "a_first.yaml" in msg
    assert "b_second.yaml" in msg


def test_load_mappings_sorts_by_source(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["source"] = "zeta"
    _write(tmp_path, doc, "a.yaml")
    doc["source"] = "alpha"
    _write(tmp_path, doc, "b.yaml")
    assert [m.source for m in load_mappings(tmp_path)] == ["alpha", "zeta"]


def test_source_pools(tmp_path: Path) -> None:
    doc = _demo_doc()
    _write(tmp_path, doc, "demo.yaml")
    # A second source without an explicit pool gets erp_<source>; tables are not validated.
    (tmp_path / "sap.yaml").write_text("source: sap\nconnection: sap_prod\ntables: {}\n")
    (tmp_path / "notes.txt").write_text("source: ignored\n")
    # demo's incremental order_lines may open three streams; sap has no tables.
    assert source_pools(tmp_path) == [("demo", "erp_demo", 3), ("sap", "erp_sap", 1)]


def test_the_extract_task_takes_one_pool_slot_per_connection_it_may_open(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text(
        "source: big\nconnection: c\ntables:\n"
        "  items: {mode: full}\n"
        "  order_lines: {mode: incremental, parallel: 4, split: line_id}\n"
    )
    (tmp_path / "dims.yaml").write_text(
        "source: dims\nconnection: c\ntables:\n  items: {mode: full}\n"
    )
    (tmp_path / "drop.yaml").write_text(
        "source: drop\nkind: csv_folder\nconnection: c\ntables:\n  lines: {mode: incremental}\n"
    )
    assert [p.extract_slots for p in source_pools(tmp_path)] == [4, 1, 1]


def test_source_pools_of_the_shipped_folder() -> None:
    assert ("demo", "erp_demo", 3) in source_pools(DEMO_YAML.parent)


# --- parsing keys (decimal, thousands, currency, formats, excel_serial, timezone, ...) -----


@pytest.mark.parametrize(
    ("column", "spec", "message"),
    [
        ("launch_date", {"from": "x", "type": "date", "decimal": ","}, "'decimal' applies to"),
        ("list_price", {"from": "x", "type": "float", "formats": ["%d"]}, "'formats' applies"),
        ("list_price", {"from": "x", "type": "float", "decimal": ";"}, "'decimal' must be"),
        (
            "list_price",
            {"from": "x", "type": "float", "decimal": ",", "thousands": ","},
            "'thousands' must be",
        ),
        ("list_price", {"from": "x", "type": "float", "currency": "yes"}, "'currency' must be"),
        ("launch_date", {"from": "x", "type": "date", "formats": "%d/%m/%Y"}, "a list of"),
        (
            "launch_date",
            {"from": "x", "type": "date", "format": "%d", "formats": ["%d"]},
            "not both",
        ),
        ("launch_date", {"from": "x", "type": "date", "timezone": "UTC"}, "timestamp columns"),
        ("updated_at", {"from": "x", "type": "timestamp", "timezone": "Mars/Base"}, "IANA"),
        ("name", {"from": "x", "normalize": "NFX"}, "'normalize' must be"),
        ("name", {"from": "x", "trim": "no"}, "'trim' must be"),
    ],
)
def test_parsing_keys_are_validated_naming_file_table_column_and_key(
    tmp_path: Path, column: str, spec: dict[str, Any], message: str
) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["columns"][column] = spec
    msg = _error(tmp_path, doc)
    assert message in msg
    assert "acme.yaml" in msg and "'items'" in msg and f"'{column}'" in msg


def test_parsing_keys_and_source_level_defaults_are_loaded(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc.update(decimal=",", timezone="Europe/Berlin", normalize="nfkc")
    cols = doc["tables"]["items"]["columns"]
    cols["list_price"] = {"from": "p", "type": "float", "currency": True}
    cols["launch_date"] = {
        "from": "d",
        "type": "date",
        "formats": ["%d/%m/%Y", "%d.%m.%Y"],
        "excel_serial": True,
    }
    cols["discontinue_date"] = {"from": "d2", "type": "date", "format": "%d/%m/%Y"}
    cols["name"] = {"from": "n", "trim": False}
    items = load_mapping(_write(tmp_path, doc)).tables["items"].columns

    price = items["list_price"]
    assert (price.decimal, price.thousands, price.currency) == (",", ".", True)
    assert items["launch_date"].formats == ("%d/%m/%Y", "%d.%m.%Y")
    assert items["launch_date"].excel_serial
    assert items["discontinue_date"].formats == ("%d/%m/%Y",)  # 'format' still works
    assert items["updated_at"].timezone == "Europe/Berlin"  # source default, timestamps only
    assert items["launch_date"].timezone is None
    assert items["name"].normalize == "NFKC" and not items["name"].trim
    assert items["sku"].trim and items["sku"].decimal == "."  # strings keep the defaults


def test_a_bad_source_level_timezone_names_the_file(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["timezone"] = "Nowhere/Land"
    msg = _error(tmp_path, doc)
    assert "acme.yaml" in msg and "Nowhere/Land" in msg
