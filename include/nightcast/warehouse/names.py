"""Item and location names for people, from the dbt dimensions ``marts.dim_item`` and
``marts.dim_location`` (one row per id, the ERP's name of it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from nightcast.warehouse.base import Warehouse

_DIMENSIONS = {
    "item": ("marts", "dim_item", "item_id", "item_name"),
    "location": ("marts", "dim_location", "location_id", "location_name"),
}
_CHUNK = 500  # ids per query: a bounded number of placeholders


def names(wh: Warehouse, kind: Literal["item", "location"], ids: Iterable[str]) -> dict[str, str]:
    """``{id: name}`` for those of ``ids`` the dimension names; empty when it does not exist
    yet (before the first ``dbt build``). A blank name is left out."""
    schema, table, id_col, name_col = _DIMENSIONS[kind]
    wanted = sorted({str(i) for i in ids})
    if not wanted or (schema, table) not in wh.tables([schema]):
        return {}
    found: dict[str, str] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        marks = ", ".join("?" for _ in chunk)
        for key, name in wh.fetchall(
            f"select {id_col}, {name_col} from {schema}.{table} where {id_col} in ({marks})",
            chunk,
        ):
            if name is not None and str(name).strip():
                found[str(key)] = str(name).strip()
    return found


def labelled(key: str, name: str | None) -> str:
    """``Apple (acme:1)``: the name with the id, or the id alone when there is no name."""
    return f"{name} ({key})" if name and name != key else key
