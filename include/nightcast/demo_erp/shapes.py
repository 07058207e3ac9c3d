"""The demo ERP's business written in other ERPs' shapes, so every source mapping has data.

- :func:`to_odoo`: Odoo-like PostgreSQL tables (``sale_order``, ``product_product`` ...),
  see :mod:`nightcast.demo_erp.shapes_odoo`.
- :func:`to_erpnext`: ERPNext/Frappe tables (``tabSales Invoice`` ...), see
  :mod:`nightcast.demo_erp.shapes_erpnext`.
- :func:`to_csv_drop`: a legacy ERP's nightly CSV export files for one business day.

Each reads the demo ERP created by ``nightcast.demo_erp.generate``/``advance``
and rewrites its target completely, so it can be run again every night.

Legacy CSV drop (mapping ``sources/examples/legacy_csv.yaml``), one folder per
night, ``;``-separated, Windows-1252, day-first dates, ``N/A`` for missing::

    <folder>/<D>/items.csv        full export  ITEM_NO;DESCRIPTION;DEPT;CATEGORY;SUBCAT;PRICE;LAUNCHED;DISCONTINUED;CHANGED
    <folder>/<D>/stores.csv       full export  STORE_NO;STORE_NAME;TYPE(S/W/O);COUNTRY;REGION;CHANGED
    <folder>/<D>/sales_lines.csv  lines created or changed on D (or up to D with history=True)
                                  LINE_NO;ORDER_NO;ORDER_DATE;ITEM_NO;STORE_NO;QTY;PRICE;AMOUNT;STATUS(O/S/X/R);CHANGED
    <folder>/<D>/promotions.csv   full export  PROMO_NO;ITEM_NO;STORE_NO(N/A = all);VALID_FROM;VALID_TO;PCT;CHANGED
    <folder>/<D>/stockouts.csv    stock-out days recorded on D (or up to D with history=True)
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from nightcast.demo_erp.shapes_base import end_of, line_changed, line_state, read_business
from nightcast.demo_erp.shapes_erpnext import to_erpnext
from nightcast.demo_erp.shapes_odoo import to_odoo

__all__ = ["to_csv_drop", "to_erpnext", "to_odoo"]

CSV_DELIMITER = ";"
CSV_ENCODING = "cp1252"
NA = "N/A"
STATUS_CODES = {"open": "O", "shipped": "S", "cancelled": "X", "returned": "R"}
KIND_CODES = {"store": "S", "warehouse": "W", "online": "O"}


def _day_first(values: pd.Series, with_time: bool = False) -> pd.Series:
    stamps = pd.to_datetime(values)
    text = stamps.dt.strftime("%d/%m/%Y %H:%M:%S" if with_time else "%d/%m/%Y")
    return text.where(stamps.notna(), NA)


def _write(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    frame.to_csv(
        tmp,
        sep=CSV_DELIMITER,
        index=False,
        encoding=CSV_ENCODING,
        errors="replace",
        lineterminator="\r\n",
    )
    tmp.replace(path)


def to_csv_drop(src_url: str, folder: Path, day: date, *, history: bool = False) -> dict[str, int]:
    """Write business day ``day``'s export files into ``folder/<day>/``; rows per file.

    Dimensions (items, stores, promotions) are full exports. Sales lines and
    stock-outs hold what was created or changed on ``day``; ``history=True``
    writes everything up to ``day`` instead (the initial export of a new source).
    """
    biz = read_business(src_url, until=day)
    night = Path(folder) / day.isoformat()
    night.mkdir(parents=True, exist_ok=True)
    lo, hi = pd.Timestamp(day), pd.Timestamp(end_of(day))

    p = biz.products
    items = pd.DataFrame(
        {
            "ITEM_NO": p["product_id"],
            "DESCRIPTION": p["name"],
            "DEPT": p["department"],
            "CATEGORY": p["category"],
            "SUBCAT": p["subcategory"],
            "PRICE": p["list_price"].round(2),
            "LAUNCHED": _day_first(p["launched_on"]),
            "DISCONTINUED": _day_first(p["discontinued_on"]),
            "CHANGED": _day_first(p["updated_at"], with_time=True),
        }
    )
    s = biz.stores
    stores = pd.DataFrame(
        {
            "STORE_NO": s["store_id"],
            "STORE_NAME": s["name"],
            "TYPE": s["kind"].map(KIND_CODES),
            "COUNTRY": s["country"],
            "REGION": s["region"],
            "CHANGED": _day_first(s["updated_at"], with_time=True),
        }
    )
    ln = biz.lines
    changed = line_changed(ln)
    ln = ln[(changed < hi) & ((changed >= lo) | history)]
    changed = changed[ln.index]
    sales = pd.DataFrame(
        {
            "LINE_NO": ln["line_id"],
            "ORDER_NO": ln["order_no"],
            "ORDER_DATE": _day_first(ln["order_ts"]),
            "ITEM_NO": ln["product_id"],
            "STORE_NO": ln["store_id"],
            "QTY": ln["qty"],
            "PRICE": ln["unit_price"].round(2),
            "AMOUNT": (ln["qty"] * ln["unit_price"]).round(2),
            "STATUS": line_state(ln).map(STATUS_CODES),
            "CHANGED": _day_first(changed, with_time=True),
        }
    )
    pr = biz.promotions
    promos = pd.DataFrame(
        {
            "PROMO_NO": pr["promo_id"],
            "ITEM_NO": pr["product_id"],
            "STORE_NO": pr["store_id"].astype("Int64").astype("string").fillna(NA),
            "VALID_FROM": _day_first(pr["starts_on"]),
            "VALID_TO": _day_first(pr["ends_on"]),
            "PCT": pr["discount_pct"],
            "CHANGED": _day_first(pr["updated_at"], with_time=True),
        }
    )
    so = biz.stock_outs
    so = so[(pd.to_datetime(so["updated_at"]) < hi) & ((so["updated_at"] >= lo) | history)]
    stock = pd.DataFrame(
        {
            "STOCKOUT_NO": so["stock_out_id"],
            "ITEM_NO": so["product_id"],
            "STORE_NO": so["store_id"],
            "DAY": _day_first(so["day"]),
            "CHANGED": _day_first(so["updated_at"], with_time=True),
        }
    )
    files = {
        "items.csv": items,
        "stores.csv": stores,
        "sales_lines.csv": sales,
        "promotions.csv": promos,
        "stockouts.csv": stock,
    }
    for name, frame in files.items():
        _write(frame, night / name)
    return {name: len(frame) for name, frame in files.items()}
