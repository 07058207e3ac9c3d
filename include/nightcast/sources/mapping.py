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

import yaml

from nightcast.sources.mapping_rules import (
    COLUMN_TYPES as COLUMN_TYPES,
)
from nightcast.sources.mapping_rules import (
    NUMBER_KEYS,
    ColumnRule,
    MappingError,
    check_timezone,
    column_rule,
)
from nightcast.warehouse.schema import CANONICAL_TABLES, NATURAL_KEYS

SOURCE_KINDS = ("sql", "csv_folder")
CSV_KEYS = ("file", "delimiter", "encoding", "optional", "quote", "escape", "max_field_bytes")
# The largest field a CSV file may hold (bytes as written); 'max_field_bytes' raises it.
DEFAULT_MAX_FIELD_BYTES = 8 << 20
PARALLEL_KEYS = ("parallel", "split")
# What a full refresh may do to the table it replaces (nightcast.pipeline.intake).
REFRESH_KEYS = ("allow_empty", "max_shrink")
DEFAULT_MAX_SHRINK = 0.5
# Streams an incremental PostgreSQL table gets without 'parallel' when its window is large
# (at most the extracting worker's cores + 1: each stream parses on the worker).
AUTO_STREAMS = 3
MAX_PARALLEL = 8  # streams are ERP connections: more would crowd a production database
# Keys a source may set once at the top level for all its columns of the right type.
SOURCE_DEFAULT_KEYS = (*NUMBER_KEYS, "timezone", "normalize", "trim")
# Columns the pipeline fills itself; a mapping must not set them.
RESERVED = ("source", "_run_date")


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
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES  # a larger field fails the extract
    # sql sources only: parallel extraction streams over disjoint ranges of the integer
    # column ``split`` (a column of the query's output). None: automatic (see streams.py).
    parallel: int | None = None
    split: str | None = None
    # full tables only: whether an empty export may empty the table, and the largest
    # fraction of its current rows one refresh may remove (see nightcast.pipeline.intake).
    allow_empty: bool = False
    max_shrink: float = DEFAULT_MAX_SHRINK

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
    max_field = spec.get("max_field_bytes", DEFAULT_MAX_FIELD_BYTES)
    if isinstance(max_field, bool) or not isinstance(max_field, int) or max_field < 1:
        raise MappingError(
            f"{where}: table {table!r}: 'max_field_bytes' must be the largest field the file "
            f"may hold, in bytes (e.g. 33554432 for 32 MiB), not {max_field!r}"
        )
    return {
        "file": file,
        "delimiter": delimiter,
        "encoding": encoding,
        "optional": optional,
        "max_field_bytes": max_field,
        **chars,
    }


def _refresh_options(where: str, table: str, spec: dict[str, Any], mode: str) -> dict[str, Any]:
    """``allow_empty``/``max_shrink`` of a full-refresh table, validated."""
    given = sorted(set(REFRESH_KEYS) & set(spec))
    if given and mode != "full":
        raise MappingError(
            f"{where}: table {table!r}: {given} apply to 'mode: full' tables only (an "
            "incremental load never deletes rows)"
        )
    allow_empty = spec.get("allow_empty", False)
    if not isinstance(allow_empty, bool):
        raise MappingError(f"{where}: table {table!r}: 'allow_empty' must be true or false")
    shrink = spec.get("max_shrink", DEFAULT_MAX_SHRINK)
    if isinstance(shrink, bool) or not isinstance(shrink, int | float) or not 0 <= shrink <= 1:
        raise MappingError(
            f"{where}: table {table!r}: 'max_shrink' must be the largest fraction of the "
            f"table's rows one full refresh may remove, from 0 to 1 (e.g. 0.2), not {shrink!r}"
        )
    return {"allow_empty": allow_empty, "max_shrink": float(shrink)}


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
        name: column_rule(f"{where} table {table!r}", name, c, null_tokens, defaults)
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
        **_refresh_options(where, table, spec, mode),
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
        check_timezone(where, defaults["timezone"])
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
