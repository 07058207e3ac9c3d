"""The append-only audit trail of published forecasts (``audit`` schema).

``audit.publications``: one row per publish decision of a run (published, held back
by the gate, rolled back) with the input snapshot (landed files and their sha256),
model version and parameters, code version, forecast row count and checksum.
``audit.overrides``: human overrides (manual promotion, rollback), who and why.

Append-only: on PostgreSQL the database refuses UPDATE, DELETE and TRUNCATE on
these tables (``audit.reject_change()`` triggers, created by ``ensure_schema``).
DuckDB has no triggers: there the guarantee is by the writer; this package is the
only writer and it issues INSERTs only (``tests/audit`` checks it).
"""

from nightcast.audit.records import (
    AUDIT_TABLE_NAMES,
    DECISIONS,
    code_version,
    default_actor,
    find_publications,
    forecast_checksum,
    format_publications,
    input_snapshot,
    record_held_back,
    record_override,
    record_publication,
)

__all__ = [
    "AUDIT_TABLE_NAMES",
    "DECISIONS",
    "code_version",
    "default_actor",
    "find_publications",
    "forecast_checksum",
    "format_publications",
    "input_snapshot",
    "record_held_back",
    "record_override",
    "record_publication",
]
