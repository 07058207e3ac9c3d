"""The demo ERP as an Odoo-shaped database (mapping ``sources/examples/odoo.yaml``).

Odoo's own table and column names; timestamps are UTC ``timestamp without
time zone`` and ``write_date`` is the change stamp (the watermark)::

    res_country(id, code, name)            res_partner(id, name, city, country_id)
    product_category(id, name, complete_name 'All / Grocery / Beverages / Juice', parent_id)
    product_template(id, name, categ_id, list_price, active, create_date, write_date,
                     x_launch_date, x_discontinue_date)       -- x_: Studio custom fields
    product_product(id, product_tmpl_id, default_code, active, write_date)
    stock_warehouse(id, name, code, company_id, partner_id, x_channel, write_date)
    sale_order(id, name 'S00042', date_order, state, warehouse_id, create_date, write_date)
    sale_order_line(id, order_id, sequence, product_id, product_uom_qty, price_unit, discount,
                    price_subtotal, state, create_date, write_date)
    product_pricelist_item(id, pricelist_id, applied_on '0_product_variant', product_id,
                    compute_price 'percentage', percent_price, date_start, date_end,
                    x_warehouse_id (NULL = every warehouse), create_date, write_date)
    x_stock_out(id, x_product_id, x_warehouse_id, x_day, create_date, write_date)

States: an open order is ``sale`` (confirmed), a shipped one ``done``, a
cancelled one ``cancel``. Returns: Odoo books them as stock returns and credit
notes; here a return is a ``done`` sale order whose lines have a negative
``product_uom_qty`` (the mapping turns those into status ``returned``).
Odoo has no stock-out table: ``x_stock_out`` is a custom model.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa

from nightcast.demo_erp.shapes_base import line_state, read_business, replace_tables

ODOO_STATE = {"open": "sale", "shipped": "done", "cancelled": "cancel", "returned": "done"}
COMPANY_ID = 1
PRICELIST_ID = 1
# Odoo's product.product ids differ from product.template ids in a real database.
VARIANT_OFFSET = 1000

metadata = sa.MetaData()
_ts = sa.DateTime(timezone=False)


def _pk() -> sa.Column[int]:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)


res_country = sa.Table(
    "res_country", metadata, _pk(), sa.Column("code", sa.String(2)), sa.Column("name", sa.String)
)
res_partner = sa.Table(
    "res_partner",
    metadata,
    _pk(),
    sa.Column("name", sa.String),
    sa.Column("city", sa.String),
    sa.Column("country_id", sa.Integer),
)
product_category = sa.Table(
    "product_category",
    metadata,
    _pk(),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("complete_name", sa.String),
    sa.Column("parent_id", sa.Integer),
)
product_template = sa.Table(
    "product_template",
    metadata,
    _pk(),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("categ_id", sa.Integer, nullable=False),
    sa.Column("list_price", sa.Numeric(12, 2)),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("create_date", _ts),
    sa.Column("write_date", _ts),
    sa.Column("x_launch_date", sa.Date),
    sa.Column("x_discontinue_date", sa.Date),
)
product_product = sa.Table(
    "product_product",
    metadata,
    _pk(),
    sa.Column("product_tmpl_id", sa.Integer, nullable=False),
    sa.Column("default_code", sa.String),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("write_date", _ts),
)
stock_warehouse = sa.Table(
    "stock_warehouse",
    metadata,
    _pk(),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("code", sa.String(5), nullable=False),
    sa.Column("company_id", sa.Integer, nullable=False),
    sa.Column("partner_id", sa.Integer),
    sa.Column("x_channel", sa.String),
    sa.Column("write_date", _ts),
)
sale_order = sa.Table(
    "sale_order",
    metadata,
    _pk(),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("date_order", _ts, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("warehouse_id", sa.Integer, nullable=False),
    sa.Column("create_date", _ts),
    sa.Column("write_date", _ts),
    sa.Index("sale_order_write_date_index", "write_date"),
)
sale_order_line = sa.Table(
    "sale_order_line",
    metadata,
    _pk(),
    sa.Column("order_id", sa.Integer, nullable=False),
    sa.Column("sequence", sa.Integer),
    sa.Column("product_id", sa.Integer),
    sa.Column("product_uom_qty", sa.Numeric(16, 3), nullable=False),
    sa.Column("price_unit", sa.Numeric(16, 4), nullable=False),
    sa.Column("discount", sa.Numeric(6, 2)),
    sa.Column("price_subtotal", sa.Numeric(16, 2)),
    sa.Column("state", sa.String),
    sa.Column("create_date", _ts),
    sa.Column("write_date", _ts),
    sa.Index("sale_order_line_write_date_index", "write_date"),
    sa.Index("sale_order_line_order_id_index", "order_id"),
)
product_pricelist_item = sa.Table(
    "product_pricelist_item",
    metadata,
    _pk(),
    sa.Column("pricelist_id", sa.Integer, nullable=False),
    sa.Column("applied_on", sa.String, nullable=False),
    sa.Column("product_id", sa.Integer),
    sa.Column("compute_price", sa.String, nullable=False),
    sa.Column("percent_price", sa.Numeric(6, 2)),
    sa.Column("date_start", _ts),
    sa.Column("date_end", _ts),
    sa.Column("x_warehouse_id", sa.Integer),
    sa.Column("create_date", _ts),
    sa.Column("write_date", _ts),
)
x_stock_out = sa.Table(
    "x_stock_out",
    metadata,
    _pk(),
    sa.Column("x_product_id", sa.Integer, nullable=False),
    sa.Column("x_warehouse_id", sa.Integer, nullable=False),
    sa.Column("x_day", sa.Date, nullable=False),
    sa.Column("create_date", _ts),
    sa.Column("write_date", _ts),
    sa.Index("x_stock_out_write_date_index", "write_date"),
)


def _categories(products: pd.DataFrame) -> tuple[pd.DataFrame, dict[tuple[str, ...], int]]:
    """Odoo's category tree (All / department / category / subcategory) and its ids."""
    ids: dict[tuple[str, ...], int] = {("All",): 1}
    rows = [{"id": 1, "name": "All", "complete_name": "All", "parent_id": None}]
    paths = products[["department", "category", "subcategory"]].drop_duplicates()
    for path in sorted(tuple(str(x) for x in r) for r in paths.itertuples(index=False)):
        for depth in range(1, 4):
            key = ("All", *path[:depth])
            if key not in ids:
                ids[key] = len(ids) + 1
                rows.append(
                    {
                        "id": ids[key],
                        "name": key[-1],
                        "complete_name": " / ".join(key),
                        "parent_id": ids[key[:-1]],
                    }
                )
    return pd.DataFrame(rows), ids


def to_odoo(src_url: str, dst_url: str, until: date | None = None) -> dict[str, int]:
    """Rewrite the Odoo-shaped tables at ``dst_url`` from the demo ERP; rows per table."""
    biz = read_business(src_url, until)
    p, s, o, ln = biz.products, biz.stores, biz.orders, biz.lines
    categories, cat_ids = _categories(p)
    countries = sorted(s["country"].unique())
    country_id = {c: i + 1 for i, c in enumerate(countries)}
    templates = pd.DataFrame(
        {
            "id": p["product_id"],
            "name": p["name"],
            "categ_id": [
                cat_ids[("All", d, c, sc)]
                for d, c, sc in zip(p["department"], p["category"], p["subcategory"], strict=True)
            ],
            "list_price": p["list_price"].round(2),
            "active": p["discontinued_on"].isna(),
            "create_date": p["created_at"],
            "write_date": p["updated_at"],
            "x_launch_date": p["launched_on"],
            "x_discontinue_date": p["discontinued_on"],
        }
    )
    variants = pd.DataFrame(
        {
            "id": p["product_id"] + VARIANT_OFFSET,
            "product_tmpl_id": p["product_id"],
            "default_code": p["sku"],
            "active": p["discontinued_on"].isna(),
            "write_date": p["updated_at"],
        }
    )
    partners = pd.DataFrame(
        {
            "id": s["store_id"],
            "name": s["name"],
            "city": s["region"],
            "country_id": s["country"].map(country_id),
        }
    )
    warehouses = pd.DataFrame(
        {
            "id": s["store_id"],
            "name": s["name"],
            "code": s["code"].str[:5],
            "company_id": COMPANY_ID,
            "partner_id": s["store_id"],
            "x_channel": s["kind"],
            "write_date": s["updated_at"],
        }
    )
    orders = pd.DataFrame(
        {
            "id": o["order_id"],
            "name": [f"S{i:05d}" for i in o["order_id"]],
            "date_order": o["order_ts"],
            "state": o["status"].map(ODOO_STATE),
            "warehouse_id": o["store_id"],
            "create_date": o["created_at"],
            "write_date": o["updated_at"],
        }
    )
    lines = pd.DataFrame(
        {
            "id": ln["line_id"],
            "order_id": ln["order_id"],
            "sequence": ln["line_no"] * 10,
            "product_id": ln["product_id"] + VARIANT_OFFSET,
            "product_uom_qty": ln["qty"],
            "price_unit": ln["unit_price"].round(4),
            "discount": ln["discount_pct"].round(2),
            "price_subtotal": (ln["qty"] * ln["unit_price"]).round(2),
            "state": line_state(ln).map(ODOO_STATE),
            "create_date": ln["created_at"],
            "write_date": ln["updated_at"],
        }
    )
    pr = biz.promotions
    pricelist = pd.DataFrame(
        {
            "id": pr["promo_id"],
            "pricelist_id": PRICELIST_ID,
            "applied_on": "0_product_variant",
            "product_id": pr["product_id"] + VARIANT_OFFSET,
            "compute_price": "percentage",
            "percent_price": pr["discount_pct"].round(2),
            "date_start": pd.to_datetime(pr["starts_on"]),
            # Odoo's date_end is inclusive up to the last second of the day.
            "date_end": pd.to_datetime(pr["ends_on"])
            + pd.Timedelta(hours=23, minutes=59, seconds=59),
            "x_warehouse_id": pr["store_id"].astype("Int64"),
            "create_date": pr["updated_at"],
            "write_date": pr["updated_at"],
        }
    )
    so = biz.stock_outs
    stock = pd.DataFrame(
        {
            "id": so["stock_out_id"],
            "x_product_id": so["product_id"] + VARIANT_OFFSET,
            "x_warehouse_id": so["store_id"],
            "x_day": so["day"],
            "create_date": so["updated_at"],
            "write_date": so["updated_at"],
        }
    )
    frames = {
        "res_country": pd.DataFrame(
            {"id": np.arange(1, len(countries) + 1), "code": countries, "name": countries}
        ),
        "res_partner": partners,
        "product_category": categories,
        "product_template": templates,
        "product_product": variants,
        "stock_warehouse": warehouses,
        "sale_order": orders,
        "sale_order_line": lines,
        "product_pricelist_item": pricelist,
        "x_stock_out": stock,
    }
    return replace_tables(dst_url, metadata, frames)
