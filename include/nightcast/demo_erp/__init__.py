"""Demo ERP simulator: a realistic, seeded sales ERP in any SQLAlchemy database.

``generate`` writes a full history, ``advance`` simulates one more business
day (new orders plus late edits, all stamped inside that day), ``catch_up``
advances it day by day up to a given day, and ``last_simulated_day`` tells
where the ERP stands.
"""

from nightcast.demo_erp.advance import advance, catch_up, last_simulated_day
from nightcast.demo_erp.simulator import ErpExistsError, generate
from nightcast.demo_erp.sizes import SIZES, DemoSize

__all__ = [
    "SIZES",
    "DemoSize",
    "ErpExistsError",
    "advance",
    "catch_up",
    "generate",
    "last_simulated_day",
]
