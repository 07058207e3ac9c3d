"""Demo ERP simulator: determinism, schema, demand realism and one-day advances."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, inspect, select

from nightcast.demo_erp import (
    SIZES,
    ErpExistsError,
    advance,
    generate,
    last_simulated_day,
)
from nightcast.demo_erp.demand import WEEKLY, is_holiday
from nightcast.demo_erp.schema import DATA_TABLES
from nightcast.demo_erp.simulator import build_history

TINY_START, TINY_END = date(2024, 1, 1), date(2024, 4, 29)
SMALL_START, SMALL_END = date(2024, 3, 1), date(2024, 8, 27)


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every data table, ordered by primary key."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            out = {}
            for t in DATA_TABLES:
                pk = next(iter(t.primary_key.columns))
                out[t.name] = [tuple(r) for r in conn.execute(select(t).order_by(pk)).all()]
            return out
    finally:
        engine.dispose()


def _read(url: str, sql: str) -> pd.DataFrame:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql_query(sql, conn)
    finally:
        engine.dispose()


def _daily_demand(url: str, start: date, end: date) -> pd.DataFrame:
    """Full panel (product, store, day) of units sold, zeros included, while sellable."""
    sold = _read(
        url,
        """
        select l.product_id, o.store_id, date(o.order_ts) as day, sum(l.qty) as units
        from sales_order_line l join sales_order o on o.order_id = l.order_id
        where l.qty > 0 and l.line_status in ('open', 'shipped')
        group by 1, 2, 3
        """,
    )
    products = _read(url, "select product_id, launched_on, discontinued_on from product")
    stores = _read(url, "select store_id, kind, country, opened_on from store")
    days = pd.DataFrame({"day": pd.date_range(start, end).strftime("%Y-%m-%d")})
    panel = products.merge(stores, how="cross").merge(days, how="cross")
    disc = panel["discontinued_on"].fillna("9999-12-31")
    live = (
        (panel["launched_on"] <= panel["day"])
        & (panel["day"] < disc)
        & (panel["opened_on"] <= panel["day"])
    )
    panel = panel[live].merge(sold, on=["product_id", "store_id", "day"], how="left")
    panel["units"] = panel["units"].fillna(0.0)
    return panel


@pytest.fixture(scope="module")
def tiny_erp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "erp.sqlite"
    generate(_url(path), "tiny", TINY_START, TINY_END, seed=7)
    return path


@pytest.fixture(scope="module")
def small_erp(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("small") / "erp.sqlite"
    generate(_url(path), "small", SMALL_START, SMALL_END, seed=3)
    return _url(path)


def test_sizes_cover_tiny_to_m5() -> None:
    assert SIZES["tiny"].n_series < SIZES["default"].n_series < SIZES["m5"].n_series
    assert (SIZES["m5"].n_products, SIZES["m5"].n_stores) == (3_000, 10)


def test_same_seed_is_identical_and_another_seed_differs(tmp_path: Path) -> None:
    end = TINY_START + timedelta(days=44)
    urls = [_url(tmp_path / f"erp{i}.sqlite") for i in range(3)]
    for url, seed in zip(urls, (11, 11, 12), strict=True):
        generate(url, "tiny", TINY_START, end, seed=seed)
    first, second, other = (_dump(u) for u in urls)
    assert first == second
    assert first["sales_order_line"], "a tiny ERP must still sell something"
    assert first["sales_order_line"] != other["sales_order_line"]


def test_schema_has_erp_columns_and_updated_at_indexes(tiny_erp: Path) -> None:
    engine = create_engine(_url(tiny_erp))
    insp = inspect(engine)
    expected = {
        "product": "product_id sku name department category subcategory list_price launched_on "
        "discontinued_on created_at updated_at",
        "store": "store_id code name kind country region opened_on updated_at",
        "sales_order": "order_id order_no store_id order_ts status created_at updated_at",
        "sales_order_line": "line_id order_id line_no product_id qty unit_price discount_pct "
        "line_status created_at updated_at",
        "promotion": "promo_id product_id store_id starts_on ends_on discount_pct updated_at",
        "price_history": "price_id product_id valid_from price updated_at",
        "stock_out": "stock_out_id product_id store_id day updated_at",
        "erp_meta": "key value",
    }
    for table, cols in expected.items():
        assert [c["name"] for c in insp.get_columns(table)] == cols.split()
    for table in ("sales_order", "sales_order_line"):
        indexed = [ix["column_names"] for ix in insp.get_indexes(table)]
        assert ["updated_at"] in indexed
    engine.dispose()
    stores = _read(_url(tiny_erp), "select kind, country, code from store")
    assert set(stores["kind"]) <= {"store", "warehouse", "online"}
    assert stores["code"].str.fullmatch(r"ST\d{3}").all()
    orders = _read(_url(tiny_erp), "select order_no, status from sales_order")
    assert orders["order_no"].str.fullmatch(r"SO-\d{7}").all()
    assert set(orders["status"]) <= {"open", "shipped", "cancelled"}


def test_generate_refuses_to_overwrite_without_replace(tiny_erp: Path, tmp_path: Path) -> None:
    with pytest.raises(ErpExistsError, match="replace=True"):
        generate(_url(tiny_erp), "tiny", TINY_START, TINY_END, seed=7)
    copy = tmp_path / "copy.sqlite"
    shutil.copy(tiny_erp, copy)
    counts = generate(_url(copy), "tiny", TINY_START, TINY_START + timedelta(days=9), replace=True)
    assert last_simulated_day(_url(copy)) == TINY_START + timedelta(days=9)
    assert counts["sales_order"] < len(_dump(_url(tiny_erp))["sales_order"])


def test_weekly_seasonality_follows_store_kind(small_erp: str) -> None:
    panel = _daily_demand(small_erp, SMALL_START, SMALL_END)
    days = pd.to_datetime(panel["day"])
    closed = [is_holiday(c, d.date()) for c, d in zip(panel["country"], days, strict=True)]
    panel = panel.assign(weekend=days.dt.weekday >= 5)[~np.array(closed)]
    for kind, factors in WEEKLY.items():
        rows = panel[panel["kind"] == kind]
        daily = rows.groupby(["day", "weekend"])["units"].sum().reset_index()
        means = daily.groupby("weekend")["units"].mean()
        expected = np.mean(factors[5:]) / np.mean(factors[:5])
        assert means[True] / means[False] == pytest.approx(expected, rel=0.2), kind


def test_promotions_lift_sales(small_erp: str) -> None:
    panel = _daily_demand(small_erp, SMALL_START, SMALL_END)
    promos = _read(small_erp, "select product_id, store_id, starts_on, ends_on from promotion")
    stores = panel["store_id"].unique()
    on = set()
    for p in promos.itertuples():
        for d in pd.date_range(p.starts_on, p.ends_on).strftime("%Y-%m-%d"):
            for s in [p.store_id] if pd.notna(p.store_id) else stores:
                on.add((p.product_id, int(s), d))
    key = zip(panel["product_id"], panel["store_id"], panel["day"], strict=True)
    panel["promo"] = [k in on for k in key]
    # Same-series comparison, so a promo on a fast mover does not fake the lift.
    series = panel.groupby(["product_id", "store_id", "promo"])["units"].mean().unstack()
    series = series.dropna()
    assert len(series) >= 20
    lift = series[True].sum() / series[False].sum()
    assert lift > 1.3


def test_no_sales_before_launch_after_discontinuation_or_on_stock_outs(tiny_erp: Path) -> None:
    url = _url(tiny_erp)
    lines = _read(
        url,
        """
        select l.product_id, o.store_id, date(o.order_ts) as day, p.launched_on,
               p.discontinued_on, s.opened_on,
               exists(select 1 from stock_out so where so.product_id = l.product_id
                      and so.store_id = o.store_id and so.day = date(o.order_ts)) as out_of_stock
        from sales_order_line l
        join sales_order o on o.order_id = l.order_id
        join product p on p.product_id = l.product_id
        join store s on s.store_id = o.store_id
        where l.qty > 0
        """,
    )
    assert not (lines["day"] < lines["launched_on"]).any()
    assert not (lines["day"] >= lines["discontinued_on"].fillna("9999-12-31")).any()
    assert not (lines["day"] < lines["opened_on"]).any()
    assert not lines["out_of_stock"].astype(bool).any()
    # The rules must have had something to bite on.
    products = _read(url, "select product_id, launched_on, discontinued_on from product")
    launched = products[products["launched_on"] > TINY_START.isoformat()]["product_id"]
    stopped = products[products["discontinued_on"].notna()]["product_id"]
    assert lines["product_id"].isin(launched).any()
    assert lines["product_id"].isin(stopped).any()
    assert len(_read(url, "select * from stock_out")) > 0


def test_slow_movers_have_many_zero_days(small_erp: str) -> None:
    panel = _daily_demand(small_erp, SMALL_START, SMALL_END)
    per_series = panel.groupby(["product_id", "store_id"])["units"].agg(
        mean="mean", zero_share=lambda u: (u == 0).mean()
    )
    slow = per_series[per_series["mean"] < 0.5]
    assert len(slow) >= 0.2 * len(per_series)
    assert slow["zero_share"].median() > 0.6


def test_advance_writes_only_inside_the_day_and_edits_older_rows(
    tiny_erp: Path, tmp_path: Path
) -> None:
    path = tmp_path / "erp.sqlite"
    shutil.copy(tiny_erp, path)
    url, day = _url(path), TINY_END + timedelta(days=1)
    before = _dump(url)
    counts = advance(url, day)
    after = _dump(url)
    lo, hi = datetime.combine(day, datetime.min.time()), datetime.combine(day, datetime.max.time())
    older_edits = 0
    for table in ("sales_order", "sales_order_line"):
        cols = [c.name for c in next(t for t in DATA_TABLES if t.name == table).columns]
        old = {r[0]: r for r in before[table]}
        created, updated = cols.index("created_at"), cols.index("updated_at")
        changed = [r for r in after[table] if old.get(r[0]) != r]
        assert changed
        for row in changed:
            assert lo <= row[updated] <= hi
            if row[0] in old:
                assert row[created] == old[row[0]][created]
                assert row[created] < lo
                older_edits += 1
            else:
                assert lo <= row[created] <= hi
        assert counts[table] == len(changed)
    assert older_edits > 0
    assert after["product"] == before["product"] or counts["product"] > 0
    assert last_simulated_day(url) == day


def test_advance_replays_identically_and_refuses_a_simulated_day(
    tiny_erp: Path, tmp_path: Path
) -> None:
    day = TINY_END + timedelta(days=1)
    urls = []
    for name in ("a", "b"):
        shutil.copy(tiny_erp, tmp_path / name)
        urls.append(_url(tmp_path / name))
        advance(urls[-1], day)
    assert _dump(urls[0]) == _dump(urls[1])
    with pytest.raises(ValueError, match=rf"{day}.*already simulated.*{day}"):
        advance(urls[0], day)
    with pytest.raises(ValueError, match=str(TINY_END)):
        advance(urls[0], TINY_END)
    with pytest.raises(ValueError, match="skip"):
        advance(urls[0], day + timedelta(days=2))


def test_generate_then_advance_equals_a_longer_generate(tmp_path: Path) -> None:
    end = TINY_START + timedelta(days=39)
    short, long = _url(tmp_path / "short.sqlite"), _url(tmp_path / "long.sqlite")
    generate(short, "tiny", TINY_START, end, seed=5)
    for k in (1, 2):
        advance(short, end + timedelta(days=k))
    # Same catalogue (launch dates are laid out over the requested span).
    build_history(long, "tiny", TINY_START, end + timedelta(days=2), 5, False, catalog_end=end)
    assert _dump(short) == _dump(long)


def test_last_simulated_day_is_none_without_an_erp(tmp_path: Path) -> None:
    assert last_simulated_day(_url(tmp_path / "empty.sqlite")) is None
