"""Master-data events of one business day: new promotions, price changes, renames.

Grain: a handful of rows per day, all stamped ``updated_at`` inside that day.
Promotions are announced 3-21 days ahead and price changes apply from the
next day, so the day's own sales never depend on the day's own events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from nightcast.demo_erp.catalog import VARIANTS, nice_price

PROMOS_PER_PRODUCT_YEAR = 3.0
PRICE_CHANGES_PER_PRODUCT_YEAR = 0.9
RENAMES_PER_PRODUCT_YEAR = 0.15
PROMO_DISCOUNTS = np.array([10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0])
CHAIN_WIDE_SHARE = 0.4


@dataclass
class CatalogEvents:
    promotions: pd.DataFrame  # new promotion rows
    prices: pd.DataFrame  # new price_history rows
    products: pd.DataFrame  # product_id, name, list_price, updated_at of changed products


def _at(day: date, seconds: np.ndarray) -> np.ndarray:
    return np.datetime64(day, "s") + seconds.astype("timedelta64[s]")


def _next_id(frame: pd.DataFrame, col: str) -> int:
    return int(frame[col].max()) + 1 if len(frame) else 1


def catalog_events(
    rng: np.random.Generator,
    products: pd.DataFrame,
    store_ids: np.ndarray,
    promotions: pd.DataFrame,
    prices: pd.DataFrame,
    day: date,
) -> CatalogEvents:
    """Events decided on ``day`` for products that exist in the ERP and still sell."""
    d = np.datetime64(day, "D")
    created = products["created_at"].to_numpy().astype("datetime64[D]")
    launched = products["launched_on"].to_numpy().astype("datetime64[D]")
    disc = products["discontinued_on"].to_numpy().astype("datetime64[D]")
    eligible = (
        (created <= d)
        & (launched <= d + np.timedelta64(30, "D"))
        & (np.isnat(disc) | (disc > d + np.timedelta64(21, "D")))
    )
    idx = np.flatnonzero(eligible)
    m = len(idx)
    pids = products["product_id"].to_numpy()

    n_promo = int(rng.poisson(m * PROMOS_PER_PRODUCT_YEAR / 365)) if m else 0
    p_idx = rng.choice(idx, n_promo) if n_promo else np.empty(0, dtype=np.int64)
    starts = d + rng.integers(3, 22, n_promo).astype("timedelta64[D]")
    ends = starts + (rng.integers(7, 15, n_promo) - 1).astype("timedelta64[D]")
    chain = rng.random(n_promo) < CHAIN_WIDE_SHARE
    promo_store = np.where(chain, np.nan, rng.choice(store_ids, n_promo).astype(np.float64))
    new_promos = pd.DataFrame(
        {
            "promo_id": np.arange(n_promo) + _next_id(promotions, "promo_id"),
            "product_id": pids[p_idx],
            "store_id": promo_store,
            "starts_on": starts.astype("datetime64[s]"),
            "ends_on": ends.astype("datetime64[s]"),
            "discount_pct": rng.choice(PROMO_DISCOUNTS, n_promo),
            "updated_at": _at(day, rng.integers(9 * 3600, 18 * 3600, n_promo)),
        }
    )

    n_price = min(int(rng.poisson(m * PRICE_CHANGES_PER_PRODUCT_YEAR / 365)) if m else 0, m)
    c_idx = np.sort(rng.choice(idx, n_price, replace=False)) if n_price else idx[:0]
    up = rng.random(n_price) < 0.65
    mag = rng.uniform(0.04, 0.18, n_price)
    current = products["list_price"].to_numpy(np.float64)
    new_price = nice_price(current[c_idx] * (1.0 + np.where(up, mag, -mag)))
    price_ts = _at(day, rng.integers(10 * 3600, 17 * 3600, n_price))
    new_prices = pd.DataFrame(
        {
            "price_id": np.arange(n_price) + _next_id(prices, "price_id"),
            "product_id": pids[c_idx],
            "valid_from": np.full(n_price, d + np.timedelta64(1, "D")).astype("datetime64[s]"),
            "price": new_price,
            "updated_at": price_ts,
        }
    )

    n_ren = min(int(rng.poisson(m * RENAMES_PER_PRODUCT_YEAR / 365)) if m else 0, m)
    r_idx = np.sort(rng.choice(idx, n_ren, replace=False)) if n_ren else idx[:0]
    variants = rng.choice(VARIANTS, n_ren)
    ren_ts = _at(day, rng.integers(10 * 3600, 17 * 3600, n_ren))

    names = products["name"].to_numpy(object).copy()
    list_price = current.copy()
    stamp = np.full(len(products), np.datetime64("NaT", "s"))
    list_price[c_idx] = new_price
    stamp[c_idx] = price_ts
    subs = products["subcategory"].to_numpy(object)
    for i, variant, ts in zip(r_idx, variants, ren_ts, strict=True):
        new_name = f"{names[i].split(' ')[0]} {subs[i]} {variant}"
        names[i] = new_name if new_name != names[i] else f"{new_name} New"
        stamp[i] = ts if np.isnat(stamp[i]) else max(stamp[i], ts)
    changed = np.flatnonzero(~np.isnat(stamp))
    product_updates = pd.DataFrame(
        {
            "product_id": pids[changed],
            "name": names[changed],
            "list_price": list_price[changed],
            "updated_at": stamp[changed],
        }
    )
    return CatalogEvents(new_promos, new_prices, product_updates)
