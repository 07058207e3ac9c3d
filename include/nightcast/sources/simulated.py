"""Sources whose ERP is the demo simulator: night D first simulates the days up to D.

A deployment names them in ``NIGHTCAST_SIMULATED_SOURCES`` (the embedded defaults
of ``make demo`` / ``make airflow`` name ``demo``; production leaves it empty and
nothing here runs). Whatever night the scheduler picks, e.g. yesterday's right
after a user unpauses the DAG, days or a year after ``make demo`` stopped, the
demo ERP then has that business day to close, as a real ERP would.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from nightcast.config import Settings, connection_url
from nightcast.errors import DeterministicError
from nightcast.sources.mapping import SourceMapping
from nightcast.sources.mapping_rules import MappingError

log = logging.getLogger("nightcast.sources")

SETTING = "NIGHTCAST_SIMULATED_SOURCES"


class SimulatedSourceError(DeterministicError):
    """A source named in ``NIGHTCAST_SIMULATED_SOURCES`` has no demo ERP behind it
    (a configuration to fix, not a failure a retry could cure)."""


def catch_up_source(settings: Settings, mapping: SourceMapping, run_date: date) -> int:
    """Business days simulated in ``mapping``'s ERP so that it holds ``run_date``.

    0 for a source the deployment does not simulate, and for a night the ERP
    already holds (a rerun or a backfill: the ERP never moves back).
    """
    if mapping.source not in settings.simulated_sources:
        return 0
    if mapping.kind != "sql":
        raise MappingError(
            f"{SETTING} names source {mapping.source!r}, but {mapping.path.name} is a "
            f"{mapping.kind} source; only a demo ERP database can be simulated: "
            f"remove {mapping.source!r} from {SETTING}"
        )
    from nightcast import demo_erp

    url = connection_url(mapping.connection)
    if demo_erp.last_simulated_day(url) is None:
        raise SimulatedSourceError(
            f"{SETTING} names source {mapping.source!r}, but its connection "
            f"{mapping.connection!r} (AIRFLOW_CONN_{mapping.connection.upper()}) holds no demo "
            f"ERP: seed one (`nightcast demo-erp init --end {run_date - timedelta(days=1)}`), "
            f"or remove {mapping.source!r} from {SETTING} if it is a real ERP"
        )
    return demo_erp.catch_up(url, run_date)
