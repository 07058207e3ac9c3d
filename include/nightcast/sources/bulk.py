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

MySQL/MariaDB: the ``mariadb``/``mysql`` client with ``--quick --batch``
(unbuffered, tab-separated, ``\\t \\n \\\\ \\0`` escaped, so rows and fields
split unambiguously; values holding a backslash are unescaped afterwards). The
client prints a NULL and the text ``'NULL'`` identically, and the query cannot
be wrapped to tell them apart (MariaDB drops the ``ORDER BY`` of a derived
table), so this path lands both as null and :func:`mysql_fast_path_ok` only
allows it when every mapped column already treats ``NULL`` as a null token
(the default); otherwise the caller uses the generic path.

Text forms differ from the generic SQLAlchemy path only where the cleaner
parses both the same: floats print shortest-form (``1`` not ``1.0``),
timestamptz offsets as ``+00`` not ``+00:00``, fractional seconds without
trailing zeros (PostgreSQL) or with all declared digits (MySQL ``DATETIME(6)``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from nightcast.sources.mapping import SourceMapping, TableMapping

BLOCK_BYTES = 4 << 20  # CSV bytes parsed per batch: bounds memory
ROW_GROUP_ROWS = 131_072  # batches are gathered into row groups of about this size
POSTGRES_BOOL_OID = 16
PG_METHOD: str | None = None  # "psql" or "psycopg"; None: psql when installed
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")  # SQLAlchemy text() bind syntax
_MYSQL_ESCAPES = {"t": "\t", "n": "\n", "0": "\0", "\\": "\\", "r": "\r", "b": "\b", "Z": "\x1a"}
_MYSQL_ESCAPE = re.compile(r"\\(.)", re.DOTALL)

Progress = Callable[[int], None]


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
    schema = pa.schema([(n, pa.string()) for n in names])
    read = pacsv.ReadOptions(column_names=names, block_size=BLOCK_BYTES, use_threads=threads)
    rows = 0
    # No dictionary pages or statistics: building them cost more CPU than parsing the
    # CSV (landing files are read whole by the cleaner); zstd still shrinks repeats.
    with pq.ParquetWriter(
        tmp, schema, compression="zstd", use_dictionary=False, write_statistics=False
    ) as writer:
        try:
            reader = pacsv.open_csv(
                source, read_options=read, parse_options=parse, convert_options=convert
            )
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return 0
            raise
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for batch in reader:
            batch = fix(batch) if fix is not None else batch
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


class _CopyReader:
    """A read-only file over psycopg's COPY blocks (one row each)."""

    def __init__(self, blocks: Iterator[Any]) -> None:
        self._blocks = blocks
        self._buf = bytearray()
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            block = next(self._blocks, None)
            if block is None:
                break
            self._buf += block
        n = len(self._buf) if size < 0 else min(size, len(self._buf))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def read_postgres(
    engine: sa.Engine,
    query: str,
    params: Mapping[str, Any],
    tmp: Path,
    progress: Progress,
    *,
    method: str | None = None,
    threads: bool = True,
) -> int:
    """Land ``query`` from PostgreSQL via COPY CSV; ``method`` is "psql" or "psycopg"."""
    import psycopg
    from psycopg import sql

    method = method or PG_METHOD or ("psql" if shutil.which("psql") else "psycopg")
    with engine.connect() as conn:
        pg = conn.connection.driver_connection
        if not isinstance(pg, psycopg.Connection):
            raise BulkReadError(f"expected a psycopg 3 connection, got {type(pg).__name__}")
        try:
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
                        source: Any = _CopyReader(iter(stream))
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
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", copy]
    with _client(cmd, env) as proc:
        assert proc.stdout is not None
        return _write(proc.stdout, names, _PG_PARSE, convert, tmp, progress, threads=threads)


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


def _mysql_unescape(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Undo the client's batch-mode escaping in the (rare) values that hold a backslash."""
    arrays = []
    for col in batch.columns:
        mask = pc.match_substring(col, "\\")
        if pc.any(mask).as_py():
            fixed = [
                _MYSQL_ESCAPE.sub(lambda m: _MYSQL_ESCAPES.get(m[1], m[1]), v)
                if v is not None and "\\" in v
                else v
                for v in col.to_pylist()
            ]
            col = pa.array(fixed, type=pa.string())
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


class _EscapeCR:
    """The client escapes tab, newline and backslash but not CR, which pyarrow reads as a
    line end: turn each raw CR into the escape ``\\r`` (unambiguous, since a literal
    backslash arrives doubled) so :func:`_mysql_unescape` restores it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._buf = b""
        self.closed = False
        # Set before the parser sees the first escaped value: until then no batch needs
        # unescaping, which spares scanning every column of every batch (a third of the CPU).
        self.escaped = False

    def read(self, size: int = -1) -> bytes:
        if len(self._buf) < max(size, 1):
            chunk = self._raw.read(size if size > 0 else -1)
            if b"\r" in chunk:
                chunk = chunk.replace(b"\r", b"\\r")
            self.escaped = self.escaped or b"\\" in chunk
            self._buf += chunk
        n = len(self._buf) if size < 0 else size
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def mysql_client() -> str | None:
    return shutil.which("mariadb") or shutil.which("mysql")


def read_mysql(
    engine: sa.Engine,
    query: str,
    params: Mapping[str, Any],
    tmp: Path,
    progress: Progress,
    *,
    threads: bool = True,
) -> int:
    """Land ``query`` from MySQL/MariaDB through the command-line client in batch mode."""
    import pymysql

    client = mysql_client()
    if client is None:
        raise BulkReadError("no mariadb/mysql client installed")
    with engine.connect() as conn:
        my = conn.connection.driver_connection
        try:
            text = _strip(render_params(query, params, lambda v: str(my.escape(v))))  # type: ignore[union-attr]
            with my.cursor() as cur:  # type: ignore[union-attr]
                cur.execute(f"select * from ({text}) as _nc limit 0")
                names = [d[0] for d in cur.description or []]
        except pymysql.Error as exc:
            raise BulkReadError(str(exc)) from exc
    url = engine.url
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        null_values=["NULL"],
        strings_can_be_null=True,
    )
    lines = ["[client]"]
    for key, value in (
        ("host", url.host),
        ("port", url.port),
        ("user", url.username),
        ("password", url.password),
        ("socket", url.query.get("unix_socket")),
    ):
        if value:
            quoted = str(value).replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{key}="{quoted}"')
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
            escaper = _EscapeCR(proc.stdout)

            def fix(batch: pa.RecordBatch) -> pa.RecordBatch:
                return _mysql_unescape(batch) if escaper.escaped else batch

            source: Any = escaper
            return _write(source, names, _MYSQL_PARSE, convert, tmp, progress, fix, threads)


# --- Parallel streams: what the split planner asks of the ERP --------------------------------

_INTEGER_TYPES = {
    "postgresql": {20, 21, 23},  # int8, int2, int4 (type OIDs)
    "mysql": {1, 2, 3, 8, 9},  # TINY, SHORT, LONG, LONGLONG, INT24 (field types)
}


def quote_ident(engine: sa.Engine, name: str) -> str:
    """``name`` quoted as an identifier of the engine's dialect."""
    return engine.dialect.identifier_preparer.quote_identifier(name)


def column_kind(engine: sa.Engine, query: str, params: Mapping[str, Any], column: str) -> str:
    """The type of ``column`` in ``query``'s output: "integer", or which other type it is."""
    inner = _strip(query)
    probe = f"select {quote_ident(engine, column)} from ({inner}) as _nc_probe limit 0"
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.text(probe), dict(params))
            description = result.cursor.description
    except sa.exc.DBAPIError as exc:
        raise BulkReadError(
            f"cannot read split column {column!r} from the query's output "
            f"({str(exc.orig).strip().splitlines()[0]}); set 'split' to one of its columns"
        ) from exc
    type_code = description[0][1] if description else None
    dialect = "mysql" if engine.dialect.name in ("mysql", "mariadb") else engine.dialect.name
    if type_code in _INTEGER_TYPES.get(dialect, set()):
        return "integer"
    return f"of type {_type_name(dialect, type_code)}, not an integer"


def _type_name(dialect: str, code: Any) -> str:
    if dialect == "postgresql":
        import psycopg

        info = psycopg.adapters.types.get(code) if isinstance(code, int) else None
        return info.name if info else f"code {code!r}"
    if dialect == "mysql":
        from pymysql.constants import FIELD_TYPE

        names = {v: k.lower() for k, v in vars(FIELD_TYPE).items() if isinstance(v, int)}
        return names.get(code, f"code {code!r}")
    return f"code {code!r}"


def estimate_rows(engine: sa.Engine, query: str, params: Mapping[str, Any]) -> int | None:
    """The ERP planner's estimate of ``query``'s rows (no scan), or None when unknown."""
    inner = _strip(query)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            plan: Any = conn.execute(
                sa.text(f"explain (format json) {inner}"), dict(params)
            ).scalar()
            if isinstance(plan, str):
                import json

                plan = json.loads(plan)
            return int(plan[0]["Plan"]["Plan Rows"])
        if engine.dialect.name in ("mysql", "mariadb"):
            rows = conn.execute(sa.text(f"explain {inner}"), dict(params)).mappings().all()
            return max((int(r.get("rows") or 0) for r in rows), default=0)
    return None
