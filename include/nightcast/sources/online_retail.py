"""The Online Retail data set (UCI) written as a legacy ERP's nightly CSV drops.

Mapping: ``sources/examples/online_retail.yaml`` (source ``retail``). One folder
per invoice day; each night holds::

    <folder>/<D>/sales_lines.csv   that day's invoice lines (the data set's columns
                                   unchanged, plus LineNo and DocType, see below)
    <folder>/<D>/items.csv         item master as of D: every StockCode seen so far
    <folder>/<D>/countries.csv     every Country seen so far (a sales channel)

No promotions or stock-outs exist in this ERP: their files are never written and
the mapping declares them ``optional: true`` (0 rows each night).

What the converter adds, as the ERP's own export would carry it:

- ``LineNo``: ``<InvoiceNo>-<n>``, the n-th line of the invoice in data-set order
  (the data set has no line id).
- ``DocType``: ``SALE``; ``CREDIT`` for invoices starting with ``C`` (credit notes
  reversing an earlier invoice, negative quantity); ``ADJUST`` for other negative
  quantities (stock adjustments such as "damaged"). The mapping books CREDIT and
  ADJUST as ``returned``: the original invoice line stays a sale, and the
  canonical model only allows a negative quantity on returned lines.
- items.csv ``ItemGroup``: ``PRODUCT`` for StockCodes starting with 5 digits,
  ``NON_PRODUCT`` otherwise (POST, M, DOT, BANK CHARGES, AMAZONFEE, ...), mapped
  onto the item's department and category so BI and models can filter them;
  their lines are kept (not quarantined) so the reconciliation stays exact.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

PRODUCT_CODE = r"^\d{5}"
ENCODING = "utf-8"


def _doc_type(frame: pd.DataFrame) -> pd.Series:
    credit = frame["InvoiceNo"].str.startswith("C")
    return (
        pd.Series("SALE", index=frame.index)
        .mask(frame["Quantity"] < 0, "ADJUST")
        .mask(credit, "CREDIT")
    )


def _items(seen: pd.DataFrame) -> pd.DataFrame:
    """Item master from the lines seen so far: last non-empty description, median price."""
    pos = seen[seen["UnitPrice"] > 0]
    price = pos.groupby("StockCode")["UnitPrice"].median().round(2)
    desc = seen.dropna(subset=["Description"]).groupby("StockCode")["Description"].last()
    first = seen.groupby("StockCode")["InvoiceDate"].min()
    last = seen.groupby("StockCode")["InvoiceDate"].max()
    items = pd.DataFrame({"StockCode": sorted(seen["StockCode"].unique())})
    items["Description"] = items["StockCode"].map(desc)
    items["ItemGroup"] = (
        items["StockCode"].str.match(PRODUCT_CODE).map({True: "PRODUCT", False: "NON_PRODUCT"})
    )
    items["ListPrice"] = items["StockCode"].map(price)
    items["FirstSold"] = items["StockCode"].map(first).dt.strftime("%Y-%m-%d")
    items["LastChanged"] = items["StockCode"].map(last).dt.strftime("%Y-%m-%d %H:%M:%S")
    return items


def _countries(seen: pd.DataFrame) -> pd.DataFrame:
    last = seen.groupby("Country")["InvoiceDate"].max()
    return pd.DataFrame(
        {"Country": last.index, "LastChanged": last.dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy()}
    )


def load_online_retail(parquet_path: Path) -> pd.DataFrame:
    """The data set with LineNo and DocType added, in data-set order."""
    frame = pd.read_parquet(parquet_path)
    frame["InvoiceNo"] = frame["InvoiceNo"].astype(str)
    frame["StockCode"] = frame["StockCode"].astype(str).str.strip()
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    frame["LineNo"] = (
        frame["InvoiceNo"] + "-" + (frame.groupby("InvoiceNo").cumcount() + 1).astype(str)
    )
    frame["DocType"] = _doc_type(frame)
    return frame


def write_online_retail_drops(
    parquet_path: Path,
    folder: Path,
    days: list[date] | None = None,
    *,
    history_from: date | None = None,
) -> dict[date, int]:
    """Write one drop folder per invoice day in ``days`` (default: every invoice day).

    Each night's ``sales_lines.csv`` holds that day's lines; with ``history_from``
    the first night also holds every line from ``history_from`` on (the initial
    export when the source is connected). Returns the sales lines per night.
    """
    frame = load_online_retail(parquet_path)
    day_of = frame["InvoiceDate"].dt.date
    wanted = sorted(set(days) if days is not None else set(day_of))
    out: dict[date, int] = {}
    cols = [
        "LineNo",
        "InvoiceNo",
        "DocType",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
        "Country",
    ]
    for i, day in enumerate(wanted):
        lo = history_from if (i == 0 and history_from is not None) else day
        lines = frame[(day_of >= lo) & (day_of <= day)]
        if lines.empty:
            continue
        seen = frame[day_of <= day]
        night = Path(folder) / day.isoformat()
        night.mkdir(parents=True, exist_ok=True)
        sales = lines[cols].copy()
        sales["InvoiceDate"] = sales["InvoiceDate"].dt.strftime("%Y-%m-%d %H:%M:%S")
        sales["CustomerID"] = sales["CustomerID"].astype("Int64")
        sales.to_csv(night / "sales_lines.csv", index=False, encoding=ENCODING)
        _items(seen).to_csv(night / "items.csv", index=False, encoding=ENCODING)
        _countries(seen).to_csv(night / "countries.csv", index=False, encoding=ENCODING)
        out[day] = len(sales)
    return out
