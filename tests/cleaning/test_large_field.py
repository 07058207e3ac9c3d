"""A field over pyarrow's default 8 MiB block lands when the mapping allows it, and a field
over the table's ``max_field_bytes`` fails naming source, table, file, record and column."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from nightcast.cleaning.clean import clean_table
from nightcast.sources.csv_folder import land_csv_table
from nightcast.sources.extract import IntakeError, Window, read_landed
from nightcast.sources.mapping import MappingError, SourceMapping, load_mapping

RUN = date(2025, 5, 1)
WINDOW = Window("full", None, None)
BIG = "x" * (9 << 20)  # 9 MiB in one field
# Just under 8 MiB before it, so the 9 MiB field crosses two of pyarrow's 8 MiB read blocks.
FILL = "y" * ((8 << 20) - 4096)

YAML = """
source: legacy
kind: csv_folder
connection: legacy_drop
tables:
  locations:
    file: stores.csv
    {option}
    columns:
      location_id: {{from: Code, type: id}}
      name: {{from: Name}}
      location_type: {{value: store}}
      country: {{from: Land}}
      region: {{value: UNKNOWN}}
      updated_at: {{value: "2025-05-01 08:00", type: timestamp}}
"""


def _mapping(tmp_path: Path, option: str = "") -> SourceMapping:
    path = tmp_path / "legacy.yaml"
    path.write_text(YAML.format(option=option))
    return load_mapping(path)


def _drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    (folder / RUN.isoformat()).mkdir(parents=True)
    text = f'Code,Name,Land\n1,{FILL},DE\n2,"{BIG}",FR\n3,after,NL\n'
    (folder / RUN.isoformat() / "stores.csv").write_text(text)
    return folder


def test_a_9_mib_field_lands_with_max_field_bytes_raised(tmp_path: Path) -> None:
    mapping = _mapping(tmp_path, "max_field_bytes: 16777216")
    table = mapping.tables["locations"]
    res = land_csv_table(_drop(tmp_path), mapping, table, RUN, WINDOW, tmp_path / "lake")
    landed = read_landed(res.path)
    assert res.rows == 3
    assert landed.column("Name").to_pylist() == [FILL, BIG, "after"]
    cleaned = clean_table(landed, table, "legacy", RUN, res.path)
    assert list(cleaned.clean["name"]) == [FILL, BIG, "after"]


def test_a_field_over_max_field_bytes_names_file_record_column_and_setting(
    tmp_path: Path,
) -> None:
    mapping = _mapping(tmp_path)  # default: 8 MiB
    folder = _drop(tmp_path)
    with pytest.raises(IntakeError) as err:
        land_csv_table(folder, mapping, mapping.tables["locations"], RUN, WINDOW, tmp_path / "lake")
    message = str(err.value)
    for part in (
        "source 'legacy' table 'locations'",
        str(folder / RUN.isoformat() / "stores.csv"),
        "record 2 after the header on line 1",
        "column 'Name'",
        f"{len(BIG)} bytes",
        "max_field_bytes",
        "legacy.yaml",
    ):
        assert part in message


def test_a_field_beyond_the_read_block_is_named_too(tmp_path: Path) -> None:
    mapping = _mapping(tmp_path, "max_field_bytes: 1048576")  # 1 MiB: both fields are over
    with pytest.raises(IntakeError, match=r"record 1 .*column 'Name'.*max_field_bytes"):
        land_csv_table(
            _drop(tmp_path), mapping, mapping.tables["locations"], RUN, WINDOW, tmp_path / "lake"
        )


@pytest.mark.parametrize("value", ["0", "-1", "true", "'8MB'"])
def test_max_field_bytes_must_be_a_positive_byte_count(tmp_path: Path, value: str) -> None:
    with pytest.raises(MappingError, match="max_field_bytes"):
        _mapping(tmp_path, f"max_field_bytes: {value}")
