"""Public entry points: build an ERP history, advance it one day, ask where it stands.

``generate`` replays the same per-day logic as ``advance`` but keeps the edit
window in memory and writes rows once they can no longer change, in chunks,
so memory stays bounded for the largest size.
"""

from __future__ import annotations

import logging
import time
from datetime import date, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.engine import Connection

from nightcast.demo_erp import schema as sch
from nightcast.demo_erp.catalog import (
    build_products,
    build_stores,
    initial_prices,
    latent_params,
    stream,
)
from nightcast.demo_erp.day import (
    EDIT_WINDOW_DAYS,
    LINE_COLS,
    ORDER_COLS,
    STREAM_DAY,
    Context,
    DayDelta,
    ErpState,
    simulate_day,
)
from nightcast.demo_erp.events import catalog_events
from nightcast.demo_erp.sizes import get_size

log = logging.getLogger("nightcast.demo_erp")

DEFAULT_START = date(2024, 1, 1)
DEFAULT_END = date(2025, 12, 31)
FLUSH_ROWS = 200_000
# Promotions announced before the history starts, so the first weeks have some.
WARMUP_DAYS = 21


class ErpExistsError(RuntimeError):
    """The target already holds a demo ERP and ``replace`` was not asked for."""


def _engine(url: str) -> Engine:
    return create_engine(url)


def _update_rows(frame: pd.DataFrame, key: str, updates: pd.DataFrame) -> None:
    if updates.empty:
        return
    pos = np.searchsorted(frame[key].to_numpy(), updates[key].to_numpy())
    for col in updates.columns:
        if col != key:
            frame.iloc[pos, frame.columns.get_loc(col)] = updates[col].to_numpy()


def _append(frame: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    if rows.empty:
        return frame
    if frame.empty:
        return rows.reset_index(drop=True)
    return pd.concat([frame, rows], ignore_index=True)


def apply_delta(st: ErpState, delta: DayDelta) -> None:
    """Fold a day's delta into the in-memory state (what ``advance`` does in SQL)."""
    _update_rows(st.orders, "order_id", delta.order_updates)
    _update_rows(st.lines, "line_id", delta.line_updates)
    _update_rows(st.products, "product_id", delta.product_updates)
    st.orders = _append(st.orders, delta.orders)
    st.lines = _append(st.lines, delta.lines)
    st.promotions = _append(st.promotions, delta.promotions)
    st.prices = _append(st.prices, delta.prices)
    st.stock_prev = delta.stock_out_flags
    st.next_order_id += len(delta.orders)
    st.next_line_id += len(delta.lines)
    st.next_stock_out_id += len(delta.stock_outs)


def _split_window(st: ErpState, day: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Detach rows created before the edit window of the day after ``day``: they are final."""
    cutoff = np.datetime64(day - timedelta(days=EDIT_WINDOW_DAYS - 1), "s")
    o_old = st.orders["created_at"].to_numpy() < cutoff
    l_old = st.lines["created_at"].to_numpy() < cutoff
    done = st.orders[o_old], st.lines[l_old]
    st.orders = st.orders[~o_old].reset_index(drop=True)
    st.lines = st.lines[~l_old].reset_index(drop=True)
    return done


def _empty(cols: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in cols})


def _meta_values(ctx: Context, last: date) -> dict[str, str]:
    return {
        "seed": str(ctx.seed),
        "size": ctx.size.name,
        "first_simulated_day": ctx.origin.isoformat(),
        "last_simulated_day": last.isoformat(),
    }


def _has_erp(conn: Connection) -> bool:
    names = set(inspect(conn).get_table_names())
    if sch.erp_meta.name in names and sch.read_meta(conn):
        return True
    return any(t.name in names and sch.max_id(conn, t) > 0 for t in sch.DATA_TABLES)


def generate(
    url: str,
    size: str = "default",
    start: date | None = None,
    end: date | None = None,
    seed: int = 42,
    replace: bool = False,
) -> dict[str, int]:
    """Build the ERP history for business days ``start..end`` (inclusive); rows per table."""
    start = start or DEFAULT_START
    end = end or DEFAULT_END
    return build_history(url, size, start, end, seed, replace, catalog_end=end)


def build_history(
    url: str,
    size: str,
    start: date,
    end: date,
    seed: int,
    replace: bool,
    catalog_end: date,
) -> dict[str, int]:
    """``generate`` with launches and openings laid out over ``start..catalog_end``.

    Separate so a test can show that ``generate`` + ``advance`` equals a longer
    ``generate`` over the same catalogue (the in-memory and SQL paths agree).
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    dsize = get_size(size)
    engine = _engine(url)
    t0 = time.perf_counter()
    try:
        with engine.begin() as conn:
            if _has_erp(conn) and not replace:
                raise ErpExistsError(
                    f"{engine.url.render_as_string(hide_password=True)} already holds an ERP; "
                    "pass replace=True to overwrite it"
                )
            sch.metadata.drop_all(conn)
            sch.metadata.create_all(conn)

        products = build_products(seed, dsize, start, catalog_end)
        stores = build_stores(seed, dsize, start, catalog_end)
        ctx = Context(seed, dsize, start, latent_params(seed, dsize, stores["kind"].tolist()))
        st = ErpState(
            products=products,
            stores=stores,
            promotions=_empty([c.name for c in sch.promotion.columns]),
            prices=initial_prices(products),
            orders=_empty(ORDER_COLS),
            lines=_empty(LINE_COLS),
            stock_prev=np.zeros((dsize.n_products, dsize.n_stores), dtype=bool),
            next_order_id=1,
            next_line_id=1,
            next_stock_out_id=1,
        )
        sids = stores["store_id"].to_numpy()
        for k in range(WARMUP_DAYS, 0, -1):
            d = start - timedelta(days=k)
            ev = catalog_events(
                stream(seed, STREAM_DAY, d.toordinal(), 6),
                st.products,
                sids,
                st.promotions,
                st.prices,
                d,
            )
            _update_rows(st.products, "product_id", ev.products)
            st.promotions = _append(st.promotions, ev.promotions)
            st.prices = _append(st.prices, ev.prices)

        n_days = (end - start).days + 1
        pending: list[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]] = []
        pending_rows = written = 0
        next_log = 0.1
        for i in range(n_days):
            day = start + timedelta(days=i)
            delta = simulate_day(ctx, st, day)
            apply_delta(st, delta)
            o_done, l_done = _split_window(st, day)
            pending.append((o_done, l_done, delta.stock_outs))
            pending_rows += len(o_done) + len(l_done) + len(delta.stock_outs)
            if pending_rows >= FLUSH_ROWS or i == n_days - 1:
                written += _flush(engine, pending)
                pending, pending_rows = [], 0
            if (i + 1) / n_days >= next_log:
                log.info(
                    "demo ERP %s: %d/%d days, %d rows written, %.1fs",
                    dsize.name,
                    i + 1,
                    n_days,
                    written,
                    time.perf_counter() - t0,
                )
                next_log += 0.1

        with engine.begin() as conn:
            sch.insert_frame(conn, sch.sales_order, st.orders)
            sch.insert_frame(conn, sch.sales_order_line, st.lines)
            sch.insert_frame(conn, sch.product, st.products)
            sch.insert_frame(conn, sch.store, st.stores)
            sch.insert_frame(conn, sch.promotion, st.promotions)
            sch.insert_frame(conn, sch.price_history, st.prices)
            sch.write_meta(conn, _meta_values(ctx, end))
            counts = sch.row_counts(conn)
        log.info("demo ERP %s generated in %.1fs: %s", dsize.name, time.perf_counter() - t0, counts)
        return counts
    finally:
        engine.dispose()


def _flush(engine: Engine, pending: list[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]) -> int:
    rows = 0
    with engine.begin() as conn:
        for k, table in enumerate((sch.sales_order, sch.sales_order_line, sch.stock_out)):
            parts = [p[k] for p in pending if not p[k].empty]
            if parts:
                rows += sch.insert_frame(conn, table, pd.concat(parts, ignore_index=True))
    return rows
