"""The marker for failures that a retry cannot fix.

Bad data, a broken mapping, a changed ERP schema or a failing dbt test fail the
same way on every attempt, so Airflow must not retry them (``DEFAULT_ARGS`` in
``nightcast.orchestration`` fails these at once and keeps retries for the rest:
connection errors, timeouts). It sits next to ``config`` at the bottom of the
import graph, so every domain package may raise it.
"""

from __future__ import annotations


class DeterministicError(Exception):
    """A failure that repeats until a person fixes its cause.

    ``sources`` names the ERP sources whose data caused it and ``rerun_from`` the
    stage (``extract``) whose per-source task must be cleared, with downstream, once
    it is fixed: clearing the failed task alone would read the same data again. Empty
    means the failed task itself is the one to clear.
    """

    sources: tuple[str, ...] = ()
    rerun_from: str = ""
