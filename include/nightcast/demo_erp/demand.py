"""Expected demand and its random draw for one business day.

Grain: arrays of shape [P, S] = product x store for a single day. The mean is
a product of multiplicative effects (weekly, yearly, holiday, promotion,
price, trend, launch ramp); units are negative-binomial around it.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays
import numpy as np

# Day-of-week multipliers, Monday..Sunday, per location kind. Shops peak on
# Saturday, trade warehouses barely sell at weekends, the web shop is flat.
WEEKLY: dict[str, tuple[float, ...]] = {
    "store": (0.85, 0.85, 0.9, 0.95, 1.1, 1.45, 1.2),
    "warehouse": (1.2, 1.15, 1.15, 1.15, 1.1, 0.35, 0.2),
    "online": (1.15, 1.05, 1.0, 1.0, 0.95, 0.9, 1.1),
}
# Yearly bump per department: (peak day of year, amplitude, width in days).
YEARLY: dict[str, tuple[int, float, float]] = {
    "Grocery": (355, 0.25, 20.0),
    "Home": (340, 0.5, 30.0),
    "Garden": (175, 1.5, 45.0),
    "Toys": (350, 2.0, 25.0),
    "Personal Care": (190, 0.4, 50.0),
    "Electronics": (340, 1.2, 25.0),
}
# Physical locations close on public holidays; the web shop just slows down.
HOLIDAY_OPEN_FACTOR: dict[str, float] = {"store": 0.0, "warehouse": 0.0, "online": 0.7}
PRE_HOLIDAY_FACTOR = (1.35, 1.15)  # one and two days before a closure
PROMO_UPLIFT_PER_PCT = 0.035  # 20 % off -> x1.7
LAUNCH_RAMP_DAYS = 28
# Stock-outs: daily chance a run starts, and that an ongoing run continues.
STOCKOUT_START: dict[str, float] = {"store": 1 / 150, "warehouse": 1 / 250, "online": 1 / 400}
STOCKOUT_CONTINUE = 0.75


@lru_cache(maxsize=256)
def holiday_days(country: str, year: int) -> frozenset[date]:
    """Public holidays of ``country`` in ``year``."""
    return frozenset(holidays.country_holidays(country, years=year).keys())


def is_holiday(country: str, day: date) -> bool:
    return day in holiday_days(country, day.year)


def holiday_factor(countries: list[str], kinds: list[str], day: date) -> np.ndarray:
    """[S] multiplier: closed (or slow) on a holiday, busier on the two days before."""
    out = np.ones(len(countries))
    for j, (country, kind) in enumerate(zip(countries, kinds, strict=True)):
        if is_holiday(country, day):
            out[j] = HOLIDAY_OPEN_FACTOR[kind]
        elif kind == "store" and is_holiday(country, day + timedelta(days=1)):
            out[j] = PRE_HOLIDAY_FACTOR[0]
        elif kind == "store" and is_holiday(country, day + timedelta(days=2)):
            out[j] = PRE_HOLIDAY_FACTOR[1]
    return out


def weekly_factor(kinds: list[str], day: date) -> np.ndarray:
    """[S] day-of-week multiplier."""
    return np.array([WEEKLY[k][day.weekday()] for k in kinds])


def yearly_factor(departments: np.ndarray, day: date) -> np.ndarray:
    """[P] seasonal multiplier from a circular Gaussian bump around each department's peak."""
    doy = day.timetuple().tm_yday
    out = np.ones(len(departments))
    for dept, (peak, amp, width) in YEARLY.items():
        dist = abs(doy - peak)
        dist = min(dist, 365 - dist)
        out[departments == dept] = 1.0 + amp * np.exp(-0.5 * (dist / width) ** 2)
    return out


def promo_uplift(discount_pct: np.ndarray) -> np.ndarray:
    """Uplift roughly proportional to the discount."""
    return 1.0 + PROMO_UPLIFT_PER_PCT * discount_pct


def stock_outs(
    rng: np.random.Generator, prev: np.ndarray, active: np.ndarray, kinds: list[str]
) -> np.ndarray:
    """[P, S] out-of-stock flags: runs start at random and last a geometric number of days."""
    u = rng.random(prev.shape)
    start = np.array([STOCKOUT_START[k] for k in kinds])[None, :]
    return np.where(prev, u < STOCKOUT_CONTINUE, u < start) & active


def draw_units(rng: np.random.Generator, mean: np.ndarray, dispersion: np.ndarray) -> np.ndarray:
    """[P, S] negative-binomial units with the given mean and per-product size."""
    k = np.broadcast_to(dispersion[:, None], mean.shape)
    return rng.negative_binomial(k, k / (k + mean)).astype(np.float64)
