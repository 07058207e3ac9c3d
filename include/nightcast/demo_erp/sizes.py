"""Named sizes of the demo ERP (grain: one size = a product count x a store count)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoSize:
    """How big the simulated ERP is; series = n_products * n_stores."""

    name: str
    n_products: int
    n_stores: int

    @property
    def n_series(self) -> int:
        return self.n_products * self.n_stores


SIZES: dict[str, DemoSize] = {
    s.name: s
    for s in (
        DemoSize("tiny", 12, 3),
        DemoSize("small", 60, 4),
        DemoSize("default", 150, 5),
        DemoSize("medium", 1_000, 10),
        DemoSize("m5", 3_000, 10),
    )
}


def get_size(name: str) -> DemoSize:
    """The size called ``name``; a clear error lists the known ones."""
    try:
        return SIZES[name]
    except KeyError:
        raise ValueError(f"unknown demo ERP size {name!r}; choose one of {sorted(SIZES)}") from None
