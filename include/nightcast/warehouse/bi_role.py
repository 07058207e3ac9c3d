"""The read-only BI role of a PostgreSQL warehouse (``nightcast bi-role``).

BI may SELECT the tables and views of ``marts`` and nothing else: no other schema, no
TEMP, no CREATE anywhere, no role attributes. Run it as the warehouse owner holding
CREATEROLE (no superuser needed) or as a superuser; a rerun passes and changes only the
password. dbt rebuilds the marts every night, and a rebuilt table or view comes without
the grants of the one it replaced; so BI's SELECT is also a default privilege *for the
role dbt builds with* (the owner of ``marts``), whoever runs this command.

Everything happens in one transaction, which ends by checking the result from the
catalog (``bi_role_problems``): a grant the server silently skipped (a REVOKE or GRANT
without the right to make it only warns) fails the command instead of passing unnoticed.
"""

from __future__ import annotations

import logging
import re

from nightcast.warehouse.base import Warehouse
from nightcast.warehouse.postgres import server_message, sqlstate

log = logging.getLogger("nightcast.warehouse")

BI_SCHEMAS = ("marts",)
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
_ATTRIBUTES = ("SUPERUSER", "CREATEROLE", "CREATEDB", "REPLICATION", "BYPASSRLS")
_WRITE = "INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"
_BI_LIST = ", ".join(f"'{s}'" for s in BI_SCHEMAS)  # SQL list of constants


class BiRoleError(RuntimeError):
    """The BI role could not be set up as promised; the message says what to do."""


def grant_bi_role(
    wh: Warehouse, role: str, password: str | None, *, builder: str | None = None
) -> str:
    """Create or update ``role``: SELECT on ``marts`` (now and after every dbt build), nothing
    else; LOGIN with ``password``, NOLOGIN without. ``builder``: the role dbt builds the marts
    with (default: the owner of ``marts``). Returns ``builder``.
    """
    for name in (role, builder):
        if name is not None and not _IDENTIFIER.fullmatch(name):
            raise BiRoleError(f"role name {name!r} must be a lower-case SQL identifier")
    me, is_super, db, db_owner = wh.fetchone(
        "select current_user::text, r.rolsuper, d.datname::text, pg_get_userbyid(d.datdba)::text "
        "from pg_roles r, pg_database d "
        "where r.rolname = current_user and d.datname = current_database()"
    ) or ("?", False, "?", "?")
    marts_owner = wh.fetchone(
        "select pg_get_userbyid(nspowner)::text from pg_namespace where nspname = 'marts'"
    )
    builder = builder or (marts_owner[0] if marts_owner else db_owner if is_super else me)
    if builder == role:
        raise BiRoleError(f"the BI role cannot be {builder}, the role dbt builds the marts with")
    if not wh.fetchone("select 1 from pg_roles where rolname = ?", [builder]):
        raise BiRoleError(f"role {builder} (given as the role dbt builds with) does not exist")
    try:
        with wh.transaction():
            _ensure_role(wh, role, password, is_super=is_super)
            _database_privileges(wh, role, db, keep_temp={builder} | (set() if is_super else {me}))
            _schema_privileges(wh, role, builder, create_marts=marts_owner is None)
            problems = bi_role_problems(wh, role, builder)
            if problems:
                raise BiRoleError(
                    f"role {role} would not be read-only on marts: {'; '.join(problems)}; "
                    f"run it as the owner of database {db} with CREATEROLE, or as a superuser"
                )
    except BiRoleError:
        raise
    except Exception as err:
        if sqlstate(err) is None:
            raise
        hint = ""
        if sqlstate(err) == "42501":
            hint = (
                f"; run it as the warehouse owner with CREATEROLE (alter role {me} createrole) "
                f"or as a superuser; on PostgreSQL 16+ an existing {role} also needs ADMIN "
                f"OPTION for {me} (a role has it on the roles it created)"
            )
        raise BiRoleError(
            f"{me} could not set up role {role}: {server_message(err)}{hint}"
        ) from None
    log.info("role %s can read %s and nothing else", role, ", ".join(BI_SCHEMAS))
    return builder


def _ensure_role(wh: Warehouse, role: str, password: str | None, *, is_super: bool) -> None:
    login = "login" if password else "nologin"
    attrs = wh.fetchone(
        "select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
        "from pg_roles where rolname = ?",
        [role],
    )
    if attrs is None:
        wh.execute(
            f"create role {role} {login} nosuperuser nocreatedb nocreaterole "
            "noreplication nobypassrls"
        )
    else:
        # Only a superuser may touch SUPERUSER, REPLICATION or BYPASSRLS, even to switch them
        # off: leave them alone when they are off already, so the owner can rerun this.
        risky = [name for name, on in zip(_ATTRIBUTES, attrs, strict=True) if on]
        if risky and not is_super:
            raise BiRoleError(
                f"role {role} exists with {', '.join(risky)}: a superuser must remove "
                f"{'it' if len(risky) == 1 else 'them'} (alter role {role} "
                + " ".join(f"no{a.lower()}" for a in risky)
                + ")"
            )
        if risky:
            wh.execute(f"alter role {role} " + " ".join(f"no{a.lower()}" for a in risky))
        wh.execute(f"alter role {role} {login}")
    if password:
        # DDL takes no bind parameters: a quoted literal (standard_conforming_strings).
        wh.execute(f"alter role {role} password '{password.replace(chr(39), chr(39) * 2)}'")
    for (granted,) in wh.fetchall(
        "select pg_get_userbyid(m.roleid)::text from pg_auth_members m "
        "join pg_roles r on r.oid = m.member where r.rolname = ?",
        [role],
    ):
        wh.execute(f'revoke "{granted}" from {role}')  # BI inherits nobody's privileges


def _database_privileges(wh: Warehouse, role: str, db: str, *, keep_temp: set[str]) -> None:
    wh.execute(f'revoke all on database "{db}" from {role}')
    wh.execute(f'grant connect on database "{db}" to {role}')
    public_temp = wh.fetchone(
        "select count(*) from pg_database d, "
        "aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a "
        "where d.datname = current_database() and a.grantee = 0 "
        "and a.privilege_type = 'TEMPORARY'"
    )
    if public_temp and public_temp[0]:
        # Every role may create temporary tables through PUBLIC: only the roles that write
        # (the pipeline, dbt) keep that right, explicitly.
        for writer in sorted(keep_temp):
            wh.execute(f'grant temporary on database "{db}" to "{writer}"')
        wh.execute(f'revoke temporary on database "{db}" from public')
        log.info("database %s: TEMP now only for %s", db, ", ".join(sorted(keep_temp)))


def _schema_privileges(wh: Warehouse, role: str, builder: str, *, create_marts: bool) -> None:
    # Schemas this role may manage (owner, member of the owner, or superuser): take back
    # anything BI was given there. Schemas owned by others (audit) never granted BI anything.
    for (schema,) in wh.fetchall(
        f"select nspname::text from pg_namespace where nspname not in ({_BI_LIST}) "
        "and nspname <> 'information_schema' and nspname not like 'pg\\_%' "
        "and pg_has_role(nspowner, 'USAGE') order by 1"
    ):
        wh.execute(f'revoke all on schema "{schema}" from {role}')
        for kind in ("tables", "sequences", "functions"):
            wh.execute(f'revoke all on all {kind} in schema "{schema}" from {role}')
    if wh.fetchone("select has_schema_privilege(?, 'public', 'CREATE')", [role]) == (True,):
        wh.execute("revoke create on schema public from public")  # PostgreSQL < 15 grants it
    for schema in BI_SCHEMAS:
        if create_marts:
            wh.execute(f"create schema {schema} authorization {builder}")
        wh.execute(f"grant usage on schema {schema} to {role}")
        wh.execute(f"revoke create on schema {schema} from {role}")
        wh.execute(f"revoke all on all tables in schema {schema} from {role}")
        wh.execute(f"grant select on all tables in schema {schema} to {role}")
        wh.execute(
            f"alter default privileges for role {builder} in schema {schema} "
            f"grant select on tables to {role}"
        )


def bi_role_problems(wh: Warehouse, role: str, builder: str) -> list[str]:
    """Everything that makes ``role`` more (or less) than read-only on the marts, from the
    catalog; empty when it is exactly that."""
    problems: list[str] = []
    attrs = wh.fetchone(
        "select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
        "from pg_roles where rolname = ?",
        [role],
    )
    if attrs is None:
        return [f"role {role} does not exist"]
    problems += [f"it has {a}" for a, on in zip(_ATTRIBUTES, attrs, strict=True) if on]
    temp, create, connect = wh.fetchone(
        "select has_database_privilege(?, current_database(), 'TEMPORARY'), "
        "has_database_privilege(?, current_database(), 'CREATE'), "
        "has_database_privilege(?, current_database(), 'CONNECT')",
        [role, role, role],
    ) or (True, True, False)
    if temp:
        problems.append("it can create temporary tables (TEMP on the database, through PUBLIC)")
    if create:
        problems.append("it can create schemas")
    if not connect:
        problems.append("it cannot connect")
    problems += [
        f"it can create objects in schema {s}"
        for (s,) in wh.fetchall(
            "select nspname::text from pg_namespace where has_schema_privilege(?, oid, 'CREATE') "
            "order by 1",
            [role],
        )
    ]
    problems += [
        f"it can use {r}'s privileges"
        for (r,) in wh.fetchall(
            "select rolname::text from pg_roles where rolname <> ? and pg_has_role(?, oid, 'USAGE') "
            "order by 1",
            [role, role],
        )
    ]
    outside = wh.fetchall(
        "select n.nspname || '.' || c.relname from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        f"where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') and n.nspname not in ({_BI_LIST}) "
        "and n.nspname not in ('pg_catalog', 'information_schema') "
        "and n.nspname not like 'pg\\_%' "
        f"and has_table_privilege(?, c.oid, 'SELECT, {_WRITE}') order by 1",
        [role],
    )
    problems += [f"it can read or change {t}" for (t,) in outside[:5]]
    for name, readable, writable in wh.fetchall(
        "select n.nspname || '.' || c.relname, has_table_privilege(?, c.oid, 'SELECT'), "
        f"has_table_privilege(?, c.oid, '{_WRITE}') from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        f"where c.relkind in ('r', 'p', 'v', 'm', 'f') and n.nspname in ({_BI_LIST}) order by 1",
        [role, role],
    ):
        if not readable:
            problems.append(f"it cannot read {name} (owned by a role whose grants this run lacks)")
        if writable:
            problems.append(f"it can change {name}")
    for schema in BI_SCHEMAS:
        default = wh.fetchone(
            "select 1 from pg_default_acl d join pg_namespace n on n.oid = d.defaclnamespace, "
            "aclexplode(d.defaclacl) a where n.nspname = ? and d.defaclobjtype = 'r' "
            "and d.defaclrole = ?::regrole and a.grantee = ?::regrole "
            "and a.privilege_type = 'SELECT'",
            [schema, builder, role],
        )
        if not default:
            problems.append(f"what {builder} builds in {schema} later would not be readable")
    return problems
