"""PostgreSQL: the audit schema belongs to a role nobody logs in as (``nightcast audit setup``).

The append-only triggers only bind roles that do not own the tables: an owner can disable or
drop them, or rename the table and recreate it. So the ``audit`` schema, its tables and its
trigger function belong to ``nightcast_audit`` (NOLOGIN), and the role the pipeline logs in
as gets USAGE on the schema and INSERT and SELECT on the tables, nothing more, and is no
member of the owner. docker-compose's PostgreSQL init script sets this up on a fresh volume
(deploy/postgres/initdb.d/10-nightcast.sh); on a server that already runs Nightcast a
superuser runs ``nightcast audit setup --writer <pipeline role>`` once (rerunning it is
harmless). DuckDB has no roles: there the hash chain is the whole guarantee.

On PostgreSQL 15 and older a role with CREATEROLE may alter any role that is not a superuser,
the audit owner included; setup refuses a pipeline role with CREATEROLE there.
"""

from __future__ import annotations

import re

from nightcast.warehouse.audit_chain import CHAINED_TABLES, lock_key
from nightcast.warehouse.base import Warehouse
from nightcast.warehouse.schema import AUDIT_TABLES

AUDIT_OWNER = "nightcast_audit"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
_DENIED = ("UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


class AuditSetupError(RuntimeError):
    """The audit trail cannot be handed to its owner role as asked; the message says why."""


def _owner_of_schema(wh: Warehouse) -> str | None:
    row = wh.fetchone(
        "select pg_get_userbyid(nspowner)::text from pg_namespace where nspname = 'audit'"
    )
    return row[0] if row else None


def separation_problems(wh: Warehouse, writer: str, owner: str | None = None) -> list[str]:
    """Why ``writer`` (the pipeline's role) could change the audit trail; empty when it can
    only append to it and read it. ``owner``: the role that should own it (default: whoever
    owns the schema)."""
    schema_owner = _owner_of_schema(wh)
    if schema_owner is None:
        return ["there is no audit schema yet"]
    owner = owner or schema_owner
    fix = f"a superuser runs `nightcast audit setup --writer {writer}`"
    problems: list[str] = []
    if schema_owner != owner:
        problems.append(f"schema audit belongs to {schema_owner}, not {owner}")
    if owner == writer:
        problems.append(f"{writer} owns the audit trail and can drop its triggers; {fix}")
    attrs = wh.fetchone(
        "select rolcanlogin, rolsuper from pg_roles where rolname = ?", [owner]
    ) or (True, True)
    if attrs[0]:
        problems.append(f"{owner}, the owner of the audit trail, can log in")
    if attrs[1]:
        problems.append(f"{owner}, the owner of the audit trail, is a superuser")
    super_, createrole, version = wh.fetchone(
        "select rolsuper, rolcreaterole, current_setting('server_version_num')::int "
        "from pg_roles where rolname = ?",
        [writer],
    ) or (False, False, 0)
    if super_:
        problems.append(f"{writer} is a superuser: nothing is out of its reach")
    if createrole and version < 160000:
        problems.append(
            f"{writer} has CREATEROLE, which on PostgreSQL 15 and older lets it alter "
            f"{owner} (alter role {writer} nocreaterole)"
        )
    if owner != writer and wh.fetchone("select pg_has_role(?, ?, 'MEMBER')", [writer, owner]) == (
        True,
    ):
        problems.append(f"{writer} is a member of {owner} and can act as it; {fix}")
    if wh.fetchone("select has_schema_privilege(?, 'audit', 'CREATE')", [writer]) == (True,):
        problems.append(f"{writer} can create objects in schema audit")
    for table in CHAINED_TABLES:
        name = table.split(".")[1]
        row = wh.fetchone(
            "select pg_get_userbyid(c.relowner)::text, has_table_privilege(?, c.oid, 'INSERT'), "
            "has_table_privilege(?, c.oid, 'SELECT'), "
            f"has_table_privilege(?, c.oid, '{', '.join(_DENIED)}') from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'audit' and c.relname = ?",
            [writer, writer, writer, name],
        )
        if row is None:
            problems.append(f"{table} does not exist")
            continue
        table_owner, can_insert, can_select, can_change = row
        if table_owner != owner:
            problems.append(f"{table} belongs to {table_owner}, not {owner}")
        if not (can_insert and can_select):
            problems.append(f"{writer} cannot insert into and read {table}")
        if can_change and owner != writer:
            problems.append(f"{writer} may change rows of {table}")
        triggers = {
            t: enabled
            for t, enabled in wh.fetchall(
                "select t.tgname::text, t.tgenabled <> 'D' from pg_trigger t "
                "join pg_class c on c.oid = t.tgrelid join pg_namespace n "
                "on n.oid = c.relnamespace where n.nspname = 'audit' and c.relname = ?",
                [name],
            )
        }
        for trigger in (f"{name}_append_only", f"{name}_no_truncate"):
            if not triggers.get(trigger):
                problems.append(f"trigger {trigger} on {table} is missing or disabled")
    return problems


def setup_audit_owner(wh: Warehouse, writer: str, owner: str = AUDIT_OWNER) -> list[str]:
    """Hand the audit trail to ``owner`` (created NOLOGIN if missing); ``writer`` keeps
    INSERT and SELECT. Runs as a superuser, in one transaction, idempotently; returns what it
    did, one line each. Raises ``AuditSetupError`` when the result would not hold."""
    from nightcast.warehouse.postgres import PostgresWarehouse

    if not isinstance(wh, PostgresWarehouse):
        raise AuditSetupError("audit roles are PostgreSQL-only; DuckDB relies on the hash chain")
    for name in (writer, owner):
        if not _IDENTIFIER.fullmatch(name):
            raise AuditSetupError(f"role name {name!r} must be a lower-case SQL identifier")
    me, is_super = wh.fetchone(
        "select current_user::text, rolsuper from pg_roles where rolname = current_user"
    ) or ("?", False)
    if not is_super:
        raise AuditSetupError(
            f"connected as {me}, not a superuser: run it with NIGHTCAST_WAREHOUSE_URL naming "
            f"a superuser (the pipeline role {writer} must not be able to do this itself)"
        )
    if writer == owner:
        raise AuditSetupError(f"the audit owner must differ from the pipeline role {writer}")
    if not wh.fetchone("select 1 from pg_roles where rolname = ?", [writer]):
        raise AuditSetupError(f"role {writer} (the pipeline's role, --writer) does not exist")
    done: list[str] = []
    with wh.transaction():
        wh.fetchall("select pg_advisory_xact_lock(?)::text", [lock_key("audit-migration")])
        login = wh.fetchone("select rolcanlogin from pg_roles where rolname = ?", [owner])
        if login is None:
            wh.execute(f"create role {owner} nologin noinherit")
            done.append(f"created role {owner} (nologin)")
        elif login[0]:
            wh.execute(f"alter role {owner} nologin")
            done.append(f"role {owner} may no longer log in")
        for (member,) in wh.fetchall(
            "select pg_get_userbyid(m.member)::text from pg_auth_members m "
            "where m.roleid = ?::regrole",
            [owner],
        ):
            wh.execute(f'revoke {owner} from "{member}"')
            done.append(f"{member} is no longer a member of {owner}")
        if _owner_of_schema(wh) is None:
            wh.execute(f"create schema audit authorization {owner}")
        # As the superuser: missing tables, triggers, the chain of rows from before it.
        wh.ensure_audit()
        wh.execute(f"alter schema audit owner to {owner}")
        for kind, name in wh.fetchall(
            "select 'table', c.relname::text from pg_class c join pg_namespace n "
            "on n.oid = c.relnamespace where n.nspname = 'audit' and c.relkind in ('r', 'p') "
            "union all select 'function', p.oid::regprocedure::text from pg_proc p "
            "join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'audit' order by 1, 2"
        ):
            target = f"audit.{name}" if kind == "table" else name
            wh.execute(f"alter {kind} {target} owner to {owner}")
        wh.execute(f"revoke all on schema audit from public, {writer}")
        wh.execute(f"grant usage on schema audit to {writer}")
        for table in AUDIT_TABLES:
            wh.execute(f"revoke all on audit.{table} from public, {writer}")
            wh.execute(f"grant select, insert on audit.{table} to {writer}")
        problems = separation_problems(wh, writer, owner)
        if problems:
            raise AuditSetupError("; ".join(problems))
    done.append(
        f"audit schema owned by {owner}; {writer} may insert into and read "
        + ", ".join(CHAINED_TABLES)
        + ", nothing else"
    )
    return done
