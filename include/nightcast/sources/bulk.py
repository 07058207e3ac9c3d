"""Fast, bounded-memory readers from PostgreSQL and MySQL/MariaDB into landing Parquet.

Both stream the ERP's own text output into pyarrow's streaming CSV reader and
write each batch to a zstd Parquet file as it comes, every column a string (the
landing contract), so memory is bounded by the block size, not by the table.

PostgreSQL: ``COPY (<query>) TO STDOUT (FORMAT csv)``. COPY's CSV convention is
exactly what pyarrow needs: NULL is an *unquoted* empty field, an empty string
is a quoted ``""``; so ``null_values=[""]``, ``quoted_strings_can_be_null=False``
keeps the two apart. The stream comes either from ``psql`` (a C client whose
stdout pyarrow reads in 4 MiB blocks: no Python per row; the default when
``psql`` is installed) or from psycopg's ``cursor.copy`` (one Python iteration
per row, about 0.5 µs/row slower). Session settings pin the text forms:
``DateStyle=ISO,YMD`` (``2024-03-01 12:00:00``), ``extra_float_digits=1``
(shortest exact floats), UTF-8. Booleans are rendered ``True``/``False`` like
the generic path (COPY would write ``t``/``f``).

MySQL/MariaDB: connectorx (when installed; ``MYSQL_METHOD`` picks) reads typed Arrow
batches in Rust, which :func:`~nightcast.sources.client_io.render_like_client` renders
as the client prints them (docs/benchmarks.md "Extraction": 0.65x-0.79x of ``mariadb --quick``); result
types it cannot render exactly (FLOAT, TIME, DOUBLE(M,D), DECIMAL scale > 10) and
reads it fails on (zero dates) go through the client instead: ``mariadb``/``mysql``
with ``--quick --batch`` (unbuffered, tab-separated, ``\\t \\n \\\\ \\0`` escaped, so
rows and fields split unambiguously; values holding a backslash are unescaped
afterwards). The client prints a NULL and the text ``'NULL'`` identically, and the
query cannot be wrapped to tell them apart (MariaDB drops the ``ORDER BY`` of a
derived table), so both paths land both as null and :func:`mysql_fast_path_ok` only
allows them when every mapped column already treats ``NULL`` as a null token (the
default); otherwise the caller uses the generic path.

Text forms differ from the generic SQLAlchemy path only where the cleaner
parses both the same: floats print shortest-form (``1`` not ``1.0``),
timestamptz offsets as ``+00`` not ``+00:00``, fractional seconds without
trailing zeros (PostgreSQL) or with all declared digits (MySQL ``DATETIME(6)``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from nightcast.sources.client_io import (
    CopyReader,
    EscapeCR,
    connectorx_batches,
    cx_unsupported,
    has_connectorx,
    mysql_unescape,
)
from nightcast.sources.mapping import SourceMapping, TableMapping

BLOCK_BYTES = 4 << 20  # CSV bytes parsed per batch: bounds memory
ROW_GROUP_ROWS = 131_072  # batches are gathered into row groups of about this size
POSTGRES_BOOL_OID = 16
PG_METHOD: str | None = None  # "psql" or "psycopg"; None: psql when installed
# "connectorx" or "client"; None: connectorx when installed, else the mariadb/mysql client
MYSQL_METHOD: str | None = None
_PG_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(-[0-9A-F]+)+")
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")  # SQLAlchemy text() bind syntax

Progress = Callable[[int], None]
log = logging.getLogger("nightcast.sources")


class BulkReadError(RuntimeError):
    """The ERP refused the query or the bulk stream failed."""


def render_params(query: str, params: Mapping[str, Any], quote: Callable[[Any], str]) -> str:
    """Inline SQLAlchemy-style ``:name`` parameters as SQL literals (COPY takes no binds)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in params:
            raise BulkReadError(f"query parameter :{m.group(1)} has no value")
        return quote(params[m.group(1)])

    return _BIND.sub(sub, query).replace("\\:", ":")


def _strip(query: str) -> str:
    return query.strip().rstrip(";").rstrip()


def mysql_fast_path_ok(mapping: SourceMapping, table: TableMapping) -> bool:
    """True when landing the text 'NULL' as null cannot change what the cleaner reads."""
    return all("NULL" in r.null_tokens for r in table.columns.values() if r.source_column)


def _write(
    source: IO[bytes],
    names: list[str],
    parse: pacsv.ParseOptions,
    convert: pacsv.ConvertOptions,
    tmp: Path,
    progress: Progress,
    fix: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None,
    threads: bool = True,
) -> int:
    """Stream CSV bytes into ``tmp`` as an all-string Parquet file; returns the row count.

    ``threads`` False parses on the calling thread only: when several streams already
    run side by side, pyarrow's parse threads add CPU (about 1.7x) and no speed.
    """
    read = pacsv.ReadOptions(column_names=names, block_size=BLOCK_BYTES, use_threads=threads)
    try:
        reader: Iterable[pa.RecordBatch] = pacsv.open_csv(
            source, read_options=read, parse_options=parse, convert_options=convert
        )
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" not in str(exc):
            raise
        reader = []
    batches = map(fix, reader) if fix is not None else reader
    return _write_batches(batches, names, tmp, progress)


def _write_batches(
    batches: Iterable[pa.RecordBatch], names: list[str], tmp: Path, progress: Progress
) -> int:
    """Write all-string batches into ``tmp`` as Parquet row groups; returns the row count."""
    schema = pa.schema([(n, pa.string()) for n in names])
    rows = 0
    # No dictionary pages or statistics: building them cost more CPU than parsing the
    # CSV (landing files are read whole by the cleaner); zstd still shrinks repeats.
    with pq.ParquetWriter(
        tmp, schema, compression="zstd", use_dictionary=False, write_statistics=False
    ) as writer:
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for batch in batches:
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(pending, schema=schema))
                rows += pending_rows
                pending, pending_rows = [], 0
                progress(rows)
        if pending_rows:
            writer.write_table(pa.Table.from_batches(pending, schema=schema))
            rows += pending_rows
            progress(rows)
    return rows


@contextmanager
def _client(cmd: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A command-line client whose stdout is the data; fails with its stderr on error."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
        try:
            yield proc
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
        if proc.wait() != 0:
            err.seek(0)
            msg = err.read().decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
            raise BulkReadError(f"{Path(cmd[0]).name} failed: {msg}")


# --- PostgreSQL ----------------------------------------------------------------------------

PG_SETTINGS = {"DateStyle": "ISO, YMD", "IntervalStyle": "postgres", "extra_float_digits": "1"}
_PG_PARSE = pacsv.ParseOptions(
    delimiter=",", quote_char='"', double_quote=True, escape_char=False, newlines_in_values=True
)


def _pg_convert(names: list[str]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,  # COPY writes '' as "" and NULL as nothing
    )


def read_postgres(
    engine: sa.Engine,
    query: str,
    params: Mapping[str, Any],
    tmp: Path,
    progress: Progress,
    *,
    method: str | None = None,
    threads: bool = True,
    snapshot: str | None = None,
) -> int:
    """Land ``query`` from PostgreSQL via COPY CSV; ``method`` is "psql" or "psycopg".

    ``snapshot``: an id from ``pg_export_snapshot()`` whose transaction is still open;
    the COPY then reads that snapshot (in a read-only repeatable-read transaction).
    """
    import psycopg
    from psycopg import sql

    method = method or PG_METHOD or ("psql" if shutil.which("psql") else "psycopg")
    # Valid only as the first statements of a transaction, before any query.
    begin = ["SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"]
    begin += [_pg_snapshot(snapshot)] if snapshot else []
    with engine.connect() as conn:
        pg = conn.connection.driver_connection
        if not isinstance(pg, psycopg.Connection):
            raise BulkReadError(f"expected a psycopg 3 connection, got {type(pg).__name__}")
        try:
            if snapshot and method == "psycopg":
                pg.rollback()  # so that psycopg's implicit BEGIN precedes these
                for statement in begin:
                    pg.execute(statement)
            text = _strip(render_params(query, params, lambda v: sql.Literal(v).as_string(pg)))
            with pg.cursor() as cur:
                cur.execute(f"select * from ({text}) as _nc limit 0")
                desc = cur.description or []
            names = [d.name for d in desc]
            if any(d.type_code == POSTGRES_BOOL_OID for d in desc):
                text = _pg_bools(text, [d.type_code for d in desc])
            copy = f"COPY ({text}) TO STDOUT (FORMAT csv)"
            convert = _pg_convert(names)
            if method == "psycopg":
                with pg.cursor() as cur:
                    for key, value in PG_SETTINGS.items():
                        cur.execute(
                            sql.SQL("select set_config({}, {}, true)").format(
                                sql.Literal(key), sql.Literal(value)
                            )
                        )
                    cur.execute("set local client_encoding to 'UTF8'")
                    with cur.copy(copy) as stream:
                        source: Any = CopyReader(iter(stream))
                        return _write(
                            source, names, _PG_PARSE, convert, tmp, progress, threads=threads
                        )
        except psycopg.Error as exc:
            raise BulkReadError(str(exc).strip()) from exc
    url = engine.url
    conninfo = psycopg.conninfo.make_conninfo(
        host=url.host or "",
        port=str(url.port or ""),
        user=url.username or "",
        dbname=url.database or "",
        **{k: str(v) for k, v in url.query.items()},
    )
    env = dict(os.environ, PGCLIENTENCODING="UTF8", PGAPPNAME="nightcast-extract")
    env["PGOPTIONS"] = " ".join(
        f"-c {k}={v.replace(' ', '')}" for k, v in PG_SETTINGS.items()
    ).strip()
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    # Each -c runs in order in one session; -q keeps their command tags off stdout.
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo]
    for statement in ["BEGIN", *begin, copy] if snapshot else [copy]:
        cmd += ["-c", statement]
    with _client(cmd, env) as proc:
        assert proc.stdout is not None
        return _write(proc.stdout, names, _PG_PARSE, convert, tmp, progress, threads=threads)


def _pg_snapshot(snapshot: str) -> str:
    if not _PG_SNAPSHOT_ID.fullmatch(snapshot):
        raise BulkReadError(f"{snapshot!r} is not a PostgreSQL snapshot id (pg_export_snapshot)")
    return f"SET TRANSACTION SNAPSHOT '{snapshot}'"


def _pg_bools(text: str, types: list[int]) -> str:
    """Wrap the query so booleans read True/False, as the generic path writes them."""
    cols = [f'"_{i}"' for i in range(len(types))]
    exprs = [
        f"case when {c} then 'True' when not {c} then 'False' end" if t == POSTGRES_BOOL_OID else c
        for c, t in zip(cols, types, strict=True)
    ]
    return f"select {', '.join(exprs)} from ({text}) as _nc({', '.join(cols)})"


# --- MySQL / MariaDB -----------------------------------------------------------------------

_MYSQL_PARSE = pacsv.ParseOptions(
    delimiter="\t", quote_char=False, double_quote=False, escape_char=False
)


def mysql_client() -> str | None:
    return shutil.which("mariadb") or shutil.which("mysql")


def read_mysql(
    engine: sa.Engine,
    query: str,
    params: Mapping[str, Any],
    tmp: Path,
    progress: Progress,
    *,
    method: str | None = None,
    threads: bool = True,
) -> int:
    """Land ``query`` from MySQL/MariaDB; ``method`` is "connectorx" or "client".

    connectorx (the default when installed) reads typed Arrow batches in Rust, rendered
    as the client prints them; results it cannot render exactly, or that it fails on
    (zero dates, oversized decimals), are read again through the command-line client.
    """
    import pymysql

    with engine.connect() as conn:
        my = conn.connection.driver_connection
        try:
            text = _strip(render_params(query, params, lambda v: str(my.escape(v))))  # type: ignore[union-attr]
            with my.cursor() as cur:  # type: ignore[union-attr]
                cur.execute(f"select * from ({text}) as _nc limit 0")
                description = list(cur.description or [])
        except pymysql.Error as exc:
            raise BulkReadError(str(exc)) from exc
    names = [d[0] for d in description]
    method = method or MYSQL_METHOD or ("connectorx" if has_connectorx() else "client")
    if method == "connectorx":
        why = cx_unsupported(description)
        if engine.url.query.get("unix_socket"):
            why = "connectorx connects over TCP only (unix_socket is set)"
        elif extra := sorted(set(engine.url.query) - {"charset"}):
            # connectorx gets host, port, user, password and database only: TLS and other
            # connection options in the URL go through the client, which takes the TLS ones.
            why = f"the connection URL sets {', '.join(extra)}, which connectorx is not given"
        if why is None:
            try:
                batches = connectorx_batches(engine.url, text, description, ROW_GROUP_ROWS)
                return _write_batches(batches, names, tmp, progress)
            except BaseException as exc:  # a Rust panic arrives as pyo3's PanicException
                if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
                    raise
                why = f"connectorx failed: {(str(exc).strip() or repr(exc)).splitlines()[0]}"
                log.warning("reading through the mysql client instead: %s", why)
        else:
            log.info("reading through the mysql client: %s", why)
    return _read_client(engine.url, text, names, tmp, progress, threads)


def client_options(url: sa.URL) -> list[str]:
    """The ``[client]`` option file for ``url`` (password and TLS settings included)."""
    lines = ["[client]"]
    for key, value in (
        ("host", url.host),
        ("port", url.port),
        ("user", url.username),
        ("password", url.password),
        ("socket", url.query.get("unix_socket")),
        # PyMySQL's TLS options in the URL, under the client's names.
        ("ssl-ca", url.query.get("ssl_ca")),
        ("ssl-cert", url.query.get("ssl_cert")),
        ("ssl-key", url.query.get("ssl_key")),
    ):
        if value:
            quoted = str(value).replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{key}="{quoted}"')
    if str(url.query.get("ssl_verify_cert", "")).lower() in ("1", "true", "yes"):
        lines.append("ssl-verify-server-cert")
    return lines


def _read_client(
    url: sa.URL, text: str, names: list[str], tmp: Path, progress: Progress, threads: bool
) -> int:
    """Land ``text`` through the command-line client in batch mode."""
    client = mysql_client()
    if client is None:
        raise BulkReadError("no mariadb/mysql client installed")
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        null_values=["NULL"],
        strings_can_be_null=True,
    )
    lines = client_options(url)
    with tempfile.NamedTemporaryFile("w", suffix=".cnf") as cnf:  # 0600: keeps the password
        cnf.write("\n".join(lines) + "\n")
        cnf.flush()
        cmd = [
            client,
            f"--defaults-extra-file={cnf.name}",
            "--quick",
            "--batch",
            "--skip-column-names",
            "--default-character-set=utf8mb4",
            "-e",
            text,
        ]
        if url.database:
            cmd.append(url.database)
        with _client(cmd, dict(os.environ)) as proc:
            assert proc.stdout is not None
            escaper = EscapeCR(proc.stdout)

            def fix(batch: pa.RecordBatch) -> pa.RecordBatch:
                return mysql_unescape(batch) if escaper.escaped else batch

            source: Any = escaper
            return _write(source, names, _MYSQL_PARSE, convert, tmp, progress, fix, threads)
