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

Loading a mapping validates it completely against the typed models of
:mod:`nightcast.sources.mapping_models`, so a typo fails at once, one line per
problem naming the file, the path to the key and its value, rather than half-way
through a night. The same models give the JSON Schema editors complete and check
against (``nightcast mapping schema``; the shipped files point to
``mapping.schema.json`` on their first line), and ``nightcast mapping check``
also checks a mapping against its source (:mod:`nightcast.sources.mapping_check`).
What the pipeline reads is the resolved form below: :class:`SourceMapping`,
:class:`TableMapping` and :class:`~nightcast.sources.mapping_rules.ColumnRule`,
with every default filled in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml

from nightcast.sources.mapping_rules import COLUMN_TYPES as COLUMN_TYPES
from nightcast.sources.mapping_rules import (
    DEFAULT_MAX_FIELD_BYTES,
    DEFAULT_MAX_SHRINK,
    MAX_PARALLEL,
    NULL_TOKENS,
    NUMBER_TYPES,
    ColumnRule,
    MappingError,
)
from nightcast.warehouse.schema import NATURAL_KEYS

if TYPE_CHECKING:
    from nightcast.sources.mapping_models import ColumnSpec, SourceDocument, _Table

# Streams an incremental PostgreSQL table gets without 'parallel' when its window is large
# (at most the extracting worker's cores + 1: each stream parses on the worker).
AUTO_STREAMS = 3


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
    null_tokens: tuple[str, ...] = NULL_TOKENS
    kind: str = "sql"


def _column_rule(name: str, spec: ColumnSpec, source: SourceDocument, required: bool) -> ColumnRule:
    """One validated column with the source's defaults filled in (numbers, text, zones)."""
    from nightcast.sources.mapping_models import number_format

    number = spec.type in NUMBER_TYPES
    decimal, thousands = number_format(spec, source) if number else (".", ",")
    currency = spec.currency if spec.currency is not None else source.currency
    zone = (spec.timezone or source.timezone) if spec.type == "timestamp" else None
    trim = spec.trim if spec.trim is not None else source.trim
    formats = spec.formats or ([spec.format] if spec.format else [])
    return ColumnRule(
        name=name,
        type=spec.type,
        source_column=spec.from_,
        value=spec.value,
        required=required or spec.required,
        default=spec.default,
        format=spec.format,
        values=spec.values or None,
        null_tokens=tuple(spec.null_tokens if spec.null_tokens is not None else source.null_tokens),
        scale=spec.scale,
        formats=tuple(formats),
        excel_serial=spec.excel_serial,
        timezone=zone,
        decimal=decimal,
        thousands=thousands,
        currency=bool(currency) and number,
        normalize=spec.normalize or source.normalize,
        trim=True if trim is None else trim,
    )


def _table_mapping(
    name: str, spec: _Table, source: SourceDocument, order: list[str]
) -> TableMapping:
    """One validated table (columns in the file's order); the natural key is always required."""
    key = NATURAL_KEYS[name]
    columns = {c: _column_rule(c, spec.column(c), source, c == key) for c in order}
    common: dict[str, Any] = {
        "table": name,
        "mode": spec.mode,
        "columns": columns,
        "allow_empty": spec.allow_empty,
        "max_shrink": float(spec.max_shrink),
    }
    from nightcast.sources.mapping_models import CsvTable, SqlTable

    if isinstance(spec, CsvTable):
        # A nightly file is tonight's export: no query, no window to push down.
        return TableMapping(
            query="",
            watermark_columns=(),
            file=spec.file,
            delimiter=spec.delimiter,
            encoding=spec.encoding,
            optional=spec.optional,
            quote=spec.quote or None,
            escape=spec.escape or None,
            max_field_bytes=spec.max_field_bytes,
            **common,
        )
    assert isinstance(spec, SqlTable)
    split = spec.split
    if split is None and (spec.mode == "incremental" or (spec.parallel or 1) > 1):
        split = spec.column(key).from_  # the streams split on the key's source column
    return TableMapping(
        query=spec.query,
        watermark_columns=tuple(spec.watermark),
        parallel=spec.parallel,
        split=split,
        **common,
    )


def load_mapping(path: Path) -> SourceMapping:
    """Parse, validate and resolve one mapping file (:class:`MappingError` with one line
    per problem)."""
    # The models are built on first use, not when a DAG file imports source_pools.
    from nightcast.sources.mapping_models import validate_document

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise MappingError(f"{path.name}: not valid YAML: {problem}") from exc
    if not isinstance(doc, dict):
        raise MappingError(f"{path.name}: expected a mapping (key: value lines) at the top level")
    source = validate_document(doc, path.name)
    specs = source.table_specs()
    tables = {  # in the file's order, as the columns
        name: _table_mapping(name, specs[name], source, list(doc["tables"][name]["columns"]))
        for name in doc["tables"]
        if name in specs
    }
    return SourceMapping(
        source=source.source,
        connection=source.connection,
        pool=source.pool or f"erp_{source.source}",
        path=path,
        tables=tables,
        null_tokens=tuple(source.null_tokens),
        kind=source.kind,
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
