"""One warehouse interface over DuckDB (embedded) and PostgreSQL (production).

The pipeline speaks this interface only; the target is chosen by
``NIGHTCAST_WAREHOUSE_URL`` (``duckdb:///path`` or ``postgresql://…``).
SQL passed in uses ``?`` placeholders and the portable subset both engines
understand.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pandas as pd
import pyarrow as pa

from nightcast.config import (
    DEFERRED_CONNECTION,
    WAREHOUSE_URL_VAR,
    SettingError,
    check_url,
    connection_url,
)
from nightcast.redaction import redact
from nightcast.warehouse.schema import ADDED_COLUMNS


class Warehouse(ABC):
    """A connection to the warehouse; not thread-safe, close it (or use ``open_warehouse``)."""

    dialect: str

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    @abstractmethod
    def arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table: ...

    def df(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        return self.arrow(sql, params).to_pandas()

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Warehouse]:
        """Everything inside commits together or not at all."""

    @abstractmethod
    def ensure_schema(self) -> None: ...

    @abstractmethod
    def insert_arrow(self, qualified: str, data: pa.Table) -> int:
        """Bulk insert by column name (Arrow-native: DuckDB scan / PostgreSQL binary COPY)."""

    @abstractmethod
    def upsert_arrow(self, qualified: str, data: pa.Table, key: str) -> int:
        """Replace the rows whose ``key`` is in ``data``, then insert ``data``."""

    @abstractmethod
    def replace_partition(self, qualified: str, column: str, value: Any, data: pa.Table) -> int:
        """Make ``data`` the only rows with ``column = value`` (call inside a transaction)."""

    @abstractmethod
    def checksums(
        self, schemas: Sequence[str], exclude_columns: Sequence[str] = ()
    ) -> dict[str, str]:
        """Order-independent checksum per table/view in ``schemas``."""

    @abstractmethod
    def close(self) -> None: ...

    def columns(self, qualified: str) -> list[str]:
        schema, table = qualified.split(".")
        rows = self.fetchall(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, table],
        )
        if not rows:
            raise LookupError(f"warehouse table {qualified} does not exist")
        return [r[0] for r in rows]

    def tables(self, schemas: Sequence[str]) -> list[tuple[str, str]]:
        marks = ", ".join("?" for _ in schemas)
        rows = self.fetchall(
            "select table_schema, table_name from information_schema.tables "
            f"where table_schema in ({marks}) order by 1, 2",
            list(schemas),
        )
        return [(r[0], r[1]) for r in rows]


def is_postgres_url(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("postgres", "postgresql")


class WarehouseUnavailableError(RuntimeError):
    """The warehouse could not be opened: server down, credentials refused, file unreadable.

    Not deterministic (a server comes back), so tasks keep their retries.
    """


def describe_url(url: str) -> str:
    """Where the warehouse is, for people: the DuckDB file, or the URL without its password."""
    return url.removeprefix("duckdb:///") if url.startswith("duckdb:///") else redact(url)


def _connect(url: str) -> Warehouse:
    if url.startswith(DEFERRED_CONNECTION):  # look the Airflow connection up now, or say why not
        url = connection_url(url.removeprefix(DEFERRED_CONNECTION))
    check_url(WAREHOUSE_URL_VAR, url)
    if is_postgres_url(url):
        from nightcast.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(url)
    if url.startswith("duckdb:///"):
        from pathlib import Path

        from nightcast.warehouse.duck import DuckWarehouse

        return DuckWarehouse(Path(url.removeprefix("duckdb:///")))
    raise SettingError(
        f"{WAREHOUSE_URL_VAR}: unsupported warehouse URL {url.split('://')[0]}://…; use "
        "duckdb:///path/to/file.duckdb or postgresql://user@host:port/db"
    )


def add_missing_columns(wh: Warehouse) -> None:
    """Give an older warehouse the columns added since (``ADDED_COLUMNS``); idempotent."""
    for qualified, columns in ADDED_COLUMNS.items():
        have = set(wh.columns(qualified))
        for name, ddl in columns.items():
            if name not in have:
                wh.execute(f"alter table {qualified} add column if not exists {name} {ddl}")


@contextmanager
def open_warehouse(url: str, *, ensure: bool = True) -> Iterator[Warehouse]:
    """Open the warehouse at ``url``; creates the pipeline's schemas unless ``ensure`` is False.

    A malformed URL is a :class:`SettingError`, a refused connection a
    :class:`WarehouseUnavailableError`; both name ``NIGHTCAST_WAREHOUSE_URL`` and neither
    carries the password (nor chains the driver's error, which may).
    """
    try:
        wh = _connect(url)
    except SettingError:
        raise
    except Exception as err:
        reason = next((x.strip() for x in str(err).splitlines() if x.strip()), type(err).__name__)
        raise WarehouseUnavailableError(
            f"cannot open the warehouse {describe_url(url)} ({WAREHOUSE_URL_VAR}): {redact(reason)}"
        ) from None
    try:
        if ensure:
            wh.ensure_schema()
            add_missing_columns(wh)
        yield wh
    finally:
        wh.close()
