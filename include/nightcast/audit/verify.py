"""``nightcast audit verify``: walk each audit table's hash chain and name the first break.

Reads only. On PostgreSQL it also says when the role it connects as could change the trail
itself (``roles.separation_problems``): a warning, since the chain still shows any change.
"""

from __future__ import annotations

from nightcast.audit.roles import separation_problems
from nightcast.warehouse.audit_chain import (
    CHAINED_TABLES,
    ChainCheck,
    check_chain,
    select_rows_sql,
    table_columns,
)
from nightcast.warehouse.base import Warehouse


def verify_chains(wh: Warehouse) -> list[ChainCheck]:
    """One ``ChainCheck`` per audit table, in ``CHAINED_TABLES`` order."""
    checks = []
    for table in CHAINED_TABLES:
        missing = [c for c in ("seq", "row_hash") if c not in wh.columns(table)]
        if missing:
            raise LookupError(
                f"{table} has no hash chain yet: the pipeline adds it the next time it opens "
                "the warehouse as the tables' owner (on PostgreSQL with the trail set up, a "
                "superuser runs `nightcast audit setup`)"
            )
        cols = table_columns(table)
        rows = (dict(zip(cols, r, strict=True)) for r in wh.fetchall(select_rows_sql(table)))
        checks.append(check_chain(table, rows))
    return checks


def role_warnings(wh: Warehouse) -> list[str]:
    """PostgreSQL: why the role connected now could change the trail (empty for a superuser,
    who always could: the chain is what catches that)."""
    if wh.dialect != "postgresql":
        return []
    me, is_super = wh.fetchone(
        "select current_user::text, rolsuper from pg_roles where rolname = current_user"
    ) or ("?", True)
    return [] if is_super else separation_problems(wh, me)
