"""The night's books: every record a source offered is loaded, quarantined, or the night stops.

The count starts at the source, not at what landed (``ops.task_runs``, one row per
stage, source and table):

* ``extract``: ``rows_in`` = what the source offered (the records its files hold, as
  their CSV dialect counts them apart from the parser, or the rows the query
  returned), ``rows_out`` = rows landed; they must agree or the extract fails;
* ``clean``: ``rows_in`` (landed) = ``rows_out`` (clean) + ``rows_quarantined``;
* ``load``: ``rows_in`` = the extract's ``rows_in`` = loaded + quarantined, checked
  inside the load's transaction, so a night that does not balance changes nothing
  (no table, no watermark).

A full refresh replaces all of a source's rows in a table, so it never does so on
thin evidence: an empty or header-only export while the table holds rows of the
source, or one that would shrink the table by more than the mapping's
``max_shrink`` (default half of its current rows), fails the night naming the
file, unless the mapping says ``allow_empty: true`` / ``max_shrink: <fraction>``,
or on-call allows that one night with :func:`allow_refresh` (an
``audit.overrides`` row: who, when, why).
"""

from __future__ import annotations

import logging
from datetime import date

from nightcast.audit import record_override
from nightcast.errors import DeterministicError
from nightcast.sources.extract import IntakeError
from nightcast.sources.mapping import SourceMapping, TableMapping
from nightcast.warehouse.base import Warehouse

log = logging.getLogger("nightcast.pipeline")

OVERRIDE_ACTION = "allow_full_refresh"


class FullRefreshError(RuntimeError, DeterministicError):
    """A full export too thin to replace the table with: nothing was loaded."""

    rerun_from = "extract"

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.sources = (source,)


def override_action(source: str, table: str) -> str:
    return f"{OVERRIDE_ACTION} {source}.{table}"


def allow_refresh(
    wh: Warehouse,
    source: str,
    table: str,
    run_date: date,
    reason: str,
    *,
    actor: str | None = None,
) -> str:
    """On-call's one-night permission for a thin full refresh; recorded in ``audit.overrides``."""
    if not reason.strip():
        raise ValueError("say why the refresh may empty or shrink the table (--reason)")
    return record_override(
        wh, override_action(source, table), actor=actor, run_date=run_date, reason=reason
    )


def _override(wh: Warehouse, source: str, table: str, run_date: date) -> tuple[str, str] | None:
    row = wh.fetchone(
        "select actor, reason from audit.overrides where action = ? and run_date = ? "
        "order by recorded_at desc limit 1",
        [override_action(source, table), run_date],
    )
    return (str(row[0]), str(row[1] or "")) if row else None


def current_rows(wh: Warehouse, source: str, table: str) -> int:
    row = wh.fetchone(f"select count(*) from raw.{table} where source = ?", [source])
    return int(row[0]) if row else 0


def refresh_problem(table: TableMapping, current: int, new: int) -> str | None:
    """Why ``new`` rows may not replace ``current`` ones under the mapping, or None."""
    if new == 0:
        # 'allow_empty' says an empty export is this table's truth: no shrink limit then.
        # Nor is there one when the source has no rows there yet (e.g. an optional file it
        # does not export): replacing nothing with nothing destroys nothing.
        if table.allow_empty or current == 0:
            return None
        return "an empty full export is refused ('allow_empty' is not set)"
    if current and new < current and (current - new) / current > table.max_shrink:
        return (
            f"it would remove {(current - new) / current:.0%} of the table's rows, more than "
            f"'max_shrink: {table.max_shrink:g}' allows"
        )
    return None


def check_full_refresh(
    wh: Warehouse,
    mapping: SourceMapping,
    table: TableMapping,
    run_date: date,
    new_rows: int,
    inputs: tuple[str, ...],
    quarantined: int = 0,
) -> None:
    """Raise :class:`FullRefreshError` when ``new_rows`` may not replace the table's rows."""
    if table.mode != "full":
        return
    current = current_rows(wh, mapping.source, table.table)
    problem = refresh_problem(table, current, new_rows)
    if problem is None:
        return
    override = _override(wh, mapping.source, table.table, run_date)
    if override is not None:
        log.warning(
            "full refresh of raw.%s from %s for %s: %d row(s) replace %d (%s), allowed by "
            "on-call override of %s: %s",
            table.table,
            mapping.source,
            run_date,
            new_rows,
            current,
            problem,
            *override,
        )
        return
    kept = f" ({quarantined} more quarantined)" if quarantined else ""
    raise FullRefreshError(
        f"source {mapping.source!r} table {table.table!r}: the full refresh would replace the "
        f"{current} row(s) of raw.{table.table} from {mapping.source} with {new_rows}{kept}, "
        f"read from {', '.join(inputs) or 'no file'}: {problem}. Nothing was loaded; BI keeps "
        f"the current rows. If the export is right, set 'allow_empty: true' or 'max_shrink: "
        f"<fraction>' on table {table.table!r} in {mapping.path.name}, or allow it for run "
        f"{run_date} only: nightcast allow-refresh {mapping.source} {table.table} --run-date "
        f"{run_date} --reason '<why>' (recorded in audit.overrides); then rerun from the "
        f"extract",
        mapping.source,
    )


def extract_inputs(wh: Warehouse, run_date: date, source: str, table: str) -> tuple[str, ...]:
    """The files (or query) the night's extract read, as it recorded them."""
    row = wh.fetchone(
        "select summary from ops.task_runs where run_date = ? and task = 'extract' "
        "and source = ? and table_name = ?",
        [run_date, source, table],
    )
    return tuple(row[0].split("; ")) if row and row[0] else ()


def offered_rows(wh: Warehouse, run_date: date, source: str, table: str) -> int | None:
    """What the source offered for the night (the extract's ``rows_in``), if recorded."""
    row = wh.fetchone(
        "select rows_in from ops.task_runs where run_date = ? and task = 'extract' "
        "and source = ? and table_name = ?",
        [run_date, source, table],
    )
    return None if row is None or row[0] is None else int(row[0])


def reconcile(
    wh: Warehouse,
    run_date: date,
    source: str,
    table: str,
    *,
    landed: int,
    loaded: int,
    quarantined: int,
) -> int:
    """The rows the source offered; raise :class:`IntakeError` unless all are accounted for."""
    offered = offered_rows(wh, run_date, source, table)
    books = landed if offered is None else offered
    if books != landed or books != loaded + quarantined:
        files = wh.fetchone(
            "select landed_path from ops.extract_windows where run_date = ? and source = ? "
            "and table_name = ?",
            [run_date, source, table],
        )
        raise IntakeError(
            f"source {source!r} table {table!r} for {run_date}: the source offered {books} "
            f"record(s), {landed} were landed ({files[0] if files else 'no landing'}) and "
            f"{loaded} loaded + {quarantined} quarantined: they must balance. Nothing was "
            f"loaded; rerun from the extract",
            source,
        )
    return books
