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
    """The message of the MappingError loading ``doc`` raises: one line per problem."""
    path = _write(tmp_path, doc)
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert str(info.value) == "\n".join(info.value.problems)
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
    assert _error(tmp_path, doc) == (
        "acme.yaml: tables.widgets: unknown canonical table "
        "(known: order_lines, items, locations, promotions, stockouts)"
    )


def test_unknown_column_key_names_the_path_and_value_and_suggests_the_key(
    tmp_path: Path,
) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["columns"]["sku"] = {"frm": "sku"}
    lines = _error(tmp_path, doc).splitlines()
    # The typo itself, and the rule it breaks (no 'from' or 'value' left), one line each.
    assert lines[0].startswith(
        "acme.yaml: tables.items.columns.sku.frm = 'sku': unknown key (did you mean 'from'? "
        "known: from, value, type, required,"
    )
    assert len(lines) == 1


def test_a_typo_in_a_table_key_is_an_error_not_ignored(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["order_lines"]["watermarks"] = doc["tables"]["order_lines"]["watermark"]
    msg = _error(tmp_path, doc)
    assert msg.startswith(
        "acme.yaml: tables.order_lines.watermarks = ['l.updated_at', 'o.updated_at']: unknown "
        "key (did you mean 'watermark'? known: mode, allow_empty, max_shrink, query, watermark,"
    )


def test_a_typo_at_the_top_level_is_an_error(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["null_token"] = ["-"]
    assert _error(tmp_path, doc).startswith(
        "acme.yaml: null_token = ['-']: unknown key (did you mean 'null_tokens'?"
    )


def test_every_problem_is_reported_one_line_each(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["mode"] = "delta"
    doc["tables"]["locations"]["columns"]["region"]["type"] = "text"
    doc["pool"] = 3
    assert _error(tmp_path, doc).splitlines() == [
        "acme.yaml: pool = 3: must be a non-blank text",
        "acme.yaml: tables.items.mode = 'delta': must be 'full' or 'incremental'",
        "acme.yaml: tables.locations.columns.region.type = 'text': must be 'id', 'string', "
        "'float', 'int', 'date' or 'timestamp'",
    ]


def test_missing_canonical_column(tmp_path: Path) -> None:
    doc = _demo_doc()
    del doc["tables"]["locations"]["columns"]["region"]
    assert _error(tmp_path, doc) == (
        "acme.yaml: tables.locations.columns.region: missing: canonical column region "
        "(varchar): read it from a source column (from:) or set a constant (value:, null if none)"
    )


def test_column_that_is_not_canonical(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["columns"]["colour"] = {"from": "colour"}
    assert _error(tmp_path, doc).startswith(
        "acme.yaml: tables.items.columns.colour: not a column of canonical table 'items' "
        "(known: item_id, sku, name,"
    )


def test_reserved_column_cannot_be_mapped(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["columns"]["source"] = {"value": "other"}
    assert _error(tmp_path, doc) == (
        "acme.yaml: tables.items.columns.source: is filled by the pipeline; a mapping must "
        "not set it"
    )


def test_column_with_both_from_and_value(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["order_lines"]["columns"]["currency"] = {"from": "cur", "value": "EUR"}
    assert _error(tmp_path, doc) == (
        "acme.yaml: tables.order_lines.columns.currency: needs exactly one of 'from' "
        "(a source column) or 'value' (a constant)"
    )


def test_column_with_neither_from_nor_value(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["order_lines"]["columns"]["currency"] = {"type": "string"}
    assert "tables.order_lines.columns.currency: needs exactly one of" in _error(tmp_path, doc)


def test_a_column_that_is_not_a_mapping(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["columns"]["sku"] = "sku"
    assert _error(tmp_path, doc) == (
        "acme.yaml: tables.items.columns.sku = 'sku': must be a mapping like "
        "{from: source_column, type: string}"
    )


def test_incremental_without_watermark(tmp_path: Path) -> None:
    doc = _demo_doc()
    del doc["tables"]["order_lines"]["watermark"]
    assert _error(tmp_path, doc) == (
        "acme.yaml: tables.order_lines.watermark: an incremental table needs 'watermark' (the "
        "source timestamp columns that say a row changed, e.g. [updated_at])"
    )


def test_incremental_query_without_window_placeholder(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["order_lines"]["query"] = "select *\n  from sales_order_line"
    assert _error(tmp_path, doc) == (
        "acme.yaml: tables.order_lines.query = 'select * from sales_order_line': an incremental "
        "table's query must contain {window} (where the extract puts its time window)"
    )


def test_full_table_needs_no_window_placeholder(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["order_lines"]["mode"] = "full"
    doc["tables"]["order_lines"]["query"] = "select * from sales_order_line"
    mapping = load_mapping(_write(tmp_path, doc))
    assert mapping.tables["order_lines"].mode == "full"


def test_bad_mode(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["mode"] = "delta"
    assert _error(tmp_path, doc) == (
        "acme.yaml: tables.items.mode = 'delta': must be 'full' or 'incremental'"
    )


def test_bad_column_type(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["columns"]["list_price"] = {"from": "list_price", "type": "money"}
    assert _error(tmp_path, doc) == (
        "acme.yaml: tables.items.columns.list_price.type = 'money': must be 'id', 'string', "
        "'float', 'int', 'date' or 'timestamp'"
    )


def test_scale_on_a_non_float_column(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["columns"]["sku"] = {"from": "sku", "scale": 0.01}
    assert _error(tmp_path, doc) == (
        "acme.yaml: tables.items.columns.sku.scale = 0.01: applies to float columns only, "
        "not to type string"
    )


def test_missing_top_level_key(tmp_path: Path) -> None:
    doc = _demo_doc()
    del doc["connection"]
    assert _error(tmp_path, doc).startswith(
        "acme.yaml: connection: missing: Airflow connection id, read from AIRFLOW_CONN_<ID>"
    )


def test_source_name_must_be_an_identifier(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["source"] = "acme erp"
    assert _error(tmp_path, doc) == (
        "acme.yaml: source = 'acme erp': must be a plain identifier (letters, digits, _), "
        "e.g. acme_erp"
    )


def test_unknown_kind(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["kind"] = "ftp"
    assert _error(tmp_path, doc) == (
        "acme.yaml: kind = 'ftp': must be 'sql' (a database; the default) or 'csv_folder' "
        "(nightly CSV exports)"
    )


def test_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- source: demo\n")
    with pytest.raises(MappingError, match=r"^list\.yaml: expected a mapping"):
        load_mapping(path)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("source: [unclosed\n")
    with pytest.raises(MappingError, match=r"^broken\.yaml: not valid YAML: .*line 2") as info:
        load_mapping(path)
    assert len(str(info.value).splitlines()) == 1


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
    ("column", "spec", "line"),
    [
        (
            "launch_date",
            {"from": "x", "type": "date", "decimal": ","},
            "launch_date.decimal = ',': applies to float and int columns only, not to type date",
        ),
        (
            "list_price",
            {"from": "x", "type": "float", "formats": ["%d"]},
            "list_price.formats = ['%d']: applies to date and timestamp columns only, not to "
            "type float",
        ),
        (
            "list_price",
            {"from": "x", "type": "float", "decimal": ";"},
            "list_price.decimal = ';': must be '.' or ','",
        ),
        (
            "list_price",
            {"from": "x", "type": "float", "decimal": ",", "thousands": ","},
            "list_price.thousands = ',': the thousands separator ',' and the decimal separator "
            "must differ",
        ),
        (
            "list_price",
            {"from": "x", "type": "float", "currency": "yes"},
            "list_price.currency = 'yes': must be true or false",
        ),
        (
            "launch_date",
            {"from": "x", "type": "date", "formats": "%d/%m/%Y"},
            "launch_date.formats = '%d/%m/%Y': must be a list of strftime formats, "
            'e.g. ["%d/%m/%Y"]',
        ),
        (
            "launch_date",
            {"from": "x", "type": "date", "format": "%d", "formats": ["%d"]},
            "launch_date.format = '%d': use 'format' (one) or 'formats' (a list), not both",
        ),
        (
            "launch_date",
            {"from": "x", "type": "date", "timezone": "UTC"},
            "launch_date.timezone = 'UTC': applies to timestamp columns only, not to type date",
        ),
        (
            "updated_at",
            {"from": "x", "type": "timestamp", "timezone": "Mars/Base"},
            "updated_at.timezone = 'Mars/Base': is not an IANA time zone (e.g. Europe/Berlin, UTC)",
        ),
        (
            "name",
            {"from": "x", "normalize": "nfx"},
            "name.normalize = 'nfx': must be 'NFC', 'NFKC', 'NFD' or 'NFKD'",
        ),
        ("name", {"from": "x", "trim": "no"}, "name.trim = 'no': must be true or false"),
        (
            "list_price",
            {"from": "x", "type": "float", "scale": "1%"},
            "list_price.scale = '1%': must be a number the value is multiplied by, e.g. 0.01",
        ),
        (
            "name",
            {"from": "x", "values": {"a": ["b"]}},
            "name.values = {'a': ['b']}: must map source values to canonical ones, "
            "e.g. {O: open, S: shipped}",
        ),
    ],
)
def test_parsing_keys_are_validated_naming_file_path_and_value(
    tmp_path: Path, column: str, spec: dict[str, Any], line: str
) -> None:
    doc = _demo_doc()
    doc["tables"]["items"]["columns"][column] = spec
    assert _error(tmp_path, doc) == f"acme.yaml: tables.items.columns.{line}"


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
    assert _error(tmp_path, doc) == (
        "acme.yaml: timezone = 'Nowhere/Land': is not an IANA time zone (e.g. Europe/Berlin, UTC)"
    )


def test_source_level_separators_that_clash_are_named_once_at_the_top(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc.update(decimal=",", thousands=",")
    assert _error(tmp_path, doc) == (
        "acme.yaml: thousands = ',': the thousands separator ',' and the decimal separator "
        "must differ"
    )


def test_yaml_numbers_in_values_and_null_tokens_mean_their_text(tmp_path: Path) -> None:
    doc = _demo_doc()
    doc["null_tokens"] = ["", -1]
    doc["tables"]["order_lines"]["columns"]["status"]["values"] = {1: "open", 2: "shipped"}
    mapping = load_mapping(_write(tmp_path, doc))
    status = mapping.tables["order_lines"].columns["status"]
    assert status.values == {"1": "open", "2": "shipped"}
    assert status.null_tokens == ("", "-1")


def test_an_empty_key_means_its_default_but_an_empty_typo_is_still_an_error(
    tmp_path: Path,
) -> None:
    doc = _demo_doc()
    doc["pool"] = None  # `pool:` with nothing after it
    doc["tables"]["order_lines"]["parallel"] = None  # automatic
    doc["tables"]["order_lines"]["columns"]["currency"] = {"value": None}  # a constant null
    mapping = load_mapping(_write(tmp_path, doc))
    assert mapping.pool == "erp_demo"
    assert mapping.tables["order_lines"].parallel is None
    currency = mapping.tables["order_lines"].columns["currency"]
    assert (currency.value, currency.source_column) == (None, None)

    doc["pols"] = None
    assert _error(tmp_path, doc).startswith(
        "acme.yaml: pols = None: unknown key (did you mean 'pool'?"
    )
