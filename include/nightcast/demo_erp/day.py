"""One simulated business day: sales, late edits to recent orders, master-data events.

``simulate_day`` is pure: it reads an ``ErpState`` (master data, the last
``EDIT_WINDOW_DAYS`` days of orders and lines, yesterday's stock-outs) and
returns a ``DayDelta`` whose every row has ``updated_at`` inside the day.
``generate`` applies deltas in memory; ``advance`` writes one to the database.
Randomness comes from generators keyed by (seed, day, step), so a day replays
identically from the same state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from nightcast.demo_erp import demand
from nightcast.demo_erp.catalog import Latent, stream
from nightcast.demo_erp.events import catalog_events
from nightcast.demo_erp.sizes import DemoSize

STREAM_DAY = 3
EDIT_WINDOW_DAYS = 14
LINES_PER_ORDER_P = np.array([0.3, 0.25, 0.2, 0.15, 0.1])  # 1..5 lines
CANCEL_OPEN_P = 0.04  # an online order not yet shipped
CANCEL_SHIPPED_P = 0.0005  # per day, a voided shop sale
CORRECT_P = 0.001  # per line per day: quantity keyed wrongly
RETURN_P = 0.002  # per line per day: customer brings some units back

ORDER_COLS = ["order_id", "order_no", "store_id", "order_ts", "status", "created_at", "updated_at"]
LINE_COLS = [
    "line_id",
    "order_id",
    "line_no",
    "product_id",
    "qty",
    "unit_price",
    "discount_pct",
    "line_status",
    "created_at",
    "updated_at",
    "store_id",  # from the order header; not a column of sales_order_line
]


@dataclass(frozen=True)
class Context:
    seed: int
    size: DemoSize
    origin: date  # first simulated day; trends are measured from it
    latent: Latent


@dataclass
class ErpState:
    products: pd.DataFrame
    stores: pd.DataFrame
    promotions: pd.DataFrame
    prices: pd.DataFrame
    orders: pd.DataFrame  # orders created in the edit window (ORDER_COLS)
    lines: pd.DataFrame  # their lines (LINE_COLS)
    stock_prev: np.ndarray  # [P, S] out of stock yesterday
    next_order_id: int
    next_line_id: int
    next_stock_out_id: int


@dataclass
class DayDelta:
    orders: pd.DataFrame
    lines: pd.DataFrame
    order_updates: pd.DataFrame  # order_id, status, updated_at
    line_updates: pd.DataFrame  # line_id, qty, line_status, updated_at
    stock_outs: pd.DataFrame
    promotions: pd.DataFrame
    prices: pd.DataFrame
    product_updates: pd.DataFrame
    stock_out_flags: np.ndarray


def _days(frame: pd.DataFrame, col: str) -> np.ndarray:
    return frame[col].to_numpy().astype("datetime64[D]")


def _at(day: date, seconds: np.ndarray) -> np.ndarray:
    return np.datetime64(day, "s") + seconds.astype("timedelta64[s]")


def prices_on(prices: pd.DataFrame, product_ids: np.ndarray, d: np.datetime64) -> np.ndarray:
    """[P] price valid on ``d`` (latest valid_from <= d); NaN before the first one."""
    out = np.full(len(product_ids), np.nan)
    vf = _days(prices, "valid_from")
    keep = vf <= d
    pid = prices["product_id"].to_numpy()[keep]
    order = np.lexsort((prices["price_id"].to_numpy()[keep], vf[keep], pid))
    pid = pid[order]
    last = np.append(pid[1:] != pid[:-1], True) if len(pid) else np.zeros(0, dtype=bool)
    out[np.searchsorted(product_ids, pid[last])] = prices["price"].to_numpy()[keep][order][last]
    return out


def reference_prices(prices: pd.DataFrame, product_ids: np.ndarray) -> np.ndarray:
    """[P] launch price (first price_history row), the anchor of price elasticity."""
    pid = prices["product_id"].to_numpy()
    order = np.lexsort((prices["price_id"].to_numpy(), _days(prices, "valid_from"), pid))
    pid = pid[order]
    first = np.insert(pid[1:] != pid[:-1], 0, True) if len(pid) else np.zeros(0, dtype=bool)
    out = np.full(len(product_ids), np.nan)
    out[np.searchsorted(product_ids, pid[first])] = prices["price"].to_numpy()[order][first]
    return out


def promo_discounts(
    promos: pd.DataFrame, product_ids: np.ndarray, store_ids: np.ndarray, d: np.datetime64
) -> np.ndarray:
    """[P, S] best promotion discount (percent) running on ``d``."""
    out = np.zeros((len(product_ids), len(store_ids)))
    live = (_days(promos, "starts_on") <= d) & (_days(promos, "ends_on") >= d)
    p = np.searchsorted(product_ids, promos["product_id"].to_numpy()[live])
    s = promos["store_id"].to_numpy(np.float64)[live]
    pct = promos["discount_pct"].to_numpy(np.float64)[live]
    chain = np.isnan(s)
    np.maximum.at(out, p[chain], np.repeat(pct[chain][:, None], len(store_ids), axis=1))
    sidx = np.searchsorted(store_ids, s[~chain].astype(np.int64))
    np.maximum.at(out, (p[~chain], sidx), pct[~chain])
    return out


def _order_seconds(rng: np.random.Generator, kinds: np.ndarray) -> np.ndarray:
    """Time of day per order: shops in opening hours, web orders peak in the evening."""
    n = len(kinds)
    shop = np.clip(rng.normal(14.5, 3.0, n), 8.0, 20.95)
    depot = rng.uniform(6.0, 17.0, n)
    web = np.mod(rng.normal(20.0, 4.0, n), 24.0)
    hours = np.where(kinds == "online", web, np.where(kinds == "warehouse", depot, shop))
    return np.minimum((hours * 3600).astype(np.int64), 86_399)


def late_edits(
    rng: np.random.Generator, orders: pd.DataFrame, lines: pd.DataFrame, day: date
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Edits on ``day`` to orders created in the window: cancel, ship, correct, return.

    Returns (order updates, line updates, returned lines to book on ``day``).
    """
    n_o, n_l = len(orders), len(lines)
    status = orders["status"].to_numpy(object).copy()
    lstatus = lines["line_status"].to_numpy(object).copy()
    qty = lines["qty"].to_numpy(np.float64).copy()
    o_sec = np.full(n_o, -1, dtype=np.int64)
    l_sec = np.full(n_l, -1, dtype=np.int64)
    lpos = np.searchsorted(orders["order_id"].to_numpy(), lines["order_id"].to_numpy())

    is_return = np.zeros(n_o, dtype=bool)
    is_return[lpos[lstatus == "returned"]] = True
    u = rng.random(n_o)
    cancel = ((status == "open") & (u < CANCEL_OPEN_P)) | (
        (status == "shipped") & ~is_return & (u < CANCEL_SHIPPED_P)
    )
    o_sec = np.where(cancel, rng.integers(7 * 3600, 21 * 3600, n_o), o_sec)
    status[cancel] = "cancelled"
    ship = status == "open"
    o_sec = np.where(ship, rng.integers(6 * 3600, 12 * 3600, n_o), o_sec)
    status[ship] = "shipped"
    follow = (o_sec[lpos] >= 0) & (lstatus != "cancelled") & (lstatus != "returned")
    lstatus[follow] = status[lpos][follow]
    l_sec[follow] = o_sec[lpos][follow]

    sellable = np.isin(lstatus, ["open", "shipped"]) & (qty > 0)
    correct = sellable & (rng.random(n_l) < CORRECT_P)
    step = np.where((qty > 1) & (rng.random(n_l) < 0.6), -1.0, 1.0)
    qty[correct] += step[correct]
    l_sec = np.where(correct, np.maximum(l_sec, rng.integers(8 * 3600, 20 * 3600, n_l)), l_sec)

    ret = (lstatus == "shipped") & (qty > 0) & (rng.random(n_l) < RETURN_P)
    ret_units = np.minimum(qty, rng.geometric(0.6, n_l).astype(np.float64))
    returns = pd.DataFrame(
        {
            "product_id": lines["product_id"].to_numpy()[ret],
            "store_id": lines["store_id"].to_numpy()[ret],
            "qty": -ret_units[ret],
            "unit_price": lines["unit_price"].to_numpy()[ret],
            "discount_pct": lines["discount_pct"].to_numpy()[ret],
        }
    )
    o_chg, l_chg = o_sec >= 0, l_sec >= 0
    order_updates = pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy()[o_chg],
            "status": status[o_chg],
            "updated_at": _at(day, o_sec[o_chg]),
        }
    )
    line_updates = pd.DataFrame(
        {
            "line_id": lines["line_id"].to_numpy()[l_chg],
            "qty": qty[l_chg],
            "line_status": lstatus[l_chg],
            "updated_at": _at(day, l_sec[l_chg]),
        }
    )
    return order_updates, line_updates, returns


def _expected(ctx: Context, st: ErpState, day: date, active: np.ndarray) -> np.ndarray:
    """[P, S] mean units: the product of every demand effect."""
    lat = ctx.latent
    d = np.datetime64(day, "D")
    pids = st.products["product_id"].to_numpy()
    kinds = st.stores["kind"].tolist()
    ref = reference_prices(st.prices, pids)
    price = prices_on(st.prices, pids, d)
    price = np.where(np.isnan(price), ref, price)
    price_effect = (price / ref) ** (-lat.elasticity)
    years = (day - ctx.origin).days / 365.0
    trend = np.exp(np.clip(lat.slope * years, -1.0, 1.0))
    age = (d - _days(st.products, "launched_on")).astype(np.int64) + 1
    ramp = np.clip(age / demand.LAUNCH_RAMP_DAYS, 0.2, 1.0)
    per_product = (
        lat.base
        * demand.yearly_factor(st.products["department"].to_numpy(object), day)
        * trend
        * ramp
        * price_effect
    )
    per_store = (
        lat.store_scale
        * demand.weekly_factor(kinds, day)
        * demand.holiday_factor(st.stores["country"].tolist(), kinds, day)
    )
    disc = promo_discounts(st.promotions, pids, st.stores["store_id"].to_numpy(), d)
    mean = per_product[:, None] * per_store[None, :] * lat.affinity * demand.promo_uplift(disc)
    return np.where(active, mean, 0.0)


def simulate_day(ctx: Context, st: ErpState, day: date) -> DayDelta:
    """Everything the ERP records on business ``day``; ``st`` is left untouched."""
    seed, ordinal = ctx.seed, day.toordinal()
    d = np.datetime64(day, "D")
    products, stores = st.products, st.stores
    pids = products["product_id"].to_numpy()
    sids = stores["store_id"].to_numpy()
    kinds = stores["kind"].to_numpy(object)
    disc_on = _days(products, "discontinued_on")
    alive = (_days(products, "launched_on") <= d) & (np.isnat(disc_on) | (d < disc_on))
    active = alive[:, None] & (_days(stores, "opened_on") <= d)[None, :]

    out = demand.stock_outs(
        stream(seed, STREAM_DAY, ordinal, 1), st.stock_prev, active, kinds.tolist()
    )
    mean = np.where(out, 0.0, _expected(ctx, st, day, active))
    units = demand.draw_units(stream(seed, STREAM_DAY, ordinal, 2), mean, ctx.latent.dispersion)
    price = prices_on(st.prices, pids, d)
    disc = promo_discounts(st.promotions, pids, sids, d)

    # Sales lines, grouped per store into orders of 1-5 lines.
    rng = stream(seed, STREAM_DAY, ordinal, 3)
    pi, si = np.nonzero(units > 0)
    order = np.lexsort((rng.random(len(pi)), si))
    pi, si = pi[order], si[order]
    n = len(pi)
    brk = np.zeros(n, dtype=bool)
    ends = np.cumsum(rng.choice(np.arange(1, 6), n, p=LINES_PER_ORDER_P))
    brk[ends[ends < n]] = True
    if n:
        brk[0] = True
        brk[1:] |= si[1:] != si[:-1]
    seg = np.cumsum(brk) - 1
    sale_store = si[brk]

    order_updates, line_updates, returns = late_edits(
        stream(seed, STREAM_DAY, ordinal, 4), st.orders, st.lines, day
    )
    n_sale, n_ret = len(sale_store), len(returns)
    o_store_idx = np.concatenate(
        [sale_store, np.searchsorted(sids, returns["store_id"].to_numpy())]
    )
    o_kind = kinds[o_store_idx] if len(o_store_idx) else np.empty(0, dtype=object)
    secs = _order_seconds(stream(seed, STREAM_DAY, ordinal, 5), o_kind)
    o_rank = np.empty(len(secs), dtype=np.int64)
    o_rank[np.lexsort((np.arange(len(secs)), secs))] = np.arange(len(secs))
    o_ids = st.next_order_id + o_rank
    o_status = np.where((o_kind == "online") & (np.arange(len(secs)) < n_sale), "open", "shipped")
    o_ts = _at(day, secs)
    new_orders = pd.DataFrame(
        {
            "order_id": o_ids,
            "order_no": [f"SO-{i:07d}" for i in o_ids],
            "store_id": sids[o_store_idx],
            "order_ts": o_ts,
            "status": o_status.astype(object),
            "created_at": o_ts,
            "updated_at": o_ts,
        }
    ).sort_values("order_id", ignore_index=True)

    l_local = np.concatenate([seg, n_sale + np.arange(n_ret)]).astype(np.int64)
    l_order = o_ids[l_local] if len(l_local) else np.empty(0, dtype=np.int64)
    sale_price = np.round(price[pi] * (1.0 - disc[pi, si] / 100.0), 2)
    lines = pd.DataFrame(
        {
            "order_id": l_order,
            "product_id": np.concatenate([pids[pi], returns["product_id"].to_numpy()]),
            "qty": np.concatenate([units[pi, si], returns["qty"].to_numpy()]),
            "unit_price": np.concatenate([sale_price, returns["unit_price"].to_numpy()]),
            "discount_pct": np.concatenate([disc[pi, si], returns["discount_pct"].to_numpy()]),
            "line_status": np.concatenate(
                [np.where(o_status[seg] == "open", "open", "shipped"), np.full(n_ret, "returned")]
            ).astype(object),
            "created_at": o_ts[l_local] if len(l_local) else o_ts[:0],
            "store_id": sids[o_store_idx[l_local]] if len(l_local) else sids[:0],
        }
    )
    lines = lines.iloc[np.lexsort((np.arange(len(lines)), l_order))].reset_index(drop=True)
    lines["updated_at"] = lines["created_at"]
    first = np.insert(
        lines["order_id"].to_numpy()[1:] != lines["order_id"].to_numpy()[:-1], 0, True
    )
    starts = np.maximum.accumulate(np.where(first, np.arange(len(lines)), 0))
    lines["line_no"] = np.arange(len(lines)) - starts + 1
    lines["line_id"] = st.next_line_id + np.arange(len(lines))

    so_p, so_s = np.nonzero(out)
    stock = pd.DataFrame(
        {
            "stock_out_id": st.next_stock_out_id + np.arange(len(so_p)),
            "product_id": pids[so_p],
            "store_id": sids[so_s],
            "day": np.full(len(so_p), d).astype("datetime64[s]"),
            # Booked when the shelf is found empty at the morning count.
            "updated_at": _at(day, np.full(len(so_p), 7 * 3600)),
        }
    )
    events = catalog_events(
        stream(seed, STREAM_DAY, ordinal, 6), products, sids, st.promotions, st.prices, day
    )
    return DayDelta(
        orders=new_orders,
        lines=lines[LINE_COLS],
        order_updates=order_updates,
        line_updates=line_updates,
        stock_outs=stock,
        promotions=events.promotions,
        prices=events.prices,
        product_updates=events.products,
        stock_out_flags=out,
    )
