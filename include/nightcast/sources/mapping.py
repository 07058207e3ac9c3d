"""Source mappings: YAML files that map an ERP's tables onto the canonical model.

Adding a source is writing one YAML file (see ``mappings/demo.yaml``)::

    source: demo                  # namespace for ids: item "42" becomes "demo:42"
    connection: nightcast_demo_erp  # read from AIRFLOW_CONN_NIGHTCAST_DEMO_ERP
    pool: erp_demo                # Airflow pool capping concurrent ERP connections
    tables:
      items:                      # canonical table
        mode: full                # full refresh (small dimensions) or incremental
        query: select * from product
        columns:
          item_id: {from: product_id, type: id}
          ...

Loading a mapping validates it completely, so a typo fails at once with the
file, table and key that are wrong rather than half-way through a night.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from nightcast.warehouse.schema import CANONICAL_TABLES, NATURAL_KEYS

COLUMN_TYPES = ("id", "string", "float", "int", "date", "timestamp")
SOURCE_KINDS = ("sql", "csv_folder")
CSV_KEYS = ("file", "delimiter", "encoding", "optional", "quote", "escape")
PARALLEL_KEYS = ("parallel", "split")
# Streams an incremental sql table gets without 'parallel' when its window is large.
AUTO_STREAMS = 2
MAX_PARALLEL = 8  # streams are ERP connections: more would crowd a production database
NUMBER_KEYS = ("decimal", "thousands", "currency")
DATE_KEYS = ("formats", "excel_serial", "timezone")
# Keys a source may set once at the top level for all its columns of the right type.
SOURCE_DEFAULT_KEYS = (*NUMBER_KEYS, "timezone", "normalize", "trim")
NORMALIZE_FORMS = ("NFC", "NFKC", "NFD", "NFKD")
# Columns the pipeline fills itself; a mapping must not set them.
RESERVED = ("source", "_run_date")


class MappingError(ValueError):
    """A source mapping file is invalid."""


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


@dataclass(frozen=True)
class TableMapping:
    """One canonical table of one source."""

    table: str
    mode: str
    query: str
    watermark_columns: tuple[str, ...]
    columns: dict[str, ColumnRule]
    # csv_folder sources only: the nightly file (a name or glob inside <drop>/<D>/),
    # its delimiter and encoding, and whether a night without it is normal.
    file: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    optional: bool = False
    quote: str | None = '"'  # None: the export does not quote fields at all
    escape: str | None = None  # e.g. a backslash before quotes instead of doubling them
    # sql sources only: parallel extraction streams over disjoint ranges of the integer
    # column ``split`` (a column of the query's output). None: automatic (see extract.py).
    parallel: int | None = None
    split: str | None = None

    @property
    def key(self) -> str:
        return NATURAL_KEYS[self.table]


@dataclass(frozen=True)
class SourceMapping:
    """A whole ERP source: connection, pool and table mappings."""

    source: str
    connection: str
    pool: str
    path: Path
    tables: dict[str, TableMapping] = field(default_factory=dict)
    null_tokens: tuple[str, ...] = ("", "NULL", "null", "N/A", "#N/A")
    kind: str = "sql"


def _canonical_columns(table: str) -> list[str]:
    cols = []
    for line in CANONICAL_TABLES[table].splitlines():
        words = line.strip().split()
        if words and words[0] != "primary":
            cols.append(words[0])
    return cols


COLUMN_KEYS = (
    "from",
    "value",
    "type",
    "required",
    "default",
    "format",
    "values",
    "null_tokens",
    "scale",
    *NUMBER_KEYS,
    *DATE_KEYS,
    "normalize",
    "trim",
)


def _check_timezone(where: str, zone: Any) -> str:
    try:
        ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(
            f"{where}: 'timezone' {zone!r} is not an IANA time zone (e.g. Europe/Berlin, UTC)"
        ) from None
    return str(zone)


def _parse_options(
    where: str, ctype: str, spec: dict[str, Any], defaults: dict[str, Any]
) -> dict[str, Any]:
    """Validated parsing keys of one column; source-level defaults fill what it leaves out."""
    for key in NUMBER_KEYS:
        if key in spec and ctype not in ("float", "int"):
            raise MappingError(f"{where}: {key!r} applies to float and int columns only")
    for key in DATE_KEYS:
        if key in spec and ctype not in ("date", "timestamp"):
            raise MappingError(f"{where}: {key!r} applies to date and timestamp columns only")
    if "timezone" in spec and ctype != "timestamp":
        raise MappingError(f"{where}: 'timezone' applies to timestamp columns only")
    if "format" in spec and "formats" in spec:
        raise MappingError(f"{where}: use 'format' (one) or 'formats' (a list), not both")
    opts: dict[str, Any] = {}
    raw_formats = spec.get("formats", [spec["format"]] if "format" in spec else [])
    if not isinstance(raw_formats, list) or not all(
        isinstance(f, str) and f.strip() for f in raw_formats
    ):
        raise MappingError(
            f"{where}: 'formats' must be a list of strftime formats, e.g. [\"%d/%m/%Y\"]"
        )
    opts["formats"] = tuple(raw_formats)
    merged = {**defaults, **spec}
    if ctype in ("float", "int"):
        decimal = str(merged.get("decimal", "."))
        if decimal not in (".", ","):
            raise MappingError(f"{where}: 'decimal' must be '.' or ',', not {decimal!r}")
        thousands = merged.get("thousands", "," if decimal == "." else ".")
        thousands = "" if thousands is None else str(thousands)
        if thousands not in (",", ".", " ", "'", "") or thousands == decimal:
            raise MappingError(
                f"{where}: 'thousands' must be one of ',', '.', ' ', \"'\" or '' and differ "
                f"from 'decimal' ({decimal!r}), not {thousands!r}"
            )
        opts.update(decimal=decimal, thousands=thousands)
    for key in ("currency", "excel_serial", "trim"):
        if key in merged and not isinstance(merged[key], bool):
            raise MappingError(f"{where}: {key!r} must be true or false")
    if ctype in ("float", "int"):
        opts["currency"] = bool(merged.get("currency", False))
    opts["excel_serial"] = bool(spec.get("excel_serial", False))
    opts["trim"] = bool(merged.get("trim", True))
    if ctype == "timestamp" and merged.get("timezone") is not None:
        opts["timezone"] = _check_timezone(where, merged["timezone"])
    normalize = merged.get("normalize")
    if normalize is not None:
        if str(normalize).upper() not in NORMALIZE_FORMS:
            raise MappingError(
                f"{where}: 'normalize' must be one of {NORMALIZE_FORMS}, not {normalize!r}"
            )
        opts["normalize"] = str(normalize).upper()
    return opts


def _column_rule(
    where: str,
    name: str,
    spec: Any,
    null_tokens: tuple[str, ...],
    defaults: dict[str, Any] | None = None,
) -> ColumnRule:
    if not isinstance(spec, dict):
        raise MappingError(
            f"{where}: column {name!r} must be a mapping like {{from: col, type: string}}"
        )
    unknown = set(spec) - set(COLUMN_KEYS)
    if unknown:
        raise MappingError(f"{where}: column {name!r} has unknown keys {sorted(unknown)}")
    ctype = spec.get("type", "string")
    if ctype not in COLUMN_TYPES:
        raise MappingError(
            f"{where}: column {name!r} has type {ctype!r}; use one of {COLUMN_TYPES}"
        )
    if ("from" in spec) == ("value" in spec):
        raise MappingError(
            f"{where}: column {name!r} needs exactly one of 'from' (a source column) or 'value' (a constant)"
        )
    if "scale" in spec and ctype != "float":
        raise MappingError(f"{where}: column {name!r}: 'scale' applies to float columns only")
    values = spec.get("values")
    if values is not None and not isinstance(values, dict):
        raise MappingError(
            f"{where}: column {name!r}: 'values' must map source values to canonical ones"
        )
    opts = _parse_options(f"{where} column {name!r}", ctype, spec, defaults or {})
    return ColumnRule(
        name=name,
        type=ctype,
        source_column=spec.get("from"),
        value=spec.get("value"),
        required=bool(spec.get("required", False)),
        default=spec.get("default"),
        format=spec.get("format"),
        values={str(k): str(v) for k, v in values.items()} if values else None,
        null_tokens=tuple(spec.get("null_tokens", null_tokens)),
        scale=float(spec["scale"]) if "scale" in spec else None,
        **opts,
    )


def _csv_options(where: str, table: str, spec: dict[str, Any]) -> dict[str, Any]:
    """``file``/``delimiter``/``encoding``/``optional`` of a csv_folder table, validated."""
    file = spec.get("file")
    if not isinstance(file, str) or not file.strip():
        raise MappingError(
            f"{where}: table {table!r} of a csv_folder source needs 'file' "
            "(the nightly file name or glob, e.g. file: sales_lines.csv)"
        )
    if "query" in spec:
        raise MappingError(
            f"{where}: table {table!r}: a csv_folder source reads 'file', not 'query'"
        )
    delimiter = str(spec.get("delimiter", ","))
    if len(delimiter) != 1:
        raise MappingError(
            f"{where}: table {table!r}: 'delimiter' must be one character, not {delimiter!r}"
        )
    encoding = str(spec.get("encoding", "utf-8"))
    try:
        "".encode(encoding)
    except LookupError:
        raise MappingError(f"{where}: table {table!r}: unknown 'encoding' {encoding!r}") from None
    optional = spec.get("optional", False)
    if not isinstance(optional, bool):
        raise MappingError(f"{where}: table {table!r}: 'optional' must be true or false")
    chars: dict[str, str | None] = {}
    for key, default in (("quote", '"'), ("escape", None)):
        value = spec.get(key, default)
        if value is False or value is None:
            chars[key] = None
        elif not isinstance(value, str) or len(value) != 1 or value == delimiter:
            raise MappingError(
                f"{where}: table {table!r}: {key!r} must be one character other than the "
                f"delimiter (or false), not {value!r}"
            )
        else:
            chars[key] = value
    return {
        "file": file,
        "delimiter": delimiter,
        "encoding": encoding,
        "optional": optional,
        **chars,
    }


def _parallel_options(where: str, table: str, spec: dict[str, Any], mode: str) -> dict[str, Any]:
    """``parallel``/``split`` of a sql table, validated (the split column's type is checked
    against the ERP at extraction time, when it is known)."""
    parallel = spec.get("parallel")
    if parallel is not None and (
        isinstance(parallel, bool)
        or not isinstance(parallel, int)
        or not 1 <= parallel <= MAX_PARALLEL
    ):
        raise MappingError(
            f"{where}: table {table!r}: 'parallel' must be a whole number of extraction "
            f"streams from 1 to {MAX_PARALLEL} (1: one stream), not {parallel!r}"
        )
    split = spec.get("split")
    if split is not None and (not isinstance(split, str) or not split.strip()):
        raise MappingError(
            f"{where}: table {table!r}: 'split' must name one integer column of the query's "
            f"output (e.g. split: line_id), not {split!r}"
        )
    key = NATURAL_KEYS[table]
    key_spec = (spec.get("columns") or {}).get(key)
    default = key_spec.get("from") if isinstance(key_spec, dict) else None
    if split is None and (parallel or 1) > 1 and not isinstance(default, str):
        raise MappingError(
            f"{where}: table {table!r}: 'parallel: {parallel}' needs 'split' (an integer "
            f"column of the query's output): the key column {key!r} is not read from one"
        )
    if split is None and (mode == "incremental" or (parallel or 1) > 1):
        split = default
    return {"parallel": parallel, "split": split}


def _table_mapping(
    where: str,
    table: str,
    spec: Any,
    null_tokens: tuple[str, ...],
    kind: str = "sql",
    defaults: dict[str, Any] | None = None,
) -> TableMapping:
    if table not in CANONICAL_TABLES:
        raise MappingError(
            f"{where}: unknown canonical table {table!r}; known: {sorted(CANONICAL_TABLES)}"
        )
    if not isinstance(spec, dict):
        raise MappingError(f"{where}: table {table!r} must be a mapping")
    mode = spec.get("mode", "full")
    if mode not in ("full", "incremental"):
        raise MappingError(
            f"{where}: table {table!r} mode must be 'full' or 'incremental', not {mode!r}"
        )
    kind_opts: dict[str, Any] = {}  # kind-specific options (csv file or parallel streams)
    if kind == "csv_folder":
        bad = sorted(set(PARALLEL_KEYS) & set(spec))
        if bad:
            raise MappingError(
                f"{where}: table {table!r}: {bad} apply to database (kind: sql) sources only; "
                "a csv_folder table is landed from its file(s) as they are"
            )
        # A nightly file is tonight's export: no query, no window to push down.
        kind_opts = _csv_options(where, table, spec)
        query, watermark = "", tuple(spec.get("watermark", ()))
    else:
        bad = sorted(set(CSV_KEYS) & set(spec))
        if bad:
            raise MappingError(
                f"{where}: table {table!r}: {bad} apply to 'kind: csv_folder' sources only"
            )
        raw_query = spec.get("query")
        if not isinstance(raw_query, str) or not raw_query.strip():
            raise MappingError(f"{where}: table {table!r} needs a 'query'")
        query = raw_query
        watermark = tuple(spec.get("watermark", ()))
        kind_opts = _parallel_options(where, table, spec, mode)
    if kind != "csv_folder" and mode == "incremental" and not watermark:
        raise MappingError(
            f"{where}: incremental table {table!r} needs 'watermark' (source timestamp columns)"
        )
    if kind != "csv_folder" and mode == "incremental" and "{window}" not in query:
        raise MappingError(
            f"{where}: incremental table {table!r}: the query must contain {{window}}"
        )
    raw_cols = spec.get("columns") or {}
    columns = {
        name: _column_rule(f"{where} table {table!r}", name, c, null_tokens, defaults)
        for name, c in raw_cols.items()
    }
    canonical = _canonical_columns(table)
    extra = [c for c in columns if c not in canonical or c in RESERVED]
    if extra:
        raise MappingError(
            f"{where}: table {table!r} maps columns that are not canonical or are reserved: {extra}"
        )
    missing = [c for c in canonical if c not in columns and c not in RESERVED]
    if missing:
        raise MappingError(f"{where}: table {table!r} does not map canonical columns {missing}")
    key = NATURAL_KEYS[table]
    columns[key] = ColumnRule(**{**columns[key].__dict__, "required": True})
    return TableMapping(
        table=table,
        mode=mode,
        query=query,
        watermark_columns=watermark,
        columns=columns,
        **kind_opts,
    )


def load_mapping(path: Path) -> SourceMapping:
    """Parse and validate one mapping file."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise MappingError(f"{path}: expected a mapping at the top level")
    for required in ("source", "connection", "tables"):
        if required not in doc:
            raise MappingError(f"{path}: missing top-level key {required!r}")
    source = str(doc["source"])
    if not source.isidentifier():
        raise MappingError(
            f"{path}: source name {source!r} must be a plain identifier (letters, digits, _)"
        )
    null_tokens = tuple(str(t) for t in doc.get("null_tokens", SourceMapping.null_tokens))
    where = f"{path.name}"
    kind = str(doc.get("kind", "sql"))
    if kind not in SOURCE_KINDS:
        raise MappingError(f"{where}: kind {kind!r} is not one of {SOURCE_KINDS}")
    defaults = {k: doc[k] for k in SOURCE_DEFAULT_KEYS if k in doc}
    if "timezone" in defaults:
        _check_timezone(where, defaults["timezone"])
    if not isinstance(doc["tables"], dict):
        raise MappingError(f"{where}: 'tables' must map canonical tables to their specs")
    tables = {
        t: _table_mapping(where, t, spec, null_tokens, kind, defaults)
        for t, spec in doc["tables"].items()
    }
    return SourceMapping(
        source=source,
        connection=str(doc["connection"]),
        pool=str(doc.get("pool", f"erp_{source}")),
        path=path,
        tables=tables,
        null_tokens=null_tokens,
        kind=kind,
    )


def load_mappings(folder: Path) -> list[SourceMapping]:
    """All mappings in a folder, sorted by source name; duplicate names are an error."""
    mappings = [load_mapping(p) for p in sorted(folder.glob("*.yaml"))]
    seen: dict[str, Path] = {}
    for m in mappings:
        if m.source in seen:
            raise MappingError(
                f"source {m.source!r} is defined twice: {seen[m.source]} and {m.path}"
            )
        seen[m.source] = m.path
    return sorted(mappings, key=lambda m: m.source)


class SourcePool(NamedTuple):
    """The Airflow pool of one ERP source and what its extract task takes from it."""

    source: str
    pool: str
    extract_slots: int  # the most connections one table's extraction opens at once


def _extract_slots(doc: dict[str, Any]) -> int:
    """Streams the busiest table may open (explicit ``parallel``, else the automatic default)."""
    if doc.get("kind") == "csv_folder":
        return 1
    slots = 1
    for spec in (doc.get("tables") or {}).values():
        spec = spec or {}
        default = AUTO_STREAMS if spec.get("mode", "full") == "incremental" else 1
        parallel = spec.get("parallel")
        wanted = (
            parallel if isinstance(parallel, int) and not isinstance(parallel, bool) else default
        )
        slots = max(slots, min(max(wanted, 1), MAX_PARALLEL))
    return slots


def source_pools(folder: Path) -> list[SourcePool]:
    """One :class:`SourcePool` per mapping: cheap enough for DAG parse time (tables not validated).

    The extract task takes ``extract_slots`` slots, one per connection it may open, so
    the pool caps connections to the ERP, not tasks.
    """
    out = []
    for p in sorted(folder.glob("*.yaml")):
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        source = str(doc.get("source", p.stem))
        out.append(SourcePool(source, str(doc.get("pool", f"erp_{source}")), _extract_slots(doc)))
    return out
