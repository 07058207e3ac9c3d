"""Master data of the demo ERP: products, stores, first prices, hidden demand traits.

Grain: one row per product / store; ``Latent`` holds one value per product
(or store, or product x store) that the ERP never shows but demand depends on.
Everything is drawn from ``numpy`` generators seeded by (seed, stream), so a
seed and a size reproduce the same catalogue on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from nightcast.demo_erp.sizes import DemoSize

# department -> category -> subcategories
HIERARCHY: dict[str, dict[str, list[str]]] = {
    "Grocery": {
        "Beverages": ["Juice", "Soda", "Water", "Coffee"],
        "Snacks": ["Chips", "Cookies", "Nuts"],
        "Pantry": ["Pasta", "Sauces", "Cereal"],
    },
    "Home": {"Kitchen": ["Cookware", "Utensils", "Storage"], "Textiles": ["Towels", "Bedding"]},
    "Garden": {"Outdoor": ["Plants", "Tools", "Furniture"], "BBQ": ["Grills", "Charcoal"]},
    "Toys": {"Games": ["Board Games", "Puzzles"], "Gifts": ["Gift Sets", "Candles", "Decorations"]},
    "Personal Care": {"Hair": ["Shampoo", "Conditioner"], "Skin": ["Sunscreen", "Moisturiser"]},
    "Electronics": {"Audio": ["Headphones", "Speakers"], "Accessories": ["Cables", "Chargers"]},
}
DEPT_WEIGHTS: dict[str, float] = {
    "Grocery": 0.34,
    "Home": 0.14,
    "Garden": 0.12,
    "Toys": 0.12,
    "Personal Care": 0.14,
    "Electronics": 0.14,
}
# Median list price per department (lognormal around it).
DEPT_PRICE: dict[str, float] = {
    "Grocery": 3.0,
    "Home": 15.0,
    "Garden": 20.0,
    "Toys": 18.0,
    "Personal Care": 6.0,
    "Electronics": 30.0,
}
BRANDS = ["Acme", "Northwind", "Contoso", "Fabrikam", "Globex", "Initech", "Vandelay", "Umbra"]
VARIANTS = ["Classic", "Plus", "Mini", "Large", "Organic", "Eco", "Pro", "Family", "Select"]
COUNTRIES = ["GB", "DE", "FR", "US"]
REGIONS: dict[str, list[str]] = {
    "GB": ["London", "Manchester", "Glasgow", "Bristol"],
    "DE": ["Berlin", "Munich", "Hamburg"],
    "FR": ["Paris", "Lyon", "Marseille"],
    "US": ["New York", "Chicago", "Austin"],
}
# Relative volume of a location kind: a warehouse serves trade customers.
KIND_SCALE: dict[str, float] = {"store": 1.0, "warehouse": 1.8, "online": 1.3}
SLOW_MOVER_SHARE = 0.4

STREAM_CATALOG = 1
STREAM_LATENT = 2


@dataclass(frozen=True)
class Latent:
    """Hidden demand traits (never written to the ERP)."""

    base: np.ndarray  # [P] mean units/day at a reference store
    slope: np.ndarray  # [P] log-trend per year
    elasticity: np.ndarray  # [P] own-price elasticity (positive number)
    dispersion: np.ndarray  # [P] negative-binomial size; small = bursty
    store_scale: np.ndarray  # [S] store volume multiplier
    affinity: np.ndarray  # [P, S] how well an item sells at a store


def stream(seed: int, *key: int) -> np.random.Generator:
    """An independent generator for (seed, key...): adding draws elsewhere never shifts it."""
    return np.random.default_rng([seed, *key])


def store_kinds(n_stores: int) -> list[str]:
    """Mostly shops; the last location is the web shop, the one before a warehouse."""
    kinds = ["store"] * n_stores
    kinds[-1] = "online"
    if n_stores >= 4:
        kinds[-2] = "warehouse"
    return kinds


def latent_params(seed: int, size: DemoSize, kinds: list[str]) -> Latent:
    """Hidden traits for ``size``; derived from the seed alone, so ``advance`` can rebuild them."""
    rng = stream(seed, STREAM_LATENT)
    p, s = size.n_products, size.n_stores
    slow = rng.random(p) < SLOW_MOVER_SHARE
    base = np.where(slow, rng.uniform(0.03, 0.4, p), rng.lognormal(np.log(2.5), 0.8, p))
    slope = rng.normal(0.0, 0.2, p)
    elasticity = rng.uniform(0.8, 2.5, p)
    dispersion = np.where(slow, rng.uniform(0.3, 1.0, p), rng.uniform(2.0, 10.0, p))
    kind_scale = np.array([KIND_SCALE[k] for k in kinds])
    store_scale = kind_scale * rng.lognormal(0.0, 0.25, s)
    affinity = rng.lognormal(0.0, 0.3, (p, s))
    return Latent(base, slope, elasticity, dispersion, store_scale, affinity)


def _day(d: date) -> np.datetime64:
    return np.datetime64(d, "D")


def _at(days: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[s]") + seconds.astype("timedelta64[s]")


def build_products(seed: int, size: DemoSize, start: date, end: date) -> pd.DataFrame:
    """The product master at creation (grain: product_id), before any price change."""
    rng = stream(seed, STREAM_CATALOG, 1)
    n = size.n_products
    depts = list(DEPT_WEIGHTS)
    dept = rng.choice(depts, n, p=np.array(list(DEPT_WEIGHTS.values())))
    cat = np.empty(n, dtype=object)
    sub = np.empty(n, dtype=object)
    for d in depts:
        idx = np.flatnonzero(dept == d)
        cats = list(HIERARCHY[d])
        chosen = rng.choice(cats, len(idx))
        cat[idx] = chosen
        for i, c in zip(idx, chosen, strict=True):
            sub[i] = HIERARCHY[d][c][int(rng.integers(len(HIERARCHY[d][c])))]
    brand = rng.choice(BRANDS, n)
    variant = rng.choice(VARIANTS, n)
    median = np.array([DEPT_PRICE[d] for d in dept])
    price = nice_price(median * rng.lognormal(0.0, 0.5, n))

    span = max((end - start).days, 1)
    s0 = _day(start)
    launched = s0 - rng.integers(30, 1500, n).astype("timedelta64[D]")
    # Launches inside the history (no sales before them); at least one when possible.
    new = rng.random(n) < 0.12
    # Discontinued inside the history (no sales after); never a freshly launched item.
    gone = rng.random(n) < 0.08
    if n >= 10:
        new[n - 1], gone[n - 1] = True, False
        new[n - 2], gone[n - 2] = False, True
    gone &= ~new
    offsets = (span * rng.uniform(0.15, 0.9, n)).astype(int)
    launched = np.where(new, s0 + offsets.astype("timedelta64[D]"), launched)
    stop = s0 + (span * rng.uniform(0.3, 0.95, n)).astype(int).astype("timedelta64[D]")
    discontinued = np.where(gone, stop, np.datetime64("NaT", "D"))

    created = _at(
        launched - rng.integers(7, 60, n).astype("timedelta64[D]"),
        rng.integers(8 * 3600, 18 * 3600, n),
    )
    ids = np.arange(1, n + 1)
    return pd.DataFrame(
        {
            "product_id": ids,
            "sku": [f"SKU-{i:06d}" for i in ids],
            "name": [f"{b} {s} {v}" for b, s, v in zip(brand, sub, variant, strict=True)],
            "department": dept.astype(object),
            "category": cat,
            "subcategory": sub,
            "list_price": price,
            "launched_on": launched.astype("datetime64[s]"),
            "discontinued_on": discontinued.astype("datetime64[s]"),
            "created_at": created,
            "updated_at": created,
        }
    )


def nice_price(raw: np.ndarray) -> np.ndarray:
    """Shelf prices ending in 9 (2.49, 13.99), never below 0.49."""
    return np.maximum(np.round(np.round(raw * 10.0) / 10.0 - 0.01, 2), 0.49)


def build_stores(seed: int, size: DemoSize, start: date, end: date) -> pd.DataFrame:
    """The store master (grain: store_id); the second location opens inside the history."""
    rng = stream(seed, STREAM_CATALOG, 2)
    n = size.n_stores
    kinds = store_kinds(n)
    countries, regions, names = [], [], []
    for i, kind in enumerate(kinds):
        country = "GB" if kind == "online" else COUNTRIES[i % len(COUNTRIES)]
        region = REGIONS[country][(i // len(COUNTRIES)) % len(REGIONS[country])]
        countries.append(country)
        regions.append(region)
        names.append(f"Webshop {country}" if kind == "online" else f"{region} {kind.title()}")
    s0 = _day(start)
    opened = s0 - rng.integers(200, 3000, n).astype("timedelta64[D]")
    if n >= 3:
        opened[1] = s0 + np.timedelta64(int(max((end - start).days, 1) * 0.3), "D")
    ids = np.arange(1, n + 1)
    return pd.DataFrame(
        {
            "store_id": ids,
            "code": [f"ST{i:03d}" for i in ids],
            "name": names,
            "kind": kinds,
            "country": countries,
            "region": regions,
            "opened_on": opened.astype("datetime64[s]"),
            "updated_at": _at(opened - np.timedelta64(30, "D"), np.full(n, 9 * 3600)),
        }
    )


def initial_prices(products: pd.DataFrame) -> pd.DataFrame:
    """One price_history row per product: its launch price, valid from launch."""
    n = len(products)
    return pd.DataFrame(
        {
            "price_id": np.arange(1, n + 1),
            "product_id": products["product_id"].to_numpy(),
            "valid_from": products["launched_on"].to_numpy(),
            "price": products["list_price"].to_numpy(),
            "updated_at": products["created_at"].to_numpy(),
        }
    )
