"""The landing: what one extract of one table for one night produced, and where it is.

Types every lander shares (the SQL extract of :mod:`nightcast.sources.extract` and
the CSV drops of :mod:`nightcast.sources.csv_folder`), and the landing partition
itself: ``<lake>/raw/<source>/<table>/date=<D>/``, Parquet parts of one attempt
committed by a ``_manifest.json`` (:func:`nightcast.storage.commit_partition`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa

from nightcast.errors import DeterministicError
from nightcast.storage import (
    Location,
    commit_partition,
    location,
    new_attempt,
    partition_parts,
)

# Schema metadata of a landed Parquet file: the export file(s) it was landed from.
INPUTS_KEY = b"nightcast.inputs"


@dataclass(frozen=True)
class Window:
    """The ``updated_at`` range one extract reads; ``start`` None means from the beginning."""

    mode: str
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class ExtractResult:
    """One landing. ``rows``: rows landed; ``source_rows``: what the source offered (the
    records its files hold, counted apart from the parser, or the rows the query
    returned), where the night's books start; ``inputs``: the files or query read."""

    source: str
    table: str
    run_date: date
    window: Window
    rows: int
    path: Location
    seconds: float
    source_rows: int | None = None
    inputs: tuple[str, ...] = ()

    @property
    def offered(self) -> int:
        return self.rows if self.source_rows is None else self.source_rows


class IntakeError(ValueError, DeterministicError):
    """A source's records cannot all be accounted for: the night stops, nothing is loaded.

    The message names the source, table and file (line, column, value where known).
    """

    rerun_from = "extract"

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.sources = (source,)


def landing_path(lake: Location | Path, source: str, table: str, run_date: date) -> Location:
    """The landing of one table for one night: a partition folder (it names the landing
    in ``ops.extract_windows``, logs and quarantine entries)."""
    return location(lake) / "raw" / source / table / f"date={run_date.isoformat()}"


def landed_parts(folder: Location) -> list[Location]:
    """Every part of the landing at ``folder``, in part order, as its manifest names them
    ([] when no extract of this night ever finished)."""
    return partition_parts(folder)


def read_landed(folder: Location) -> pa.Table:
    """All rows of one landing (every part), one row per source row as landed."""
    parts = landed_parts(folder)
    if not parts:
        raise FileNotFoundError(f"no landing at {folder}: rerun the extract task first")
    return pa.concat_tables([p.read_parquet() for p in parts])


def publish_parts(folder: Location, tmps: list[Path]) -> list[Location]:
    """Publish finished local parts as the landing at ``folder``, replacing it whole.

    The parts are written under names of this attempt, then the manifest naming them
    (the commit), then earlier attempts' parts are deleted. A writer killed at any
    point leaves the previous landing readable, never a mix of two attempts.
    """
    attempt = new_attempt()
    names = [f"part-{i}-{attempt}.parquet" for i in range(len(tmps))]
    for tmp, name in zip(tmps, names, strict=True):
        (folder / name).put_file(tmp, fresh_name=True)
    commit_partition(folder, names)
    return [folder / name for name in names]
