"""The mapping JSON Schema: generated from the models, committed, and true to the loader."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from nightcast.cli import main
from nightcast.sources.mapping import MappingError, load_mapping
from nightcast.sources.mapping_models import schema_text

SOURCES = Path(__file__).resolve().parents[2] / "include" / "nightcast" / "sources"
SCHEMA = SOURCES / "mapping.schema.json"
SHIPPED = sorted([*SOURCES.glob("mappings/*.yaml"), *SOURCES.glob("examples/*.yaml")])
MODELINE = "# yaml-language-server: $schema=../mapping.schema.json"


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_schema_is_generated_from_the_models() -> None:
    assert SCHEMA.read_text() == schema_text(), (
        "include/nightcast/sources/mapping.schema.json is stale: "
        ".venv/bin/nightcast mapping schema > include/nightcast/sources/mapping.schema.json"
    )


def test_nightcast_mapping_schema_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mapping", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(SCHEMA.read_text())


def test_the_shipped_mappings_are_found() -> None:
    assert {p.name for p in SHIPPED} >= {"demo.yaml", "odoo.yaml", "legacy_csv.yaml"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_mapping_validates_against_the_schema_and_the_models(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in _validator().iter_errors(doc)]
    assert errors == []
    assert load_mapping(path).source == doc["source"]
    # Editors find the schema from the file's first line.
    assert path.read_text().splitlines()[0] == MODELINE
    assert (path.parent / "../mapping.schema.json").resolve() == SCHEMA


def _demo() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load((SOURCES / "mappings" / "demo.yaml").read_text()))


def _legacy() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load((SOURCES / "examples" / "legacy_csv.yaml").read_text()))


def _typo(doc: dict[str, Any]) -> None:
    doc["tables"]["items"]["columns"]["sku"]["frm"] = "x"


def _unknown_table(doc: dict[str, Any]) -> None:
    doc["tables"]["widgets"] = doc["tables"]["items"]


def _missing_column(doc: dict[str, Any]) -> None:
    del doc["tables"]["locations"]["columns"]["region"]


def _csv_key_on_sql(doc: dict[str, Any]) -> None:
    doc["tables"]["items"]["delimiter"] = ";"


def _bad_type(doc: dict[str, Any]) -> None:
    doc["tables"]["items"]["columns"]["list_price"]["type"] = "money"


def _parallel_too_high(doc: dict[str, Any]) -> None:
    doc["tables"]["order_lines"]["parallel"] = 9


def _unknown_kind(doc: dict[str, Any]) -> None:
    doc["kind"] = "ftp"


@pytest.mark.parametrize(
    "break_it",
    [_typo, _unknown_table, _missing_column, _csv_key_on_sql, _bad_type, _parallel_too_high,
     _unknown_kind],
)  # fmt: skip
def test_what_the_loader_refuses_the_schema_refuses_too(tmp_path: Path, break_it: Any) -> None:
    doc = _demo()
    break_it(doc)
    assert list(_validator().iter_errors(doc)) != []
    path = tmp_path / "acme.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(MappingError):
        load_mapping(path)


def test_the_schema_tells_the_kinds_apart() -> None:
    validator = _validator()
    legacy = _legacy()
    assert list(validator.iter_errors(legacy)) == []
    legacy["tables"]["items"]["query"] = "select 1"  # a database key on a CSV table
    assert list(validator.iter_errors(legacy)) != []
    del legacy["tables"]["items"]["query"]
    del legacy["kind"]  # without kind it is a database source: 'file' is not a key of one
    assert list(validator.iter_errors(legacy)) != []
