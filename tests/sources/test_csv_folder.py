"""The csv_folder lander: tonight's export file → all-string landing Parquet."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from nightcast.cleaning.clean import SchemaDriftError, clean_table
from nightcast.sources.csv_folder import DropFileMissingError, land_csv_table
from nightcast.sources.extract import Window, landed_parts, landing_path, open_source, read_landed
from nightcast.sources.mapping import MappingError, SourceMapping, load_mapping

RUN = date(2025, 5, 1)
WINDOW = Window("full", None, None)

YAML = """
source: legacy
kind: csv_folder
connection: legacy_drop
tables:
  locations:
    file: {file}
    delimiter: "{delimiter}"
    encoding: {encoding}
    optional: {optional}
    columns:
      location_id: {{from: Code, type: id}}
      name: {{from: Name}}
      location_type: {{value: store}}
      country: {{from: Land}}
      region: {{value: UNKNOWN}}
      updated_at: {{from: Changed, type: timestamp, format: "%d/%m/%Y %H:%M"}}
"""


def _mapping(
    tmp_path: Path,
    file: str = "stores.csv",
    delimiter: str = ";",
    encoding: str = "cp1252",
    optional: str = "false",
) -> SourceMapping:
    path = tmp_path / "legacy.yaml"
    path.write_text(
        YAML.format(file=file, delimiter=delimiter, encoding=encoding, optional=optional)
    )
    return load_mapping(path)


def _drop(tmp_path: Path, name: str, data: bytes, day: date = RUN) -> Path:
    folder = tmp_path / "drop"
    (folder / day.isoformat()).mkdir(parents=True, exist_ok=True)
    (folder / day.isoformat() / name).write_bytes(data)
    return folder


def test_lands_every_column_as_a_string_with_delimiter_and_encoding(tmp_path: Path) -> None:
    mapping = _mapping(tmp_path)
    text = 'Code;Name;Land;Changed\n007;"Köln; Süd";DE;01/05/2025 08:00\n8;Zürich;;N/A\n'
    folder = _drop(tmp_path, "stores.csv", text.encode("cp1252"))
    res = land_csv_table(
        folder, mapping, mapping.tables["locations"], RUN, WINDOW, tmp_path / "lake"
    )
    assert res.rows == 2
    assert res.path == landing_path(tmp_path / "lake", "legacy", "locations", RUN)
    landed = read_landed(res.path)
    assert landed.schema == pa.schema(
        [(c, pa.string()) for c in ("Code", "Name", "Land", "Changed")]
    )
    assert landed.to_pylist() == [
        {"Code": "007", "Name": "Köln; Süd", "Land": "DE", "Changed": "01/05/2025 08:00"},
        {"Code": "8", "Name": "Zürich", "Land": "", "Changed": "N/A"},
    ]
    assert [f.name for f in res.path.files("*")] == sorted(  # nothing temporary left
        ["_manifest.json", *(p.name for p in landed_parts(res.path))]
    )
    cleaned = clean_table(landed, mapping.tables["locations"], "legacy", RUN, res.path)
    assert list(cleaned.clean["location_id"]) == ["legacy:007", "legacy:8"]
    assert str(cleaned.clean["updated_at"].iloc[0]) == "2025-05-01 08:00:00"


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    mapping = _mapping(tmp_path, delimiter=",", encoding="utf-8")
    folder = _drop(tmp_path, "stores.csv", "\ufeffCode,Name,Land,Changed\n1,A,GB,\n".encode())
    res = land_csv_table(
        folder, mapping, mapping.tables["locations"], RUN, WINDOW, tmp_path / "lake"
    )
    landed = read_landed(res.path)
    assert landed.column_names == ["Code", "Name", "Land", "Changed"]
    assert landed.column("Code").to_pylist() == ["1"]


def test_missing_file_names_source_table_path_and_what_to_do(tmp_path: Path) -> None:
    mapping = _mapping(tmp_path)
    folder = _drop(tmp_path, "other.csv", b"x\n1\n")
    with pytest.raises(DropFileMissingError) as err:
        land_csv_table(folder, mapping, mapping.tables["locations"], RUN, WINDOW, tmp_path)
    msg = str(err.value)
    for part in ("'legacy'", "'locations'", str(folder / "2025-05-01" / "stores.csv"), "optional"):
        assert part in msg
    assert not landed_parts(landing_path(tmp_path, "legacy", "locations", RUN))


def test_optional_missing_file_lands_an_empty_table_with_the_mapped_columns(
    tmp_path: Path,
) -> None:
    mapping = _mapping(tmp_path, optional="true")
    res = land_csv_table(
        tmp_path / "drop", mapping, mapping.tables["locations"], RUN, WINDOW, tmp_path
    )
    landed = read_landed(res.path)
    assert res.rows == 0 and landed.num_rows == 0
    assert sorted(landed.column_names) == ["Changed", "Code", "Land", "Name"]
    cleaned = clean_table(landed, mapping.tables["locations"], "legacy", RUN, res.path)
    assert cleaned.rows_in == 0 and cleaned.clean.empty


def test_glob_concatenates_parts_and_header_only_file_has_no_rows(tmp_path: Path) -> None:
    mapping = _mapping(tmp_path, file="stores_*.csv", delimiter=",", encoding="utf-8")
    folder = _drop(tmp_path, "stores_1.csv", b"Code,Name,Land,Changed\n1,A,GB,\n")
    _drop(tmp_path, "stores_2.csv", b"Code,Name,Land,Changed\n2,B,FR,\n3,C,DE,\n")
    _drop(tmp_path, "stores_3.csv", b"Code,Name,Land,Changed\n")
    res = land_csv_table(folder, mapping, mapping.tables["locations"], RUN, WINDOW, tmp_path)
    assert read_landed(res.path).column("Code").to_pylist() == ["1", "2", "3"]


def test_a_renamed_header_column_is_left_to_the_cleaners_drift_error(tmp_path: Path) -> None:
    mapping = _mapping(tmp_path, delimiter=",", encoding="utf-8")
    folder = _drop(tmp_path, "stores.csv", b"Code,StoreName,Land,Changed\n1,A,GB,\n")
    res = land_csv_table(folder, mapping, mapping.tables["locations"], RUN, WINDOW, tmp_path)
    with pytest.raises(SchemaDriftError, match="'Name'"):
        clean_table(read_landed(res.path), mapping.tables["locations"], "legacy", RUN, res.path)


def test_open_source_reads_the_drop_folder_from_the_fs_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mapping = _mapping(tmp_path, delimiter=",", encoding="utf-8")
    folder = _drop(tmp_path, "stores.csv", b"Code,Name,Land,Changed\n1,A,GB,\n")
    monkeypatch.setenv("AIRFLOW_CONN_LEGACY_DROP", f"fs://?path={folder}")
    with open_source(mapping) as land:
        res = land(mapping.tables["locations"], RUN, WINDOW, tmp_path / "lake")
    assert res.rows == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "file: stores.csv",
            "tables.locations.file = '': must name tonight's file (or a glob), "
            "e.g. sales_lines.csv",
        ),
        ('delimiter: ";"', "tables.locations.delimiter = ';;': must be one character"),
        (
            "encoding: cp1252",
            "tables.locations.encoding = 'nope-42': is not a known encoding: use e.g. utf-8",
        ),
    ],
)
def test_csv_keys_are_validated_with_file_table_and_key(
    tmp_path: Path, change: str, message: str
) -> None:
    text = YAML.format(file="stores.csv", delimiter=";", encoding="cp1252", optional="false")
    bad = {
        "file: stores.csv": "file: ''",
        'delimiter: ";"': 'delimiter: ";;"',
        "encoding: cp1252": "encoding: nope-42",
    }[change]
    path = tmp_path / "legacy.yaml"
    path.write_text(text.replace(change, bad))
    with pytest.raises(MappingError) as err:
        load_mapping(path)
    assert str(err.value).startswith(f"legacy.yaml: {message}")


def test_csv_keys_are_rejected_on_a_sql_source(tmp_path: Path) -> None:
    path = tmp_path / "sql.yaml"
    path.write_text(
        YAML.format(file="stores.csv", delimiter=";", encoding="cp1252", optional="false")
        .replace("kind: csv_folder", "kind: sql")
        .replace("file: stores.csv", "query: select 1")
    )
    with pytest.raises(MappingError) as err:
        load_mapping(path)
    # Every CSV key is named, each on its own line, with where it belongs.
    belongs = "applies to 'kind: csv_folder' sources only (a database table is read by its 'query')"
    assert str(err.value).splitlines() == [
        f"sql.yaml: tables.locations.delimiter = ';': {belongs}",
        f"sql.yaml: tables.locations.encoding = 'cp1252': {belongs}",
        f"sql.yaml: tables.locations.optional = False: {belongs}",
    ]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("quote: ';'", "quote = ';': must differ from the delimiter ';' (or be false)"),
        ("escape: ab", "escape = 'ab': must be one character, or false when the export never"),
        ("quote: 0", "quote = 0: must be one character, or false when the export never"),
    ],
)
def test_quote_and_escape_are_validated(tmp_path: Path, option: str, message: str) -> None:
    text = YAML.format(file="stores.csv", delimiter=";", encoding="cp1252", optional="false")
    path = tmp_path / "legacy.yaml"
    path.write_text(text.replace("optional: false", f"optional: false\n    {option}"))
    with pytest.raises(MappingError) as err:
        load_mapping(path)
    assert str(err.value).startswith(f"legacy.yaml: tables.locations.{message}")


def test_undecodable_bytes_name_the_file_byte_offset_and_line(tmp_path: Path) -> None:
    mapping = _mapping(tmp_path, encoding="utf-8")
    data = b"Code;Name;Land;Changed\n1;Bonn;DE;\n" + b"2;K\xf6ln;DE;\n"
    folder = _drop(tmp_path, "stores.csv", data)
    with pytest.raises(ValueError, match="bad_encoding") as err:
        land_csv_table(folder, mapping, mapping.tables["locations"], RUN, WINDOW, tmp_path / "l")
    msg = str(err.value)
    assert "stores.csv" in msg and "byte offset 37 (line 3)" in msg and "b'\\xf6'" in msg
    assert "'locations'" in msg and "legacy.yaml" in msg
