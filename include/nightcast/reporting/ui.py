"""The web app behind the Nightcast page of the Airflow UI (mounted at ``/nightcast``).

``plugins/nightcast_ui.py`` mounts it on Airflow's API server and adds the
"Nightcast" entry to the UI's navigation, which shows ``/nightcast/`` in a frame.

Routes, all read-only:

- ``/``: the page (:mod:`nightcast.reporting.page`) over the latest nights;
- ``/nights/D/report``: night D's HTML report, from ``NIGHTCAST_REPORTS_URL``;
- ``/nights/D/dq/<path>``: night D's gate page (``index.html``) and GX Data Docs
  (``gx/...``), from the lake. Both stores may be S3 buckets that no browser can
  reach: the API server reads them with the pipeline's own credentials.

Airflow does not authenticate a plugin's app for it: every route here depends on
Airflow's own ``requires_access_dag`` (read access to the nightly DAG's runs), which
resolves the caller from the UI's session cookie or an ``Authorization: Bearer``
token through the configured auth manager. Anonymous callers get 401, callers the
auth manager denies 403.
"""

from __future__ import annotations

import mimetypes
from datetime import date, datetime
from html import escape

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, Response

from nightcast.config import SettingError, Settings, get_settings
from nightcast.monitoring.alerts import NIGHTLY_DAG_ID
from nightcast.reporting.overview import DQ, REPORT, NotServed, load_overview, night_file
from nightcast.reporting.page import render_page
from nightcast.storage import StorageError
from nightcast.warehouse.base import WarehouseUnavailableError

URL_PREFIX = "/nightcast"


def _problem(status: int, title: str, detail: str) -> HTMLResponse:
    """A short page that names what is wrong (and no traceback)."""
    return HTMLResponse(
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Nightcast: "
        f"{escape(title)}</title></head><body><h1>Nightcast: {escape(title)}</h1>"
        f"<p id='problem'>{escape(detail)}</p></body></html>",
        status_code=status,
    )


def _settings() -> Settings | HTMLResponse:
    try:
        return get_settings()
    except SettingError as err:
        return _problem(500, "settings are invalid", str(err))


def _file(run_date: date, kind: str, path: str = "") -> Response:
    settings = _settings()
    if isinstance(settings, HTMLResponse):
        return settings
    try:
        target = night_file(settings, run_date, kind, path)
        body = target.read_bytes()
    except NotServed as err:
        return _problem(404, "no such page", str(err))
    except StorageError as err:
        return _problem(503, "the store cannot be read", str(err))
    media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return Response(body, media_type=media)


def create_app() -> FastAPI:
    """The app; every route requires read access to the nightly DAG's runs."""
    reader = requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=NIGHTLY_DAG_ID)
    app = FastAPI(
        title="Nightcast",
        dependencies=[Depends(reader)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        settings = _settings()
        if isinstance(settings, HTMLResponse):
            return settings
        try:
            overview = load_overview(settings)
        except (WarehouseUnavailableError, StorageError) as err:
            return _problem(503, "the warehouse cannot be read", str(err))
        return HTMLResponse(render_page(overview, datetime.now()))

    @app.get("/nights/{run_date}/report")
    def report(run_date: date) -> Response:
        return _file(run_date, REPORT)

    @app.get("/nights/{run_date}/dq/{path:path}")
    def quality(run_date: date, path: str) -> Response:
        return _file(run_date, DQ, path)

    return app
