"""Batches of series for the mapped nightly forecast: plan, part files, completeness.

The nightly forecast of run date D is split into batches of at most
``NIGHTCAST_FORECAST_BATCH_SERIES`` series. Everything a batch needs is a file
under the lake, never data in XCom:

``lake/forecast/date=D/``
    ``_plan.json``          the plan: pinned model version(s) and the series of each batch
    ``part-00000.parquet``  one row per item, location and forecast date of batch 0
    ``shadow/part-*.parquet`` the challenger's forecast in shadow mode, same grain
``lake/forecast_input/date=D/``
    ``history.parquet``     input snapshot: one row per active series and day with activity
    ``future.parquet``      one row per series and horizon day (known-in-advance features)

Files whose names start with ``_`` are ignored by Parquet dataset readers, so
the plan can sit next to the parts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nightcast.forecasting import ForecastModel
from nightcast.forecasting.persistence import META_FILE, model_from_files, stored_files
from nightcast.forecasting.registry import RegistryError, files_checksum
from nightcast.storage import Location, location

PART_GLOB = "part-*.parquet"
# Seconds a batch spent, kept in its part's Parquet metadata for the load summary.
SECONDS_KEY = b"nightcast.seconds"


@dataclass(frozen=True)
class ForecastPlan:
    """What every batch of run D uses: one model version, one input snapshot, its series."""

    run_date: str
    model_version: str
    artifact_path: str
    artifact_checksum: str
    horizon_days: int
    history_path: str
    future_path: str
    batches: list[list[str]]
    shadow_version: str | None = None
    shadow_artifact_path: str | None = None
    history_rows: int = 0
    trained: bool = False

    @property
    def series_count(self) -> int:
        return sum(len(b) for b in self.batches)


def forecast_dir(lake: Location, run_date: date) -> Location:
    return lake / "forecast" / f"date={run_date.isoformat()}"


def input_dir(lake: Location, run_date: date) -> Location:
    return lake / "forecast_input" / f"date={run_date.isoformat()}"


def plan_path(lake: Location, run_date: date) -> Location:
    return forecast_dir(lake, run_date) / "_plan.json"


def part_path(folder: Location, batch: int) -> Location:
    """``folder/part-<batch>.parquet``, zero-padded so parts sort in batch order."""
    return folder / f"part-{batch:05d}.parquet"


def shadow_dir(lake: Location, run_date: date) -> Location:
    return forecast_dir(lake, run_date) / "shadow"


def split_series(series: Iterable[str], batch_size: int) -> list[list[str]]:
    """Sorted distinct series ids cut into consecutive batches of at most ``batch_size``.

    Deterministic: the same series give the same batches on every rerun, so a
    rerun of one mapped index forecasts the same series it did the first time.
    """
    if batch_size < 1:
        raise ValueError(
            f"NIGHTCAST_FORECAST_BATCH_SERIES must be a positive number of series, got {batch_size}"
        )
    ids = sorted(set(series))
    return [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]


def remove_stale_parts(folder: Location, keep: int) -> list[Location]:
    """Delete ``part-<k>`` files with ``k >= keep`` (left by an earlier run with more batches)."""
    stale = []
    for path in folder.files(PART_GLOB):
        index = path.name.removesuffix(".parquet").removeprefix("part-")
        if not index.isdigit() or int(index) >= keep:
            path.delete()
            stale.append(path)
    return stale


def write_plan(path: Location, plan: ForecastPlan) -> None:
    path.write_text(json.dumps(asdict(plan), indent=1))


def read_plan(path: Location) -> ForecastPlan:
    try:
        raw = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no forecast plan {path}: clear the forecast_plan task (with downstream) and rerun it"
        ) from None
    return ForecastPlan(**json.loads(raw))


def write_snapshot(frame: pd.DataFrame, path: Location) -> None:
    """Write one input snapshot whole (a killed task leaves the previous one)."""
    with path.staged_file() as tmp:
        frame.to_parquet(tmp, index=False)


def load_pinned_model(path: str, checksum: str | None, version: str) -> ForecastModel:
    """The model the plan pinned; refuses an artifact whose checksum changed since.

    The artifact is read once: the bytes checked are the bytes loaded.
    """
    files = stored_files(location(path))
    if checksum is not None and files_checksum(files) != checksum:
        raise RegistryError(
            f"model {version} at {path} changed since forecast_plan pinned it (checksum mismatch): "
            "clear forecast_plan with downstream so every batch uses one model"
        )
    if META_FILE not in files:
        raise RegistryError(f"model {version} at {path} is not a saved model (no {META_FILE})")
    return model_from_files(files.__getitem__)


def write_part(table: pa.Table, path: Location, seconds: float) -> None:
    """Write one batch's part whole (a killed task never leaves half a file)."""
    meta = {**(table.schema.metadata or {}), SECONDS_KEY: f"{seconds:.3f}".encode()}
    path.write_parquet(table.replace_schema_metadata(meta))


def _series_rows(table: pa.Table) -> dict[str, int]:
    keys = zip(
        table.column("item_id").to_pylist(), table.column("location_id").to_pylist(), strict=True
    )
    counts: dict[str, int] = {}
    for item, loc in keys:
        key = f"{item}|{loc}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def _check_part(
    table: pa.Table, expected: list[str], horizon: int, version: str | None, where: str
) -> None:
    versions = set(table.column("model_version").to_pylist())
    if version is not None and versions - {version}:
        raise ValueError(
            f"{where} was forecast by model(s) {sorted(versions)}, but the plan pins {version}: "
            "clear forecast_plan with downstream to forecast every batch again"
        )
    counts = _series_rows(table)
    missing = sorted(set(expected) - counts.keys())
    extra = sorted(counts.keys() - set(expected))
    wrong = sorted(k for k in expected if k in counts and counts[k] != horizon)
    if missing or extra or wrong:
        raise ValueError(
            f"{where} does not hold its planned series: {len(missing)} missing {missing[:3]}, "
            f"{len(extra)} unplanned {extra[:3]}, {len(wrong)} without {horizon} rows "
            f"{[(k, counts[k]) for k in wrong[:3]]}. Clear that map index of forecast_batch to rerun it"
        )


def read_parts(folder: Location, plan: ForecastPlan, version: str | None) -> tuple[pa.Table, float]:
    """All parts of ``plan`` as one table, checked: every planned series exactly once, H rows each.

    ``version`` is the model every part must come from. Returns the table (one
    row per item, location and forecast date) and the batches' total seconds.
    """
    tables, seconds = [], 0.0
    n = len(plan.batches)
    for k, expected in enumerate(plan.batches):
        path = part_path(folder, k)
        where = f"forecast batch {k} of {n} ({path})"
        try:
            table = path.read_parquet()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{where} is missing for {plan.run_date}: clear map index {k} of forecast_batch "
                "(or the whole task) and rerun it"
            ) from None
        seconds += float((table.schema.metadata or {}).get(SECONDS_KEY, b"0"))
        _check_part(table, expected, plan.horizon_days, version, where)
        tables.append(table.replace_schema_metadata(None))
    return pa.concat_tables(tables), seconds


def snapshot_inputs(lake: Location, run_date: date) -> list[dict[str, object]]:
    """The forecast's input snapshot files of run D with rows and sha256, for the audit trail."""
    from nightcast.audit.records import file_sha256

    out: list[dict[str, object]] = []
    for name in ("history", "future"):
        path = input_dir(lake, run_date) / f"{name}.parquet"
        if path.is_file():
            with path.open_input() as f:
                rows = pq.read_metadata(f).num_rows
            out.append(
                {
                    "source": "forecast_input",
                    "table": name,
                    "path": str(path),
                    "rows": rows,
                    "sha256": file_sha256(path),
                }
            )
    return out
