"""The production warehouse: PostgreSQL through ADBC (Arrow-native, binary COPY ingest).

Loads are ``COPY … FROM STDIN (FORMAT binary)`` streams produced by the ADBC
driver straight from Arrow, inside the caller's transaction. Tables listed in
``PARTITIONED`` are LIST-partitioned; a run's partition is replaced by loading
a new table and swapping it in, all in one transaction, so a crash part-way
leaves the previous partition serving BI.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any

import pyarrow as pa

from nightcast.warehouse.audit_chain import (
    CHAIN_COLUMNS,
    OLD_ROW_ORDER,
    chain_old_rows,
    lock_key,
    table_columns,
)
from nightcast.warehouse.base import Warehouse
from nightcast.warehouse.schema import ALL_TABLES, AUDIT_TABLES, PARTITIONED, SCHEMAS

log = logging.getLogger("nightcast.warehouse")

_ARROW_TYPES: dict[str, pa.DataType] = {
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "smallint": pa.int16(),
    "double precision": pa.float64(),
    "real": pa.float32(),
    "character varying": pa.string(),
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp without time zone": pa.timestamp("us"),
    "boolean": pa.bool_(),
}
_QMARK = re.compile(r"\?")
# Raised by the audit tables' triggers: the audit trail is append-only.
_REJECT_CHANGE_FUNCTION = """
create or replace function audit.reject_change() returns trigger language plpgsql as $body$
begin
    raise exception 'audit.% is append-only: % refused', tg_table_name, tg_op
        using errcode = 'insufficient_privilege';
end
$body$
"""


_SERVER_ERROR = re.compile(r"ERROR:\s+(.+?)\s*(?:\n|$)")


def server_message(err: BaseException) -> str:
    """The server's own message of a failed statement, without the statement (which may hold
    a password) and without the driver's framing."""
    found = _SERVER_ERROR.findall(str(err))  # the last one: the statement comes before it
    return found[-1].strip() if found else type(err).__name__


def sqlstate(err: BaseException) -> str | None:
    """The SQLSTATE of a driver error (``42501``: insufficient privilege), if it has one."""
    state = getattr(err, "sqlstate", None)
    return state if isinstance(state, str) else None


def _numbered(sql: str) -> str:
    """``?`` placeholders → PostgreSQL's ``$1, $2, …`` (the pipeline's SQL has no literal ``?``)."""
    counter = iter(range(1, 10_000))
    return _QMARK.sub(lambda _: f"${next(counter)}", sql)


def _adbc_uri(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.split("+")[0] in ("postgres", "postgresql") else url


class PostgresWarehouse(Warehouse):
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        import adbc_driver_postgresql.dbapi as adbc

        self.url = url
        self.conn = adbc.connect(_adbc_uri(url), autocommit=True)
        self._depth = 0

    # -- plumbing ---------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.conn.cursor() as cur:
            cur.execute(_numbered(sql), tuple(params) if params else None)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(_numbered(sql), tuple(params) if params else None)
            return [tuple(r) for r in cur.fetchall()]

    def arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        with self.conn.cursor() as cur:
            cur.execute(_numbered(sql), tuple(params) if params else None)
            return cur.fetch_arrow_table()

    @contextmanager
    def transaction(self) -> Iterator[PostgresWarehouse]:
        if self._depth:  # nested: part of the outer transaction
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.conn.adbc_connection.set_autocommit(False)
        self._depth = 1
        try:
            yield self
            self.conn.adbc_connection.commit()
        except BaseException:
            self.conn.adbc_connection.rollback()
            raise
        finally:
            self._depth = 0
            self.conn.adbc_connection.set_autocommit(True)

    def close(self) -> None:
        self.conn.close()

    # -- schema -----------------------------------------------------------------
    def ensure_schema(self) -> None:
        for schema in SCHEMAS:
            self.execute(f"create schema if not exists {schema}")
        for schema, tables in ALL_TABLES.items():
            if schema == "audit":
                continue
            for table, ddl in tables.items():
                qualified = f"{schema}.{table}"
                part = PARTITIONED.get(qualified)
                suffix = f" partition by list ({part})" if part else ""
                self.execute(f"create table if not exists {qualified} ({ddl}){suffix}")
        self.ensure_audit()

    def ensure_audit(self) -> None:
        """The audit tables, append-only and hash-chained, as far as this role may manage them.

        Where the audit schema belongs to another role (``nightcast audit setup``), this role
        only checks that the tables are there with their chain: it cannot change them, which
        is the point. Where it owns them (embedded use, servers not set up yet), it creates
        them, their triggers, and chains rows written before the chain existed.
        """
        user, schema_ours = self.fetchone(
            "select current_user::text, coalesce((select pg_has_role(nspowner, 'USAGE') "
            "from pg_namespace where nspname = 'audit'), true)"
        ) or ("?", True)
        have = dict(
            self.fetchall(
                "select c.relname::text, pg_has_role(c.relowner, 'USAGE') from pg_class c "
                "join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = 'audit' and c.relkind in ('r', 'p')"
            )
        )
        fix = f"a superuser runs `nightcast audit setup --writer {user}` (docs/operations.md: Audit trail)"
        missing = [t for t in AUDIT_TABLES if t not in have]
        if missing and not schema_ours:
            raise RuntimeError(
                f"audit.{missing[0]} is missing and role {user} may not create it: the audit "
                f"schema belongs to another role; {fix}"
            )
        for table in missing:
            self.execute(f"create table if not exists audit.{table} ({AUDIT_TABLES[table]})")
            have[table] = True
        unchained = [
            f"audit.{t}" for t in AUDIT_TABLES if "row_hash" not in self.columns(f"audit.{t}")
        ]
        if not all(have[t] for t in AUDIT_TABLES):
            if unchained:
                raise RuntimeError(
                    f"{unchained[0]} has no hash-chain columns and role {user} may not add "
                    f"them; {fix}"
                )
            return
        if unchained:
            self._chain_old_rows(unchained)
        self._ensure_append_only()

    def _chain_old_rows(self, tables: list[str]) -> None:
        """Add the chain columns to audit tables from before the chain; chain their rows."""
        with self.transaction():
            # Every task opens the warehouse: one of them migrates, the others find it done.
            self.fetchall("select pg_advisory_xact_lock(?)::text", [lock_key("audit-migration")])
            for table in tables:
                if "row_hash" in self.columns(table):
                    continue
                name = table.split(".")[1]
                for column, sql_type in zip(
                    CHAIN_COLUMNS, ("bigint", "varchar", "varchar"), strict=True
                ):
                    self.execute(
                        f"alter table {table} add column if not exists {column} {sql_type}"
                    )
                cols = [c for c in table_columns(table) if c not in CHAIN_COLUMNS]
                rows = self.fetchall(
                    f"select {', '.join(cols)} from {table} order by {OLD_ROW_ORDER[table]}"
                )
                chained = chain_old_rows(table, [dict(zip(cols, r, strict=True)) for r in rows])
                # The append-only triggers refuse this UPDATE: off for this transaction only.
                self.execute(f"alter table {table} disable trigger user")
                for seq, prev, digest, event in chained:
                    self.execute(
                        f"update {table} set seq = ?, prev_hash = ?, row_hash = ? where event_id = ?",
                        [seq, prev, digest, event],
                    )
                self.execute(f"alter table {table} enable trigger user")
                self.execute(
                    f"alter table {table} "
                    + ", ".join(f"alter column {c} set not null" for c in CHAIN_COLUMNS)
                )
                self.execute(f"create unique index if not exists {name}_seq_key on {table} (seq)")
                log.info("%s: chained %d rows written before the hash chain", table, len(chained))

    def _ensure_append_only(self) -> None:
        """The ``audit`` tables refuse UPDATE, DELETE and TRUNCATE (idempotent)."""
        if not self.fetchone(
            "select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            "where n.nspname = 'audit' and p.proname = 'reject_change'"
        ):
            self.execute(_REJECT_CHANGE_FUNCTION)
        for table in AUDIT_TABLES:
            qualified = f"audit.{table}"
            have = {
                r[0]
                for r in self.fetchall(
                    "select t.tgname from pg_trigger t join pg_class c on c.oid = t.tgrelid "
                    "join pg_namespace n on n.oid = c.relnamespace "
                    "where n.nspname = 'audit' and c.relname = ?",
                    [table],
                )
            }
            if f"{table}_append_only" not in have:
                self.execute(
                    f"create trigger {table}_append_only before update or delete on {qualified} "
                    "for each row execute function audit.reject_change()"
                )
            if f"{table}_no_truncate" not in have:
                self.execute(
                    f"create trigger {table}_no_truncate before truncate on {qualified} "
                    "for each statement execute function audit.reject_change()"
                )
                # Once, with the trigger: a GRANT/REVOKE on every open would race between tasks.
                self.execute(f"revoke update, delete, truncate on {qualified} from public")

    # -- bulk writes ------------------------------------------------------------
    def _arrow_for(self, qualified: str, data: pa.Table) -> pa.Table:
        """Cast ``data`` to the table's column types (binary COPY is strict about them)."""
        schema, table = qualified.split(".")
        types = dict(
            self.fetchall(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ?",
                [schema, table],
            )
        )
        if not types:
            raise LookupError(f"warehouse table {qualified} does not exist")
        unknown = [c for c in data.column_names if c not in types]
        if unknown:
            raise ValueError(f"{qualified}: batch has columns the table does not: {unknown}")
        fields = [pa.field(c, _ARROW_TYPES.get(types[c], pa.string())) for c in data.column_names]
        return data.cast(pa.schema(fields))

    def _ingest(self, qualified: str, data: pa.Table, *, temporary: bool = False) -> int:
        schema, table = qualified.split(".") if "." in qualified else (None, qualified)
        with self.conn.cursor() as cur:
            n = cur.adbc_ingest(
                table, data, mode="append", db_schema_name=schema, temporary=temporary
            )
        return int(n) if n is not None and n >= 0 else data.num_rows

    def insert_arrow(self, qualified: str, data: pa.Table) -> int:
        if data.num_rows == 0:
            return 0
        return self._ingest(qualified, self._arrow_for(qualified, data))

    def upsert_arrow(self, qualified: str, data: pa.Table, key: str) -> int:
        if data.num_rows == 0:
            return 0
        with self.transaction():
            keys = self._arrow_for(qualified, data.select([key]))
            self.execute("drop table if exists _nc_keys")
            self.execute(f'create temporary table _nc_keys ("{key}" varchar)')
            self._ingest(
                "_nc_keys", keys.cast(pa.schema([pa.field(key, pa.string())])), temporary=True
            )
            self.execute(f'delete from {qualified} where "{key}" in (select "{key}" from _nc_keys)')
            self.execute("drop table _nc_keys")
            return self.insert_arrow(qualified, data)

    def replace_partition(self, qualified: str, column: str, value: Any, data: pa.Table) -> int:
        if PARTITIONED.get(qualified) != column:
            with self.transaction():
                self.execute(f'delete from {qualified} where "{column}" = ?', [value])
                return self.insert_arrow(qualified, data)
        schema, table = qualified.split(".")
        tag = (
            value.strftime("%Y%m%d") if isinstance(value, date) else re.sub(r"\W", "_", str(value))
        )
        part, new = f"{table}_p{tag}", f"{table}_p{tag}_new"
        literal = value.isoformat() if isinstance(value, date) else str(value)
        with self.transaction():
            self.execute(f"drop table if exists {schema}.{new}")
            self.execute(f"create table {schema}.{new} (like {qualified} including defaults)")
            # A matching CHECK lets ATTACH skip its validation scan of the new rows.
            self.execute(
                f"alter table {schema}.{new} add constraint {new}_ck check ({column} = '{literal}')"
            )
            n = (
                self._ingest(f"{schema}.{new}", self._arrow_for(qualified, data))
                if data.num_rows
                else 0
            )
            exists = self.fetchone(
                "select 1 from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                "join pg_namespace ns on ns.oid = c.relnamespace where ns.nspname = ? and c.relname = ?",
                [schema, part],
            )
            if exists:
                self.execute(f"alter table {qualified} detach partition {schema}.{part}")
                self.execute(f"drop table {schema}.{part}")
            self.execute(f"alter table {schema}.{new} rename to {part}")
            self.execute(
                f"alter table {qualified} attach partition {schema}.{part} for values in ('{literal}')"
            )
        return n

    def checksums(
        self, schemas: Sequence[str], exclude_columns: Sequence[str] = ()
    ) -> dict[str, str]:
        out: dict[str, str] = {}
        partitions = {
            (r[0], r[1])
            for r in self.fetchall(
                "select ns.nspname, c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                "join pg_namespace ns on ns.oid = c.relnamespace"
            )
        }
        for schema, table in self.tables(schemas):
            if (schema, table) in partitions:
                continue  # counted through the parent
            cols = [c for c in self.columns(f"{schema}.{table}") if c not in exclude_columns]
            row_sql = "md5(cast(row(" + ", ".join(f't."{c}"' for c in cols) + ") as text))"
            count, digest = self.fetchone(
                f"select count(*), coalesce(md5(string_agg(h, '' order by h)), '') "
                f"from (select {row_sql} as h from {schema}.{table} as t) as s"
            ) or (0, "")
            out[f"{schema}.{table}"] = f"{count}:{digest[:16]}"
        return out
