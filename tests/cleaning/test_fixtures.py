"""The malformed-input corpus: every file in tests/fixtures/ with its exact outcome.

Each fixture goes the production way (drop folder → ``land_csv_table`` →
``clean_table``) with the small mapping of its case in ``cases.yaml``.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from nightcast.cleaning.clean import CleanResult, SchemaDriftError, clean_table
from nightcast.sources.csv_folder import land_csv_table
from nightcast.sources.extract import IntakeError, Window, read_landed
from nightcast.sources.mapping import MappingError, load_mapping
from nightcast.warehouse.schema import CANONICAL_TABLES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CASES: dict[str, dict[str, Any]] = yaml.safe_load((FIXTURES / "cases.yaml").read_text("utf-8"))
RUN = date(2025, 5, 1)
ERRORS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "SchemaDriftError": SchemaDriftError,
    "MappingError": MappingError,
    "IntakeError": IntakeError,
}
ITEM_COLUMNS = [
    line.split()[0]
    for line in CANONICAL_TABLES["items"].strip().splitlines()
    if line.split()[0] not in ("source", "_run_date", "primary")
]


def _mapping_yaml(name: str, case: dict[str, Any]) -> str:
    columns: dict[str, Any] = {c: {"value": None} for c in ITEM_COLUMNS}
    columns["item_id"] = {"from": "id", "type": "id"}
    columns.update(case["columns"])
    table = {"file": f"{name}.csv", **case.get("csv", {}), "columns": columns}
    doc = {
        "source": "fx",
        "kind": "csv_folder",
        "connection": "fx_drop",
        **case.get("source", {}),
        "tables": {"items": table},
    }
    return yaml.safe_dump(doc, allow_unicode=True)


def _run(name: str, case: dict[str, Any], tmp_path: Path) -> CleanResult:
    (tmp_path / "fx.yaml").write_text(_mapping_yaml(name, case), encoding="utf-8")
    mapping = load_mapping(tmp_path / "fx.yaml")
    night = tmp_path / "drop" / RUN.isoformat()
    night.mkdir(parents=True)
    shutil.copy(FIXTURES / f"{name}.csv", night)
    table = mapping.tables["items"]
    landed = land_csv_table(
        tmp_path / "drop", mapping, table, RUN, Window("full", None, None), tmp_path / "lake"
    )
    return clean_table(
        read_landed(landed.path), table, "fx", RUN, landed.path, case.get("timezone", "UTC")
    )


def _plain(value: Any, column: str) -> Any:
    if value is None or value is pd.NaT or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d" if column.endswith("_date") else "%Y-%m-%d %H:%M:%S")
    return float(value) if isinstance(value, int | float) else value


def test_the_corpus_has_one_case_per_fixture_file() -> None:
    files = {p.stem for p in FIXTURES.glob("*.csv")}
    assert files == set(CASES)
    assert len(files) >= 25


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_outcome_is_exact(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    if "raises" in case:
        with pytest.raises(ERRORS[case["raises"]]) as info:
            _run(name, case, tmp_path)
        assert case["error"] in str(info.value)
        return
    result = _run(name, case, tmp_path)

    expected_clean: dict[str, dict[str, Any]] = case.get("clean", {})
    got_clean = {
        row["item_id"].removeprefix("fx:"): {c: _plain(row[c], c) for c in values}
        for row, values in (
            (row, expected_clean.get(row["item_id"].removeprefix("fx:"), {}))
            for row in result.clean.to_dict("records")
        )
    }
    assert got_clean == expected_clean
    q = result.quarantine
    got_quarantine: dict[int, dict[str, str]] = {}
    for row_number, column, reason in zip(
        q["row_number"], q["column_name"], q["reason"], strict=True
    ):
        got_quarantine.setdefault(int(row_number), {})[column] = reason
    assert got_quarantine == case.get("quarantine", {})
    assert result.rows_in == len(result.clean) + result.rows_quarantined
