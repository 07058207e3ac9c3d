"""ERP tables of the demo simulator, as portable SQLAlchemy Core metadata.

Names are ERP-shaped on purpose (``product``, ``sales_order_line`` ...): the
source mapping ``sources/mappings/demo.yaml`` renames them onto the canonical
model. Ids are written explicitly (no autoincrement) so a seed reproduces them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    select,
)
from sqlalchemy.engine import Connection

metadata = MetaData()

# One row per product (grain: product_id).
product = Table(
    "product",
    metadata,
    Column("product_id", Integer, primary_key=True, autoincrement=False),
    Column("sku", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("department", String(64), nullable=False),
    Column("category", String(64), nullable=False),
    Column("subcategory", String(64), nullable=False),
    Column("list_price", Double, nullable=False),
    Column("launched_on", Date, nullable=False),
    Column("discontinued_on", Date, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# One row per selling location (grain: store_id).
store = Table(
    "store",
    metadata,
    Column("store_id", Integer, primary_key=True, autoincrement=False),
    Column("code", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("country", String(2), nullable=False),
    Column("region", String(64), nullable=False),
    Column("opened_on", Date, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# One row per order header (grain: order_id; one store, one business day).
sales_order = Table(
    "sales_order",
    metadata,
    Column("order_id", Integer, primary_key=True, autoincrement=False),
    Column("order_no", String(16), nullable=False),
    Column("store_id", Integer, nullable=False),
    Column("order_ts", DateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_sales_order_updated_at", "updated_at"),
    Index("ix_sales_order_created_at", "created_at"),
)

# One row per order line (grain: line_id; returns are lines with qty < 0).
sales_order_line = Table(
    "sales_order_line",
    metadata,
    Column("line_id", Integer, primary_key=True, autoincrement=False),
    Column("order_id", Integer, nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("product_id", Integer, nullable=False),
    Column("qty", Double, nullable=False),
    Column("unit_price", Double, nullable=False),
    Column("discount_pct", Double, nullable=False),
    Column("line_status", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_sales_order_line_updated_at", "updated_at"),
    Index("ix_sales_order_line_created_at", "created_at"),
    Index("ix_sales_order_line_order_id", "order_id"),
)

# One row per promotion (grain: promo_id; store_id NULL = every store).
promotion = Table(
    "promotion",
    metadata,
    Column("promo_id", Integer, primary_key=True, autoincrement=False),
    Column("product_id", Integer, nullable=False),
    Column("store_id", Integer, nullable=True),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("discount_pct", Double, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# One row per price change (grain: product_id x valid_from).
price_history = Table(
    "price_history",
    metadata,
    Column("price_id", Integer, primary_key=True, autoincrement=False),
    Column("product_id", Integer, nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("price", Double, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# One row per product x store x day out of stock.
stock_out = Table(
    "stock_out",
    metadata,
    Column("stock_out_id", Integer, primary_key=True, autoincrement=False),
    Column("product_id", Integer, nullable=False),
    Column("store_id", Integer, nullable=False),
    Column("day", Date, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_stock_out_day", "day"),
)

# Simulator bookkeeping: seed, size, first and last simulated day.
erp_meta = Table(
    "erp_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

DATA_TABLES: tuple[Table, ...] = (
    product,
    store,
    sales_order,
    sales_order_line,
    promotion,
    price_history,
    stock_out,
)


def _values(raw: np.ndarray, col: Column[Any], as_text: bool) -> list[Any]:
    """One column as Python values; ``as_text`` renders dates the way SQLAlchemy stores them in SQLite."""
    if isinstance(col.type, DateTime | Date):
        unit = "us" if isinstance(col.type, DateTime) else "D"
        arr = raw.astype(f"datetime64[{unit}]")
        if not as_text:
            return (
                arr.astype("datetime64[s]" if unit == "us" else arr.dtype).astype(object).tolist()
            )
        if unit == "us":
            text = np.char.replace(np.datetime_as_string(arr, unit="us"), "T", " ")
        else:
            text = np.datetime_as_string(arr, unit="D")
        nat = np.isnat(arr)
        out: list[Any] = text.tolist()
        return (
            [None if n else v for v, n in zip(out, nat.tolist(), strict=True)] if nat.any() else out
        )
    if isinstance(col.type, Integer):
        if raw.dtype.kind == "f":
            return [None if np.isnan(v) else int(v) for v in raw.tolist()]
        return raw.astype(np.int64).tolist()
    if isinstance(col.type, Double):
        return raw.astype(np.float64).tolist()
    return [None if v is None else str(v) for v in raw.tolist()]


def _columns(frame: pd.DataFrame, table: Table, as_text: bool) -> tuple[list[str], list[list[Any]]]:
    cols = [c for c in table.columns if c.name in frame.columns]
    return [c.name for c in cols], [_values(frame[c.name].to_numpy(), c, as_text) for c in cols]


def to_records(frame: pd.DataFrame, table: Table) -> list[dict[str, Any]]:
    """Rows of ``frame`` as plain Python values typed for ``table``'s columns."""
    names, values = _columns(frame, table, as_text=False)
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def _chunks(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def insert_frame(conn: Connection, table: Table, frame: pd.DataFrame, chunk: int = 50_000) -> int:
    """Bulk-insert ``frame`` into ``table`` (executemany per chunk); returns rows."""
    if frame.empty:
        return 0
    if conn.dialect.name == "sqlite":
        # SQLAlchemy's per-row parameter processing dominates on SQLite; the
        # driver gets the same text SQLAlchemy would have written.
        names, values = _columns(frame, table, as_text=True)
        quote = conn.dialect.identifier_preparer.quote
        sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
            f"VALUES ({', '.join('?' * len(names))})"
        )
        rows = list(zip(*values, strict=True))
        for part in _chunks(rows, chunk):
            conn.exec_driver_sql(sql, list(part))
        return len(frame)
    for start in range(0, len(frame), chunk):
        conn.execute(table.insert(), to_records(frame.iloc[start : start + chunk], table))
    return len(frame)


def update_frame(conn: Connection, table: Table, key: str, frame: pd.DataFrame) -> int:
    """Set the non-key columns of ``frame`` on the rows whose ``key`` matches."""
    if frame.empty:
        return 0
    cols = [c for c in frame.columns if c != key]
    stmt = (
        table.update()
        .where(table.c[key] == bindparam("k_" + key))
        .values({c: bindparam("v_" + c) for c in cols})
    )
    rows = [
        {("k_" if k == key else "v_") + k: v for k, v in row.items()}
        for row in to_records(frame, table)
    ]
    for part in _chunks(rows, 20_000):
        conn.execute(stmt, list(part))
    return len(frame)


def read_meta(conn: Connection) -> dict[str, str]:
    """All ``erp_meta`` entries (empty when the table is missing)."""
    if not conn.dialect.has_table(conn, erp_meta.name):
        return {}
    rows = conn.execute(select(erp_meta.c.key, erp_meta.c.value)).all()
    return {str(k): str(v) for k, v in rows}


def write_meta(conn: Connection, values: dict[str, str]) -> None:
    """Upsert ``values`` into ``erp_meta`` (delete + insert: portable across dialects)."""
    conn.execute(erp_meta.delete().where(erp_meta.c.key.in_(list(values))))
    conn.execute(erp_meta.insert(), [{"key": k, "value": v} for k, v in values.items()])


def row_counts(conn: Connection) -> dict[str, int]:
    """Rows per data table."""
    return {
        t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
        for t in DATA_TABLES
    }


def max_id(conn: Connection, table: Table) -> int:
    """Largest primary key of ``table`` (0 when empty)."""
    pk = next(iter(table.primary_key.columns))
    return int(conn.execute(select(func.coalesce(func.max(pk), 0))).scalar_one())
