"""Check a mapping file and its source without running a night (``nightcast mapping check``).

The file is validated (:func:`nightcast.sources.mapping.load_mapping`); then, unless
told not to connect, its connection is opened and every mapped table is looked at the
way the extract will read it, without reading any rows:

- a database (``kind: sql``): each table's query runs under ``limit 0`` on one
  connection, first as a full read and then, for incremental tables, with the window
  on its watermark columns; the ERP names a missing table or column itself. The
  output's column names must be unique and hold every ``from`` column and the
  ``split`` column (an integer one when ``parallel`` asks for several streams).
- a CSV drop folder (``kind: csv_folder``): the folder must exist and hold night
  folders; in the latest night (or the one asked for) each table's file must be
  there (unless ``optional``) and its header, read in the table's dialect, must hold
  every ``from`` column.

Every problem is one line naming the file, the key (``tables.items.columns.sku.from``)
and its value. Nothing is written: a SQLite file that does not exist is reported, not
created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import sqlalchemy as sa

from nightcast.config import SettingError, connection_path, connection_url
from nightcast.sources.csv_folder import checked_layout, find_files, night_folder
from nightcast.sources.csv_records import header_problem
from nightcast.sources.extract import Window, window_sql
from nightcast.sources.mapping import SourceMapping, TableMapping, load_mapping
from nightcast.sources.mapping_rules import MappingError
from nightcast.sources.streams import BulkReadError, column_kind

CONNECT_TIMEOUT_S = 10


@dataclass
class CheckResult:
    """What checking one mapping file found: ``problems`` fail the check, ``notes`` do not."""

    file: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: int = 0
    columns: int = 0
    connected: str = ""  # where the mapped columns were found ('' when not checked)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.problems:
            return f"{self.file}: {len(self.problems)} problem(s)"
        checked = f"all found {self.connected}" if self.connected else "connection not checked"
        return (
            f"{self.file}: ok: {self.tables} table(s), {self.columns} mapped column(s); {checked}"
        )


def check_mapping(path: Path, *, connect: bool = True, night: date | None = None) -> CheckResult:
    """Validate mapping ``path`` and, when ``connect``, that its source has what it maps.

    ``night``: the night folder of a csv_folder source to check (default: the latest).
    """
    result = CheckResult(path.name)
    try:
        mapping = load_mapping(path)
    except MappingError as exc:
        result.problems.extend(exc.problems)
        return result
    except OSError as exc:
        result.problems.append(f"{path}: cannot read it: {exc.strerror or exc}")
        return result
    result.tables = len(mapping.tables)
    result.columns = sum(len(t.columns) for t in mapping.tables.values())
    if connect and mapping.kind == "csv_folder":
        _check_drop(mapping, night, result)
    elif connect:
        _check_database(mapping, result)
    return result


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return next((x.strip() for x in str(orig).splitlines() if x.strip()), type(orig).__name__)


def _missing_columns(
    file: str, table: TableMapping, names: list[str], what: str, result: CheckResult
) -> None:
    """A problem per mapped ``from`` column that ``names`` (the source's columns) lacks."""
    have = set(names)
    for name, rule in table.columns.items():
        if rule.source_column is not None and rule.source_column not in have:
            result.problems.append(
                f"{file}: tables.{table.table}.columns.{name}.from = {rule.source_column!r}: "
                f"{what} has no such column (it has: {', '.join(names) or 'none'})"
            )


# --- databases -----------------------------------------------------------------------------


def _engine(mapping: SourceMapping, result: CheckResult) -> sa.Engine | None:
    where = f"{mapping.path.name}: connection = {mapping.connection!r}"
    try:
        url = sa.make_url(connection_url(mapping.connection))
    except (SettingError, sa.exc.ArgumentError) as exc:
        result.problems.append(f"{where}: {_first_line(exc)}")
        return None
    backend = url.get_backend_name()
    database = url.database or ""
    if backend == "sqlite" and database not in ("", ":memory:") and not Path(database).is_file():
        var = f"AIRFLOW_CONN_{mapping.connection.upper()}"
        result.problems.append(f"{where}: the SQLite file {database} ({var}) does not exist")
        return None
    args = {"connect_timeout": CONNECT_TIMEOUT_S} if backend in ("postgresql", "mysql") else {}
    return sa.create_engine(url, connect_args=args)


def _check_database(mapping: SourceMapping, result: CheckResult) -> None:
    engine = _engine(mapping, result)
    if engine is None:
        return
    file = mapping.path.name
    try:
        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as exc:
            result.problems.append(
                f"{file}: connection = {mapping.connection!r}: cannot connect to the ERP "
                f"({engine.dialect.name}): {_first_line(exc)}"
            )
            return
        with conn:
            for table in mapping.tables.values():
                _check_query(conn, file, table, result)
        for table in mapping.tables.values():
            _check_streams(engine, file, table, result)
    finally:
        engine.dispose()
    if not result.problems:
        result.connected = f"over {engine.dialect.name} connection {mapping.connection!r}"


def _probe(conn: sa.Connection, table: TableMapping, window: Window) -> list[str]:
    """The output column names of ``table``'s query over ``window``; no row is read."""
    predicate, params = window_sql(table, window)
    query = table.query.replace("{window}", predicate).strip().rstrip(";")
    probe = f"select * from ({query}) as _nc_check limit 0"
    try:
        return list(conn.execute(sa.text(probe), params).keys())
    except sa.exc.DBAPIError:
        conn.rollback()  # PostgreSQL: the next table needs a usable transaction
        raise


def _check_query(conn: sa.Connection, file: str, table: TableMapping, result: CheckResult) -> None:
    at = f"{file}: tables.{table.table}"
    try:
        names = _probe(conn, table, Window("full", None, None))
    except sa.exc.DBAPIError as exc:
        result.problems.append(f"{at}.query: the ERP refuses it: {_first_line(exc)}")
        return
    if table.mode == "incremental":
        day = datetime(2000, 1, 1)
        try:
            _probe(conn, table, Window("incremental", day, day))
        except sa.exc.DBAPIError as exc:
            result.problems.append(
                f"{at}.watermark = {list(table.watermark_columns)!r}: the query fails once the "
                f"window on these columns is in it: {_first_line(exc)}"
            )
    problem = header_problem(names)
    if problem:
        problem = problem.replace("the header", "the query's output")
        result.problems.append(f"{at}.query: {problem}; give every selected column its own alias")
    _missing_columns(file, table, names, "the query's output", result)
    mapped = {r.source_column for r in table.columns.values()}
    if table.split and table.split not in names and table.split not in mapped:
        result.problems.append(
            f"{at}.split = {table.split!r}: the query's output has no such column "
            f"(it has: {', '.join(names)})"
        )


def _check_streams(engine: sa.Engine, file: str, table: TableMapping, result: CheckResult) -> None:
    """``parallel`` streams split on an integer column (PostgreSQL, MySQL/MariaDB)."""
    if not (table.parallel or 1) > 1 or not table.split:
        return
    if engine.dialect.name not in ("postgresql", "mysql", "mariadb"):
        return  # other engines are read by one stream whatever 'parallel' says
    query = table.query.replace("{window}", "1 = 1")
    try:
        kind = column_kind(engine, query, {}, table.split)
    except BulkReadError:
        return  # the missing column is already reported
    if kind != "integer":
        result.problems.append(
            f"{file}: tables.{table.table}.parallel = {table.parallel}: its streams split on "
            f"column {table.split!r}, which is {kind}; set 'split' to an integer column"
        )


# --- CSV drop folders ----------------------------------------------------------------------


def _nights(folder: Path) -> list[date]:
    days = []
    for child in folder.iterdir():
        try:
            day = date.fromisoformat(child.name)
        except ValueError:
            continue
        if child.is_dir():
            days.append(day)
    return sorted(days)


def _check_drop(mapping: SourceMapping, night: date | None, result: CheckResult) -> None:
    file = mapping.path.name
    where = f"{file}: connection = {mapping.connection!r}"
    try:
        folder = connection_path(mapping.connection)
    except SettingError as exc:
        result.problems.append(f"{where}: {_first_line(exc)}")
        return
    if not folder.is_dir():
        result.problems.append(f"{where}: the drop folder {folder} does not exist")
        return
    nights = _nights(folder)
    day = night or (nights[-1] if nights else None)
    if day is None:
        result.problems.append(
            f"{where}: the drop folder {folder} holds no night folder (YYYY-MM-DD) yet, so "
            "no file could be checked (--no-connect checks the file alone)"
        )
        return
    if day not in nights:
        result.problems.append(f"{where}: the drop folder has no night {night_folder(folder, day)}")
        return
    for table in mapping.tables.values():
        _check_files(folder, mapping, table, day, result)
    result.connected = f"in {night_folder(folder, day)}"


def _check_files(
    folder: Path, mapping: SourceMapping, table: TableMapping, day: date, result: CheckResult
) -> None:
    file = mapping.path.name
    files = find_files(folder, table, day)
    if not files:
        message = f"{file}: tables.{table.table}.file = {table.file!r}: no such file in "
        message += f"{night_folder(folder, day)}"
        if table.optional:
            result.notes.append(message + " (optional: a night without it is normal)")
        else:
            result.problems.append(message)
    for path in files:
        try:
            layout = checked_layout(path, mapping, table)
        except ValueError as exc:  # IntakeError: a header the lander would refuse
            result.problems.append(f"{file}: tables.{table.table}: {_first_line(exc)}")
            continue
        if not layout.header:
            result.notes.append(f"{file}: tables.{table.table}: {path} is empty (no header)")
            continue
        _missing_columns(file, table, layout.header, str(path), result)
