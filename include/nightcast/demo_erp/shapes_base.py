"""Shared plumbing of the ERP shapes: read the demo ERP's business, write another schema.

Grain: one :class:`Business` = the demo ERP's rows (as of an optional day),
as pandas frames; :func:`replace_tables` drops and recreates a target schema
and bulk-inserts it (executemany in chunks), so an exporter can be run again
and again against the same database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from nightcast.demo_erp import schema as sch

CHUNK_ROWS = 5_000


@dataclass(frozen=True)
class Business:
    """The demo ERP's rows: one frame per ERP table, sorted by primary key."""

    products: pd.DataFrame
    stores: pd.DataFrame
    orders: pd.DataFrame
    lines: pd.DataFrame  # with the order's store_id, order_ts and status joined in
    promotions: pd.DataFrame
    stock_outs: pd.DataFrame


def end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min)


def _read(conn: sa.Connection, table: sa.Table) -> pd.DataFrame:
    pk = next(iter(table.primary_key.columns))
    rows = conn.execute(sa.select(*table.columns).order_by(pk)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=[c.name for c in table.columns])


def read_business(src_url: str, until: date | None = None) -> Business:
    """The demo ERP at ``src_url``; with ``until``, rows created after that day are left out.

    The demo ERP keeps only the current state of a row, so a late edit made
    after ``until`` to a row created before it is still visible: ``until``
    cuts off new rows, it does not undo edits.
    """
    engine = sa.create_engine(src_url)
    try:
        with engine.connect() as conn:
            frames = {t.name: _read(conn, t) for t in sch.DATA_TABLES}
    finally:
        engine.dispose()
    products, stores = frames["product"], frames["store"]
    orders, lines = frames["sales_order"], frames["sales_order_line"]
    promos, stock = frames["promotion"], frames["stock_out"]
    if until is not None:
        hi = pd.Timestamp(end_of(until))
        products = products[pd.to_datetime(products["created_at"]) < hi]
        orders = orders[pd.to_datetime(orders["created_at"]) < hi]
        lines = lines[pd.to_datetime(lines["created_at"]) < hi]
        promos = promos[pd.to_datetime(promos["updated_at"]) < hi]
        stock = stock[pd.to_datetime(stock["day"]) <= pd.Timestamp(until)]
    head = orders[["order_id", "order_no", "store_id", "order_ts", "status", "updated_at"]]
    lines = lines.merge(
        head.rename(columns={"status": "order_status", "updated_at": "order_updated_at"}),
        on="order_id",
        how="inner",
        validate="many_to_one",
    )
    return Business(
        products=products.reset_index(drop=True),
        stores=stores.reset_index(drop=True),
        orders=orders.reset_index(drop=True),
        lines=lines.sort_values("line_id").reset_index(drop=True),
        promotions=promos.reset_index(drop=True),
        stock_outs=stock.reset_index(drop=True),
    )


def line_state(lines: pd.DataFrame) -> pd.Series:
    """Demo line status with the order's cancellation applied (open/shipped/cancelled/returned)."""
    return lines["line_status"].where(lines["order_status"] != "cancelled", "cancelled")


def line_changed(lines: pd.DataFrame) -> pd.Series:
    """When a line last changed: its own stamp or its order header's, whichever is later."""
    own = pd.to_datetime(lines["updated_at"])
    head = pd.to_datetime(lines["order_updated_at"])
    return own.where(own >= head, head)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame.astype(object).where(frame.notna(), None)
    recs: list[dict[str, Any]] = out.to_dict("records")
    for rec in recs:
        for k, v in rec.items():
            if isinstance(v, pd.Timestamp):
                rec[k] = v.to_pydatetime()
    return recs


def replace_tables(
    dst_url: str, metadata: sa.MetaData, frames: dict[str, pd.DataFrame]
) -> dict[str, int]:
    """Drop and recreate ``metadata``'s tables at ``dst_url`` and bulk-insert ``frames``."""
    engine = sa.create_engine(dst_url)
    counts: dict[str, int] = {}
    try:
        with engine.begin() as conn:
            metadata.drop_all(conn)
            metadata.create_all(conn)
            for name, frame in frames.items():
                table = metadata.tables[name]
                cols = [c.name for c in table.columns]
                missing = sorted(set(cols) - set(frame.columns))
                if missing:
                    raise ValueError(f"shape table {name!r}: frame lacks columns {missing}")
                recs = _records(frame[cols])
                for start in range(0, len(recs), CHUNK_ROWS):
                    conn.execute(table.insert(), recs[start : start + CHUNK_ROWS])
                counts[name] = len(recs)
    finally:
        engine.dispose()
    return counts
