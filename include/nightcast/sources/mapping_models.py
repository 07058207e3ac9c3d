"""A source mapping file as typed models: every key, what it may hold, checked in one pass.

A mapping (see :mod:`nightcast.sources.mapping`) is one of two kinds, told apart by
``kind``: ``sql`` (a database read by one query per table; the default) and
``csv_folder`` (a folder of nightly CSV exports). Every model forbids keys it does not
declare, so a typo fails instead of being ignored; the canonical tables and their
columns are fields too (generated from :mod:`nightcast.warehouse.schema`), so a missing
or unknown column is named. Rules across keys (an incremental table needs a watermark,
``decimal`` applies to number columns, ...) are model validators that name the key.

:func:`validate_document` turns pydantic's errors into a :class:`MappingError` with one
line per problem: the file, the path to the key
(``tables.order_lines.columns.quantity.from``), its value and what is wrong.
:func:`json_schema` is the same models as a JSON Schema for editors
(``nightcast mapping schema``; committed as ``mapping.schema.json``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)

from nightcast.sources.mapping_rules import (
    DATE_TYPES,
    DEFAULT_MAX_FIELD_BYTES,
    DEFAULT_MAX_SHRINK,
    MAX_PARALLEL,
    NULL_TOKENS,
    NUMBER_TYPES,
    RESERVED,
    SOURCE_KINDS,
    ColumnType,
    MappingError,
)
from nightcast.sources.mapping_types import (
    Decimal,
    Delimiter,
    Encoding,
    FieldBytes,
    FileName,
    Formats,
    Identifier,
    Normalize,
    Problems,
    Query,
    QuoteChar,
    Scale,
    Shrink,
    Streams,
    Text,
    Thousands,
    Tokens,
    ValueMap,
    Watermark,
    Zone,
    error_line,
    show,
)
from nightcast.warehouse.schema import CANONICAL_TABLES, NATURAL_KEYS


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # What an error says of a key the model does not declare: a hint per key that
    # belongs elsewhere, else ``unknown`` and the known keys (nightcast.sources.mapping_types).
    misplaced: ClassVar[dict[str, str]] = {}
    unknown: ClassVar[str] = "unknown key"
    shape: ClassVar[str] = "a mapping of keys to values"
    # Keys whose null means something (``value: null``: a constant null); any other key
    # left empty (``pool:``) or null means the same as no key at all.
    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        declared = {f.alias or n for n, f in cls.model_fields.items()}
        return {  # an unknown key stays, to be refused as one
            k: v for k, v in data.items() if v is not None or k in cls.nullable or k not in declared
        }


# Column keys that apply to some column types only.
_TYPED_KEYS: dict[str, tuple[str, ...]] = {
    "scale": ("float",),
    **dict.fromkeys(("decimal", "thousands", "currency"), NUMBER_TYPES),
    **dict.fromkeys(("format", "formats", "excel_serial"), DATE_TYPES),
    "timezone": ("timestamp",),
}


class ColumnSpec(_Model):
    """How one canonical column is produced: read ``from`` a source column, or a ``value``."""

    shape: ClassVar[str] = "a mapping like {from: source_column, type: string}"
    nullable: ClassVar[frozenset[str]] = frozenset({"value", "thousands"})

    from_: Text | None = Field(None, alias="from", description="The source column it is read from.")
    value: Any = Field(None, description="A constant instead of a source column (null: missing).")
    type: ColumnType = Field("string", description="How the value is parsed.")
    required: bool = Field(False, description="A row missing it is quarantined.")
    default: Any = Field(None, description="Used when the source value is missing.")
    format: Text | None = Field(None, description="One strftime format (date/timestamp).")
    formats: Formats | None = Field(None, description="strftime formats tried in order.")
    values: ValueMap | None = Field(None, description="Source value -> canonical value.")
    null_tokens: Tokens | None = Field(None, description="Overrides the source's null_tokens.")
    scale: Scale | None = Field(None, description="Multiplier (float), e.g. 0.01 for percent.")
    decimal: Decimal | None = Field(None, description="Decimal separator (float/int).")
    thousands: Thousands = Field(None, description="Thousands separator (float/int).")
    currency: bool | None = Field(None, description="Strip currency symbols (float/int).")
    excel_serial: bool = Field(False, description="Accept Excel serial day numbers (dates).")
    timezone: Zone | None = Field(None, description="IANA zone of naive timestamps.")
    normalize: Normalize | None = Field(None, description="Unicode normalisation form.")
    trim: bool | None = Field(None, description="Strip surrounding whitespace (default true).")

    @model_validator(mode="after")
    def _keys_fit_the_type(self) -> ColumnSpec:
        given, problems = self.model_fields_set, Problems()
        if ("from_" in given) == ("value" in given):
            message = "needs exactly one of 'from' (a source column) or 'value' (a constant)"
            problems.add((), message)
        for key, types in _TYPED_KEYS.items():
            if key in given and self.type not in types:
                message = f"applies to {' and '.join(types)} columns only, not to type {self.type}"
                problems.add(key, message, getattr(self, key))
        if "format" in given and "formats" in given:
            problems.add(
                "format", "use 'format' (one) or 'formats' (a list), not both", self.format
            )
        problems.raise_any("ColumnSpec")
        return self


def number_format(column: ColumnSpec, source: _Source) -> tuple[str, str]:
    """The decimal and thousands separators of a number column: the column's, else the
    source's, else '.' and whichever of ',' and '.' the decimal separator is not."""
    decimal = column.decimal or source.decimal or "."
    if "thousands" in column.model_fields_set:
        thousands = column.thousands
    elif "thousands" in source.model_fields_set:
        thousands = source.thousands
    else:
        thousands = "," if decimal == "." else "."
    return decimal, thousands or ""


class _Table(_Model):
    """What every canonical table of a source says; ``columns`` is added per table."""

    table: ClassVar[str] = ""

    mode: Literal["full", "incremental"] = Field(
        "full",
        description="full: tonight's rows replace the table (dimensions); incremental: new "
        "and changed rows are upserted.",
    )
    allow_empty: bool = Field(False, description="full: an empty export may empty the table.")
    max_shrink: Shrink = Field(
        DEFAULT_MAX_SHRINK, description="full: the largest fraction one refresh may remove."
    )

    def column(self, name: str) -> ColumnSpec:
        spec: ColumnSpec = getattr(self.columns, name)  # type: ignore[attr-defined]
        return spec

    def _problems(self) -> Problems:
        problems = Problems()
        for key in ("allow_empty", "max_shrink"):
            if self.mode != "full" and key in self.model_fields_set:
                message = (
                    "applies to 'mode: full' tables only (an incremental load deletes nothing)"
                )
                problems.add(key, message, getattr(self, key))
        return problems


class SqlTable(_Table):
    misplaced: ClassVar[dict[str, str]] = dict.fromkeys(
        ("file", "delimiter", "encoding", "optional", "quote", "escape", "max_field_bytes"),
        "applies to 'kind: csv_folder' sources only (a database table is read by its 'query')",
    )

    query: Query = Field(description="SQL returning the rows; incremental: with {window}.")
    watermark: Watermark = Field([], description="incremental: timestamp columns of changes.")
    parallel: Streams | None = Field(
        None, description=f"Extraction streams, 1 to {MAX_PARALLEL} (unset: automatic)."
    )
    split: Text | None = Field(None, description="Integer output column the streams split on.")

    @model_validator(mode="after")
    def _sql_rules(self) -> SqlTable:
        problems = self._problems()
        if self.mode == "incremental" and not self.watermark:
            message = "an incremental table needs 'watermark' (the source timestamp columns "
            message += "that say a row changed, e.g. [updated_at])"
            if "watermark" in self.model_fields_set:
                problems.add("watermark", message, self.watermark)
            else:
                problems.add("watermark", message)
        if self.mode == "incremental" and "{window}" not in self.query:
            message = "an incremental table's query must contain {window} (where the extract "
            problems.add("query", message + "puts its time window)", self.query)
        key = NATURAL_KEYS[self.table]
        if (self.parallel or 1) > 1 and self.split is None and self.column(key).from_ is None:
            message = "needs 'split' (an integer column of the query's output): the key "
            message += f"column {key!r} is not read from one"
            problems.add("parallel", message, self.parallel)
        problems.raise_any("SqlTable")
        return self


class CsvTable(_Table):
    nullable: ClassVar[frozenset[str]] = frozenset({"quote", "escape"})
    misplaced: ClassVar[dict[str, str]] = dict.fromkeys(
        ("query", "watermark", "parallel", "split"),
        "applies to database (kind: sql) sources only; a csv_folder table is landed from "
        "its file(s) as they are",
    )

    file: FileName = Field(description="Tonight's file (name or glob) in <drop>/<YYYY-MM-DD>/.")
    delimiter: Delimiter = Field(",", description="The field delimiter.")
    encoding: Encoding = Field("utf-8", description="e.g. utf-8, cp1252, latin-1.")
    optional: bool = Field(False, description="A night without the file is normal (0 rows).")
    quote: QuoteChar = Field('"', description="Quote character; false: never quoted.")
    escape: QuoteChar = Field(None, description="Escape character (e.g. a backslash).")
    max_field_bytes: FieldBytes = Field(
        DEFAULT_MAX_FIELD_BYTES, description="A larger field fails the extract."
    )

    @model_validator(mode="after")
    def _csv_rules(self) -> CsvTable:
        problems = self._problems()
        for key in ("quote", "escape"):
            if getattr(self, key) == self.delimiter:
                message = f"must differ from the delimiter {self.delimiter!r} (or be false)"
                problems.add(key, message, getattr(self, key))
        problems.raise_any("CsvTable")
        return self


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def canonical_columns(table: str) -> dict[str, str]:
    """The columns of canonical ``table`` a mapping sets, with their SQL types."""
    out = {}
    for line in CANONICAL_TABLES[table].strip().splitlines():
        name, _, sql_type = line.strip().rstrip(",").partition(" ")
        if name != "primary" and name not in RESERVED:
            out[name] = sql_type
    return out


_MAP_IT = "read it from a source column (from:) or set a constant (value:, null if none)"


def _columns_model(table: str) -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (ColumnSpec, Field(description=f"canonical column {name} ({sql_type}): {_MAP_IT}"))
        for name, sql_type in canonical_columns(table).items()
    }
    reserved = "is filled by the pipeline; a mapping must not set it"
    return create_model(
        f"{_camel(table)}Columns",
        __base__=_Model,
        __doc__=f"Every column of canonical table {table}, each from the source or a constant.",
        __namespace__={
            "misplaced": dict.fromkeys(RESERVED, reserved),
            "unknown": f"not a column of canonical table {table!r}",
        },
        **fields,
    )


def _tables_model(kind: str, base: type[_Table]) -> type[BaseModel]:
    tables: dict[str, Any] = {}
    for table in CANONICAL_TABLES:
        model = create_model(
            f"{_camel(kind)}{_camel(table)}Table",
            __base__=base,
            __doc__=f"Canonical table {table} (key {NATURAL_KEYS[table]}).",
            __namespace__={"table": table},
            columns=(_columns_model(table), Field(description="Every canonical column.")),
        )
        tables[table] = (model, Field(None, description=f"Canonical table {table}."))
    return create_model(
        f"{_camel(kind)}Tables",
        __base__=_Model,
        __doc__="The canonical tables this source fills (any of them).",
        __namespace__={"unknown": "unknown canonical table"},
        **tables,
    )


SqlTables = _tables_model("sql", SqlTable)
CsvTables = _tables_model("csv", CsvTable)


class _Source(_Model):
    """What every source says, whatever its kind; ``kind`` and ``tables`` per kind."""

    nullable: ClassVar[frozenset[str]] = frozenset({"thousands"})

    source: Identifier = Field(
        description="The source's name; its ids are namespaced with it (demo:42)."
    )
    connection: Text = Field(
        description="Airflow connection id, read from AIRFLOW_CONN_<ID> (a database URL, or "
        "an fs connection naming the drop folder)."
    )
    pool: Text | None = Field(None, description="Airflow pool of its connections (erp_<source>).")
    null_tokens: Tokens = Field(list(NULL_TOKENS), description="Values that mean missing.")
    decimal: Decimal | None = Field(None, description="Default decimal separator.")
    thousands: Thousands = Field(None, description="Default thousands separator.")
    currency: bool | None = Field(None, description="Default: strip currency symbols.")
    timezone: Zone | None = Field(None, description="Default IANA zone of naive timestamps.")
    normalize: Normalize | None = Field(None, description="Default Unicode normalisation.")
    trim: bool | None = Field(None, description="Default: strip surrounding whitespace.")

    def table_specs(self) -> dict[str, _Table]:
        """The mapped tables by canonical name."""
        tables = self.tables  # type: ignore[attr-defined]
        return {t: getattr(tables, t) for t in CANONICAL_TABLES if getattr(tables, t) is not None}

    @model_validator(mode="after")
    def _separators_differ(self) -> _Source:
        problems = Problems()
        for name, table in self.table_specs().items():
            for column in canonical_columns(name):
                spec = table.column(column)
                if spec.type not in NUMBER_TYPES:
                    continue
                decimal, thousands = number_format(spec, self)
                if thousands != decimal:
                    continue
                message = (
                    f"the thousands separator {thousands!r} and the decimal separator must differ"
                )
                if "thousands" in spec.model_fields_set or "decimal" in spec.model_fields_set:
                    key = "thousands" if "thousands" in spec.model_fields_set else "decimal"
                    where = ("tables", name, "columns", column, key)
                    problems.add(where, message, getattr(spec, key))
                else:  # the source's own defaults disagree
                    key = "thousands" if "thousands" in self.model_fields_set else "decimal"
                    problems.add(key, message, getattr(self, key))
        problems.raise_any("Source")
        return self


class SqlSource(_Source):
    """A database source: one query per canonical table."""

    kind: Literal["sql"] = Field("sql", description="sql: a database (the default).")
    tables: SqlTables = Field(description="Canonical table -> its query and columns.")  # type: ignore[valid-type]


class CsvFolderSource(_Source):
    """A folder of nightly CSV exports: one file (or glob) per canonical table."""

    kind: Literal["csv_folder"] = Field(description="csv_folder: nightly CSV exports.")
    tables: CsvTables = Field(description="Canonical table -> its file and columns.")  # type: ignore[valid-type]


SourceDocument = Union[SqlSource, CsvFolderSource]  # noqa: UP007
_ROOTS: dict[str, type[_Source]] = {"sql": SqlSource, "csv_folder": CsvFolderSource}
_KIND_ERROR = "must be 'sql' (a database; the default) or 'csv_folder' (nightly CSV exports)"


def _kind(doc: Any) -> str | None:
    kind = doc.get("kind", "sql") if isinstance(doc, dict) else None
    return kind if kind in SOURCE_KINDS else None


_Tagged = Annotated[
    Union[Annotated[SqlSource, Tag("sql")], Annotated[CsvFolderSource, Tag("csv_folder")]],  # noqa: UP007
    Discriminator(_kind, custom_error_type="mapping_kind", custom_error_message=_KIND_ERROR),
]
_ADAPTER: TypeAdapter[SourceDocument] = TypeAdapter(_Tagged)


def validate_document(doc: dict[str, Any], file: str) -> SourceDocument:
    """The parsed YAML ``doc`` of mapping ``file`` as models, or :class:`MappingError`
    with one line per problem."""
    try:
        return _ADAPTER.validate_python(doc)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            if err["type"] == "mapping_kind":
                lines.append(f"{file}: kind = {show(doc.get('kind'))}: {_KIND_ERROR}")
            else:  # the first step of the path is the kind (the union's tag)
                root = _ROOTS[str(err["loc"][0])]
                lines.append(error_line(file, root, {**err, "loc": err["loc"][1:]}))
        raise MappingError(*lines) from None


def schema_text() -> str:
    """:func:`json_schema` as the text of ``mapping.schema.json`` (what the CLI prints)."""
    return json.dumps(json_schema(), indent=2) + "\n"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a mapping file (draft 2020-12), for editors and other tools."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Nightcast source mapping",
        "description": "How an ERP's tables (kind: sql) or nightly CSV exports (kind: "
        "csv_folder) map onto Nightcast's canonical tables. Generated by `nightcast mapping "
        "schema` from nightcast.sources.mapping_models.",
        **_ADAPTER.json_schema(by_alias=True),
    }
