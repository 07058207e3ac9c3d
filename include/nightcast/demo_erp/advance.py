"""Advance an existing demo ERP by one business day, in one transaction.

Grain: one call = one business day D. Inserts D's orders, lines, stock-outs,
promotions and price changes, and updates older rows (late edits, product
changes); every written row gets ``updated_at`` inside D, ``created_at`` is
never touched. ``catch_up`` repeats it up to a given day, one transaction a day.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from time import monotonic
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Date, DateTime, Integer, Select, Table, select
from sqlalchemy.engine import Connection, make_url

from nightcast.demo_erp import schema as sch
from nightcast.demo_erp.catalog import latent_params
from nightcast.demo_erp.day import EDIT_WINDOW_DAYS, LINE_COLS, Context, ErpState, simulate_day
from nightcast.demo_erp.simulator import _engine
from nightcast.demo_erp.sizes import get_size

log = logging.getLogger("nightcast.demo_erp")


def _frame(conn: Connection, table: Table, stmt: Select[Any], extra: list[str]) -> pd.DataFrame:
    """Rows of ``stmt`` typed the way the simulator holds them in memory."""
    cols = [c.name for c in table.columns] + extra
    rows = conn.execute(stmt).all()
    data: dict[str, Any] = {}
    for i, name in enumerate(cols):
        vals = [r[i] for r in rows]
        ctype = table.c[name].type if name in table.c else Integer()
        if isinstance(ctype, DateTime | Date):
            data[name] = np.array(vals, dtype="datetime64[s]")
        elif isinstance(ctype, Integer):
            if any(v is None for v in vals):
                data[name] = np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
            else:
                data[name] = np.array(vals, dtype=np.int64)
        elif vals and isinstance(vals[0], float | int):
            data[name] = np.array(vals, dtype=np.float64)
        else:
            data[name] = np.array(vals, dtype=object)
    return pd.DataFrame(data, columns=cols)


def _all(conn: Connection, table: Table) -> pd.DataFrame:
    pk = next(iter(table.primary_key.columns))
    return _frame(conn, table, select(*table.columns).order_by(pk), [])


def load_state(conn: Connection, ctx: Context, day: date) -> ErpState:
    """The slice of the ERP that day ``day`` depends on."""
    lo = datetime.combine(day - timedelta(days=EDIT_WINDOW_DAYS), time())
    hi = datetime.combine(day, time())
    o, ln = sch.sales_order, sch.sales_order_line
    orders = _frame(
        conn,
        o,
        select(*o.columns).where(o.c.created_at >= lo, o.c.created_at < hi).order_by(o.c.order_id),
        [],
    )
    lines = _frame(
        conn,
        ln,
        select(*ln.columns, o.c.store_id)
        .join(o, o.c.order_id == ln.c.order_id)
        .where(ln.c.created_at >= lo, ln.c.created_at < hi)
        .order_by(ln.c.line_id),
        ["store_id"],
    )[LINE_COLS]
    products, stores = _all(conn, sch.product), _all(conn, sch.store)
    so = sch.stock_out
    prev = conn.execute(
        select(so.c.product_id, so.c.store_id).where(so.c.day == day - timedelta(days=1))
    ).all()
    flags = np.zeros((len(products), len(stores)), dtype=bool)
    if prev:
        arr = np.array(prev, dtype=np.int64)
        flags[
            np.searchsorted(products["product_id"].to_numpy(), arr[:, 0]),
            np.searchsorted(stores["store_id"].to_numpy(), arr[:, 1]),
        ] = True
    return ErpState(
        products=products,
        stores=stores,
        promotions=_all(conn, sch.promotion),
        prices=_all(conn, sch.price_history),
        orders=orders,
        lines=lines,
        stock_prev=flags,
        next_order_id=sch.max_id(conn, o) + 1,
        next_line_id=sch.max_id(conn, ln) + 1,
        next_stock_out_id=sch.max_id(conn, so) + 1,
    )


def last_simulated_day(url: str) -> date | None:
    """The last business day the ERP holds, or None when there is no demo ERP at ``url``."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            value = sch.read_meta(conn).get("last_simulated_day")
    finally:
        engine.dispose()
    return date.fromisoformat(value) if value else None


def advance(url: str, day: date, seed: int | None = None) -> dict[str, int]:
    """Simulate business day ``day`` (the day after the last one); rows written per table.

    Counts are inserted + updated rows. ``seed`` defaults to the stored one; a
    different seed also changes the hidden demand traits, so keep the default
    unless that is the point.
    """
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            meta = sch.read_meta(conn)
            if "last_simulated_day" not in meta:
                raise ValueError(f"no demo ERP at {engine.url!r}: run generate() first")
            last = date.fromisoformat(meta["last_simulated_day"])
            if day <= last:
                raise ValueError(f"day {day} was already simulated (last simulated day is {last})")
            if day != last + timedelta(days=1):
                raise ValueError(
                    f"cannot skip days: last simulated day is {last}, "
                    f"so the next one to advance is {last + timedelta(days=1)}, not {day}"
                )
            size = get_size(meta["size"])
            use_seed = int(meta["seed"]) if seed is None else seed
            stores_kinds = [
                str(k)
                for (k,) in conn.execute(select(sch.store.c.kind).order_by(sch.store.c.store_id))
            ]
            ctx = Context(
                use_seed,
                size,
                date.fromisoformat(meta["first_simulated_day"]),
                latent_params(use_seed, size, stores_kinds),
            )
            st = load_state(conn, ctx, day)
            delta = simulate_day(ctx, st, day)
            lines = delta.lines.drop(columns=["store_id"])
            counts = {
                "sales_order": sch.insert_frame(conn, sch.sales_order, delta.orders)
                + sch.update_frame(conn, sch.sales_order, "order_id", delta.order_updates),
                "sales_order_line": sch.insert_frame(conn, sch.sales_order_line, lines)
                + sch.update_frame(conn, sch.sales_order_line, "line_id", delta.line_updates),
                "stock_out": sch.insert_frame(conn, sch.stock_out, delta.stock_outs),
                "promotion": sch.insert_frame(conn, sch.promotion, delta.promotions),
                "price_history": sch.insert_frame(conn, sch.price_history, delta.prices),
                "product": sch.update_frame(conn, sch.product, "product_id", delta.product_updates),
            }
            sch.write_meta(conn, {"last_simulated_day": day.isoformat()})
    finally:
        engine.dispose()
    log.info(
        "demo ERP advanced to %s: %d new orders, %d order edits, %d new lines, %d line edits",
        day,
        len(delta.orders),
        len(delta.order_updates),
        len(delta.lines),
        len(delta.line_updates),
    )
    return counts


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def catch_up(url: str, day: date, progress_every_s: float = 15.0) -> int:
    """Simulate every business day after the last one up to ``day``; days simulated.

    Idempotent: an ERP that already holds ``day`` (a rerun, or a backfill of an
    older night) is left as it is, never moved back. Each day is ``advance``'s own
    transaction, so an interrupted catch-up resumes where it stopped, and the ERP
    ends as if it had been advanced night by night. Long gaps log progress (days,
    elapsed, rate, time left) every ``progress_every_s`` seconds.
    """
    first = last_simulated_day(url)
    if first is None:
        raise ValueError(f"no demo ERP at {make_url(url)!r}: run generate() first")
    total = (day - first).days
    if total <= 0:
        return 0
    log.info(
        "demo ERP holds business days up to %s: simulating %d day(s) up to %s "
        "(each day commits; an interrupted catch-up resumes on the retry)",
        first,
        total,
        day,
    )
    started = next_report = monotonic()
    next_report += progress_every_s
    last = first
    while last < day:
        try:
            advance(url, last + timedelta(days=1))
            last += timedelta(days=1)
        except ValueError:
            # Another process (a concurrent run's extract) may have simulated it meanwhile.
            now = last_simulated_day(url)
            if now is None or now <= last:
                raise
            last = now
        if monotonic() >= next_report and last < day:
            elapsed = monotonic() - started
            done = (last - first).days
            rate = done / elapsed
            log.info(
                "demo ERP catch-up: %d/%d days (up to %s), %s elapsed, %.1f days/s, about %s left",
                done,
                total,
                last,
                _duration(elapsed),
                rate,
                _duration((day - last).days / rate),
            )
            next_report = monotonic() + progress_every_s
    log.info(
        "demo ERP caught up: %d day(s) simulated up to %s in %s",
        total,
        day,
        _duration(monotonic() - started),
    )
    return total
