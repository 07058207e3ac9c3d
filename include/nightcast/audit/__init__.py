"""The append-only audit trail of published forecasts (``audit`` schema).

``audit.publications``: one row per publish decision of a run (published, held back
by the gate, rolled back) with the input snapshot (landed files and their sha256),
model version and parameters, code version, forecast row count and checksum.
``audit.overrides``: human overrides (manual promotion, rollback), who and why.

Append-only: on PostgreSQL the database refuses UPDATE, DELETE and TRUNCATE on
these tables (``audit.reject_change()`` triggers), and the schema belongs to a role
the pipeline does not log in as, so the pipeline cannot switch the triggers off
(``roles``: ``nightcast audit setup``; docker-compose's init script does the same).
DuckDB has neither triggers nor roles: there the writer refuses changes; this package
is the only writer and it issues INSERTs only (``tests/audit`` checks it).

Tamper-evident everywhere: each row is chained to the one before it by a sha256
(``nightcast.warehouse.audit_chain``; ``records.append_chained`` appends one at a
time), and ``verify`` (``nightcast audit verify``) names the first row that was
changed, deleted or reordered, by anyone, a superuser included.
"""

from nightcast.audit.records import (
    AUDIT_TABLE_NAMES,
    DECISIONS,
    code_version,
    default_actor,
    find_publications,
    forecast_checksum,
    input_snapshot,
    record_held_back,
    record_override,
    record_publication,
)
from nightcast.audit.show import forecast_rows, show_publications

__all__ = [
    "AUDIT_TABLE_NAMES",
    "DECISIONS",
    "code_version",
    "default_actor",
    "find_publications",
    "forecast_checksum",
    "forecast_rows",
    "input_snapshot",
    "record_held_back",
    "record_override",
    "record_publication",
    "show_publications",
]
