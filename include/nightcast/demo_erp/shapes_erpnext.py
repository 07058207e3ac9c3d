"""The demo ERP as an ERPNext/Frappe-shaped database (mapping ``sources/examples/erpnext.yaml``).

Frappe names a doctype's table ``tab<Doctype>`` (spaces included; MariaDB
needs backticks), keys documents by their ``name`` and stamps every change in
``modified`` (the watermark)::

    `tabItem Group`(name, parent_item_group, is_group, modified)
    `tabItem`(name = item code, item_code, item_name, item_group, stock_uom, standard_rate,
              disabled, end_of_life, custom_launch_date, creation, modified)
    `tabWarehouse`(name 'Main Street - NC', warehouse_name, company, city, custom_country,
                   custom_channel, modified)
    `tabSales Invoice`(name 'ACC-SINV-2025-00001', posting_date, posting_time, docstatus,
                   is_return, update_stock, status, set_warehouse, creation, modified)
    `tabSales Invoice Item`(name, parent, parenttype, idx, item_code, qty, rate, amount,
                   discount_percentage, warehouse, docstatus, creation, modified)
    `tabPricing Rule`(name, apply_on, item_code, warehouse, valid_from, valid_upto,
                   rate_or_discount, discount_percentage, disable, creation, modified)
    `tabStock Out Day`(name, item_code, warehouse, day, creation, modified)  -- custom doctype

``docstatus``: 1 submitted, 2 cancelled (a cancelled invoice and its items);
``is_return = 1`` with negative ``qty`` is a credit note (a return). An open
(not yet delivered) order is a submitted invoice with ``update_stock = 0``; a
shipped one has ``update_stock = 1``. ERPNext has no stock-out doctype:
``tabStock Out Day`` is a custom one. Pricing rules keep the item code on the
rule (the pre-v13 layout) to stay one table.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa

from nightcast.demo_erp.shapes_base import line_state, read_business, replace_tables

COMPANY = "Nightcast Demo"
ABBR = "NC"
ROOT_GROUP = "All Item Groups"

metadata = sa.MetaData()
_ts = sa.DateTime(timezone=False)


def _name() -> sa.Column[str]:
    return sa.Column("name", sa.String(140), primary_key=True)


def _stamps() -> list[sa.Column[object]]:
    return [sa.Column("creation", _ts), sa.Column("modified", _ts)]


item_group = sa.Table(
    "tabItem Group",
    metadata,
    _name(),
    sa.Column("parent_item_group", sa.String(140)),
    sa.Column("is_group", sa.Integer, nullable=False),
    *_stamps(),
)
item = sa.Table(
    "tabItem",
    metadata,
    _name(),
    sa.Column("item_code", sa.String(140), nullable=False),
    sa.Column("item_name", sa.String(140)),
    sa.Column("item_group", sa.String(140)),
    sa.Column("stock_uom", sa.String(140)),
    sa.Column("standard_rate", sa.Numeric(21, 9)),
    sa.Column("disabled", sa.Integer, nullable=False),
    sa.Column("end_of_life", sa.Date),
    sa.Column("custom_launch_date", sa.Date),
    *_stamps(),
)
warehouse = sa.Table(
    "tabWarehouse",
    metadata,
    _name(),
    sa.Column("warehouse_name", sa.String(140)),
    sa.Column("company", sa.String(140)),
    sa.Column("city", sa.String(140)),
    sa.Column("custom_country", sa.String(140)),
    sa.Column("custom_channel", sa.String(140)),
    *_stamps(),
)
sales_invoice = sa.Table(
    "tabSales Invoice",
    metadata,
    _name(),
    sa.Column("posting_date", sa.Date, nullable=False),
    sa.Column("posting_time", sa.Time),
    sa.Column("docstatus", sa.Integer, nullable=False),
    sa.Column("is_return", sa.Integer, nullable=False),
    sa.Column("update_stock", sa.Integer, nullable=False),
    sa.Column("status", sa.String(30)),
    sa.Column("set_warehouse", sa.String(140)),
    *_stamps(),
    sa.Index("sinv_modified_index", "modified"),
)
sales_invoice_item = sa.Table(
    "tabSales Invoice Item",
    metadata,
    _name(),
    sa.Column("parent", sa.String(140), nullable=False),
    sa.Column("parenttype", sa.String(140)),
    sa.Column("idx", sa.Integer),
    sa.Column("item_code", sa.String(140)),
    sa.Column("qty", sa.Numeric(21, 9), nullable=False),
    sa.Column("rate", sa.Numeric(21, 9)),
    sa.Column("amount", sa.Numeric(21, 9)),
    sa.Column("discount_percentage", sa.Numeric(21, 9)),
    sa.Column("warehouse", sa.String(140)),
    sa.Column("docstatus", sa.Integer, nullable=False),
    *_stamps(),
    sa.Index("sinv_item_modified_index", "modified"),
    sa.Index("sinv_item_parent_index", "parent"),
)
pricing_rule = sa.Table(
    "tabPricing Rule",
    metadata,
    _name(),
    sa.Column("apply_on", sa.String(140)),
    sa.Column("item_code", sa.String(140)),
    sa.Column("warehouse", sa.String(140)),
    sa.Column("valid_from", sa.Date),
    sa.Column("valid_upto", sa.Date),
    sa.Column("rate_or_discount", sa.String(140)),
    sa.Column("discount_percentage", sa.Numeric(21, 9)),
    sa.Column("disable", sa.Integer, nullable=False),
    *_stamps(),
)
stock_out_day = sa.Table(
    "tabStock Out Day",
    metadata,
    _name(),
    sa.Column("item_code", sa.String(140), nullable=False),
    sa.Column("warehouse", sa.String(140), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    *_stamps(),
    sa.Index("stock_out_day_modified_index", "modified"),
)


def _invoice_names(orders: pd.DataFrame) -> pd.Series:
    years = pd.to_datetime(orders["order_ts"]).dt.year
    return pd.Series(
        [f"ACC-SINV-{y}-{i:05d}" for y, i in zip(years, orders["order_id"], strict=True)],
        index=orders.index,
    )


def _item_groups(p: pd.DataFrame) -> pd.DataFrame:
    rows: dict[str, tuple[str | None, int]] = {ROOT_GROUP: (None, 1)}
    for dept, cat, sub in (
        p[["department", "category", "subcategory"]].drop_duplicates().itertuples(index=False)
    ):
        rows.setdefault(str(dept), (ROOT_GROUP, 1))
        rows.setdefault(str(cat), (str(dept), 1))
        rows.setdefault(str(sub), (str(cat), 0))
    names = sorted(rows)
    stamp = pd.to_datetime(p["created_at"]).min() if len(p) else pd.Timestamp("2000-01-01")
    return pd.DataFrame(
        {
            "name": names,
            "parent_item_group": [rows[n][0] for n in names],
            "is_group": [rows[n][1] for n in names],
            "creation": stamp,
            "modified": stamp,
        }
    )


def to_erpnext(src_url: str, dst_url: str, until: date | None = None) -> dict[str, int]:
    """Rewrite the ERPNext-shaped tables at ``dst_url`` from the demo ERP; rows per table."""
    biz = read_business(src_url, until)
    p, s, o, ln = biz.products, biz.stores, biz.orders, biz.lines
    code = dict(zip(p["product_id"], p["sku"], strict=True))
    wh = dict(zip(s["store_id"], s["name"] + f" - {ABBR}", strict=True))
    items = pd.DataFrame(
        {
            "name": p["sku"],
            "item_code": p["sku"],
            "item_name": p["name"],
            "item_group": p["subcategory"],
            "stock_uom": "Nos",
            "standard_rate": p["list_price"].round(2),
            "disabled": p["discontinued_on"].notna().astype(int),
            "end_of_life": p["discontinued_on"],
            "custom_launch_date": p["launched_on"],
            "creation": p["created_at"],
            "modified": p["updated_at"],
        }
    )
    warehouses = pd.DataFrame(
        {
            "name": s["store_id"].map(wh),
            "warehouse_name": s["name"],
            "company": COMPANY,
            "city": s["region"],
            "custom_country": s["country"],
            "custom_channel": s["kind"],
            "creation": pd.to_datetime(s["opened_on"]),
            "modified": s["updated_at"],
        }
    )
    ts = pd.to_datetime(o["order_ts"])
    is_return = o["order_id"].isin(ln.loc[ln["qty"] < 0, "order_id"])
    inv_name = _invoice_names(o)
    invoices = pd.DataFrame(
        {
            "name": inv_name,
            "posting_date": ts.dt.date,
            "posting_time": ts.dt.time,
            "docstatus": (o["status"] == "cancelled").map({True: 2, False: 1}),
            "is_return": is_return.astype(int),
            "update_stock": (o["status"] != "open").astype(int),
            "status": o["status"]
            .map({"open": "Unpaid", "shipped": "Paid", "cancelled": "Cancelled"})
            .where(~is_return, "Return"),
            "set_warehouse": o["store_id"].map(wh),
            "creation": o["created_at"],
            "modified": o["updated_at"],
        }
    )
    parent = dict(zip(o["order_id"], inv_name, strict=True))
    state = line_state(ln)
    lines = pd.DataFrame(
        {
            "name": [f"sii{i:09d}" for i in ln["line_id"]],
            "parent": ln["order_id"].map(parent),
            "parenttype": "Sales Invoice",
            "idx": ln["line_no"],
            "item_code": ln["product_id"].map(code),
            "qty": ln["qty"],
            "rate": ln["unit_price"].round(4),
            "amount": (ln["qty"] * ln["unit_price"]).round(2),
            "discount_percentage": ln["discount_pct"].round(2),
            "warehouse": ln["store_id"].map(wh),
            "docstatus": (state == "cancelled").map({True: 2, False: 1}),
            "creation": ln["created_at"],
            "modified": ln["updated_at"],
        }
    )
    pr = biz.promotions
    rules = pd.DataFrame(
        {
            "name": [f"PRLE-{i:04d}" for i in pr["promo_id"]],
            "apply_on": "Item Code",
            "item_code": pr["product_id"].map(code),
            "warehouse": pr["store_id"].map(wh),
            "valid_from": pr["starts_on"],
            "valid_upto": pr["ends_on"],
            "rate_or_discount": "Discount Percentage",
            "discount_percentage": pr["discount_pct"].round(2),
            "disable": 0,
            "creation": pr["updated_at"],
            "modified": pr["updated_at"],
        }
    )
    so = biz.stock_outs
    stock = pd.DataFrame(
        {
            "name": [f"SOD-{i:07d}" for i in so["stock_out_id"]],
            "item_code": so["product_id"].map(code),
            "warehouse": so["store_id"].map(wh),
            "day": so["day"],
            "creation": so["updated_at"],
            "modified": so["updated_at"],
        }
    )
    frames = {
        "tabItem Group": _item_groups(p),
        "tabItem": items,
        "tabWarehouse": warehouses,
        "tabSales Invoice": invoices,
        "tabSales Invoice Item": lines,
        "tabPricing Rule": rules,
        "tabStock Out Day": stock,
    }
    return replace_tables(dst_url, metadata, frames)
