"""What the Nightcast page of the Airflow UI shows: the latest nights, read from the warehouse.

One :class:`NightView` per night (newest first): how the run ended, what the load
took in and quarantined, the quality gate, accuracy, drift, the model that served
and which of the night's pages exist. Above them, :class:`Overview` says what BI
sees right now (``marts.forecast_freshness``, the served run) and which model is
in service. Every number comes from the functions the summary, the nightly report,
the monitor and the registry already use; nothing is re-derived here.

Files (the nightly report, the gate page, GX Data Docs) are resolved by
:func:`night_file`, which only ever names a file inside one night's folder.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import date

import pandas as pd

from nightcast.config import GX_DOCS, Settings
from nightcast.forecasting.registry import (
    Backtest,
    as_date,
    backtest_of,
    champion,
    registry_rows,
)
from nightcast.monitoring.accuracy import (
    BUCKET_DAYS,
    forecasts_scored,
    pooled_wape,
    stored_accuracy,
)
from nightcast.reporting import report_path
from nightcast.reporting.data import (
    dq_results,
    exists,
    feature_drift,
    freshness,
    quarantine_counts,
    schema_drift,
    served_run,
)
from nightcast.reporting.summary import Checks, Intake, Night, checks, intake, nights
from nightcast.storage import Location
from nightcast.warehouse.base import Warehouse, describe_url, open_warehouse

NIGHTS_SHOWN = 7


@dataclass(frozen=True)
class Model:
    """A registered model version and its weekly evaluation (None: never evaluated)."""

    version: str
    status: str
    trained_for_run: date | None
    fallback_until: date | None
    status_reason: str
    backtest: Backtest | None


@dataclass(frozen=True)
class NightView:
    """One night as the page shows it."""

    night: Night
    intake: Intake  # the load's counts (zeros when nothing was loaded)
    checks: Checks
    failed_checks: pd.DataFrame  # ops.dq_results rows of D that failed
    quarantine: pd.DataFrame  # one row per source, table and held_back (quarantine_counts)
    feature_drift: pd.DataFrame | None  # ops.feature_drift rows of D; None: no table
    schema_drift: pd.DataFrame  # ops.schema_drift rows of D
    wape_1_7: float | None  # pooled WAPE at 1-7 days ahead, as the monitor of D scored it
    scored: int  # forecasts behind it
    model: Model | None  # the registry row of the model that forecast D
    report: bool = False  # whether the nightly report exists
    gate_page: bool = False  # whether the gate's own page exists
    data_docs: bool = False  # whether the GX Data Docs site exists

    @property
    def quarantined(self) -> int:
        """Input rows rejected by the cleaner on night D (ops.quarantine)."""
        return int(self.quarantine["rows"].sum()) if len(self.quarantine) else 0

    @property
    def held_back(self) -> bool:
        """The gate stopped the night: none of its rows was loaded."""
        return bool(len(self.quarantine)) and bool(self.quarantine["held_back"].any())

    @property
    def drifted(self) -> pd.DataFrame:
        """Features whose drift status is not 'ok' (warn or breach), worst first."""
        fd = self.feature_drift
        if fd is None:
            return pd.DataFrame(columns=["model_version", "feature", "psi", "ks", "status"])
        return fd[fd["status"].astype(str) != "ok"]


@dataclass(frozen=True)
class Overview:
    """The page: what BI sees now, the model in service, and the latest nights."""

    warehouse: str
    is_stale: bool | None
    stale_reason: str
    bi_run: Night | None  # the published run BI serves
    champion: Model | None
    fallbacks: list[Model]  # previous champions a rollback can return to
    nights: list[NightView]  # newest first
    total_nights: int


def _models(wh: Warehouse) -> dict[str, Model]:
    if not exists(wh, "forecast.model_registry"):
        return {}
    out: dict[str, Model] = {}
    for r in registry_rows(wh):
        out[str(r["model_version"])] = Model(
            version=str(r["model_version"]),
            status=str(r["status"]),
            trained_for_run=as_date(r["trained_for_run"]),
            fallback_until=as_date(r["fallback_until"]),
            status_reason=str(r["status_reason"] or ""),
            backtest=backtest_of(r["metrics"]),
        )
    return out


def night_view(wh: Warehouse, night: Night, models: dict[str, Model]) -> NightView:
    """What the warehouse says about one night (:func:`with_pages` adds its files)."""
    day = night.run_date
    dq = dq_results(wh, day)
    accuracy = stored_accuracy(wh, day)
    return NightView(
        night=night,
        intake=intake(wh, day),
        checks=checks(wh, day),
        failed_checks=dq[~dq["success"].astype(bool)],
        quarantine=quarantine_counts(wh, day),
        feature_drift=feature_drift(wh, day),
        schema_drift=schema_drift(wh, day),
        wape_1_7=pooled_wape(accuracy, BUCKET_DAYS),
        scored=forecasts_scored(accuracy),
        model=models.get(night.model_version or ""),
    )


def with_pages(view: NightView, settings: Settings) -> NightView:
    """``view`` with which of the night's pages exist (the report store and the lake)."""
    day = view.night.run_date
    docs = settings.gate_docs(day)
    return dataclasses.replace(
        view,
        report=report_path(settings, day).exists(),
        gate_page=(docs / "index.html").exists(),
        data_docs=(docs / GX_DOCS / "index.html").exists(),
    )


def load_overview(settings: Settings, shown: int = NIGHTS_SHOWN) -> Overview:
    """Read the page's data: the ``shown`` latest nights, newest first."""
    where = describe_url(settings.warehouse_url)
    with open_warehouse(settings.warehouse_url, ensure=False) as wh:
        runs = nights(wh)
        if runs is None:
            return Overview(where, None, "no night has run yet", None, None, [], [], 0)
        stale, reason = freshness(wh)
        served = served_run(wh)
        models = _models(wh)
        current = champion(wh) if models else None
        views = [night_view(wh, n, models) for n in reversed(runs[-shown:])]
    # The stores are asked once the warehouse (a single-writer DuckDB file) is closed.
    views = [with_pages(v, settings) for v in views]
    return Overview(
        warehouse=where,
        is_stale=stale,
        stale_reason=reason,
        bi_run=next((n for n in runs if n.run_date == served), None),
        champion=models.get(current[0]) if current else None,
        fallbacks=[m for m in models.values() if m.status == "fallback"],
        nights=views,
        total_nights=len(runs),
    )


# ------------------------------------------------------------------------ files
REPORT = "report"
DQ = "dq"
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=-]*")


class NotServed(LookupError):
    """A path the page does not serve: outside a night's folder, or not there."""


def night_file(settings: Settings, run_date: date, kind: str, path: str = "") -> Location:
    """A file of night D the page links to, confined to that night's folder.

    ``kind`` REPORT: the nightly report (``path`` ignored); DQ: a file under the night's
    gate folder (``index.html`` the gate page, ``gx/...`` the GX Data Docs site and its
    assets). A path with an empty, hidden or parent segment is refused before any
    store is asked, so no request reaches another night, the lake or the models.
    """
    if kind == REPORT:
        target = report_path(settings, run_date)
    elif kind == DQ:
        parts = path.split("/") if path else ["index.html"]
        if not all(_SEGMENT.fullmatch(p) and ".." not in p for p in parts):
            raise NotServed(f"not a file of night {run_date}'s gate pages: {path!r}")
        target = settings.gate_docs(run_date)
        for p in parts:
            target = target / p
    else:
        raise NotServed(f"unknown kind of page {kind!r}")
    if not target.is_file():
        raise NotServed(f"{target} does not exist")
    return target
