"""Per-column rules of a source mapping: what a column is produced from and how it parses.

One :class:`ColumnRule` per canonical column of a table, resolved from the validated
mapping file (:mod:`nightcast.sources.mapping_models`) with the source-level defaults
filled in, so the cleaner reads every parsing convention from one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from nightcast.errors import DeterministicError

ColumnType = Literal["id", "string", "float", "int", "date", "timestamp"]
COLUMN_TYPES: tuple[str, ...] = get_args(ColumnType)
NUMBER_TYPES = ("float", "int")
DATE_TYPES = ("date", "timestamp")
# Unicode normalisation forms a text column may be put in (see nightcast.cleaning.parsers).
NormalForm = Literal["NFC", "NFKC", "NFD", "NFKD"]
NORMALIZE_FORMS: tuple[str, ...] = get_args(NormalForm)
# What a source's values count as missing when neither it nor a column says otherwise.
NULL_TOKENS = ("", "NULL", "null", "N/A", "#N/A")
SOURCE_KINDS = ("sql", "csv_folder")
MAX_PARALLEL = 8  # streams are ERP connections: more would crowd a production database
# The largest field a CSV file may hold (bytes as written); 'max_field_bytes' raises it.
DEFAULT_MAX_FIELD_BYTES = 8 << 20
# What a full refresh may do to the table it replaces (nightcast.pipeline.intake).
DEFAULT_MAX_SHRINK = 0.5
# Columns the pipeline fills itself; a mapping must not set them.
RESERVED = ("source", "_run_date")


class MappingError(ValueError, DeterministicError):
    """A source mapping file is invalid (fixed by editing it, never by a retry).

    ``problems`` holds one line per problem, each naming the file, the path to the key
    and its value; the message is those lines.
    """

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ColumnRule:
    """How one canonical column is produced from the landed source columns."""

    name: str
    type: str
    source_column: str | None = None
    value: Any = None
    required: bool = False
    default: Any = None
    format: str | None = None
    values: dict[str, str] | None = None
    null_tokens: tuple[str, ...] = ()
    scale: float | None = None
    # Parsing conventions (see nightcast.cleaning.parsers): explicit per source, never guessed.
    formats: tuple[str, ...] = ()
    excel_serial: bool = False
    timezone: str | None = None
    decimal: str = "."
    thousands: str = ","
    currency: bool = False
    normalize: str | None = None
    trim: bool = True
