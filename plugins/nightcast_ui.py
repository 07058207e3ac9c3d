"""Airflow plugin: the Nightcast page ("is 7am safe?") in the Airflow UI.

A "Nightcast" entry in the UI's navigation shows, in a frame, the page that the API
server serves at ``/nightcast/``: ``nightcast.reporting.ui`` builds that app, and the
page's logic and tests live in the ``nightcast`` package.

Every Airflow process imports the plugins folder, each task's process included;
only the API server serves the page. So the app (FastAPI, Airflow's API security,
the warehouse readers) is built on the first request it gets, and importing this
module costs nothing else.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

FACTORY = "nightcast.reporting.ui:create_app"


class NightcastPageApp:
    """An ASGI app that builds ``FACTORY``'s app on its first request, then forwards to it."""

    def __init__(self, factory: str) -> None:
        self.factory = factory
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            module, name = self.factory.split(":")
            self._app = getattr(importlib.import_module(module), name)()
        await self._app(scope, receive, send)


class NightcastPlugin(AirflowPlugin):
    name = "nightcast"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": NightcastPageApp(FACTORY), "url_prefix": "/nightcast", "name": "Nightcast"}
    ]
    # href without a leading slash: relative to the UI's base URL, so a path prefix works.
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Nightcast",
            "href": "nightcast/",
            "url_route": "nightcast",
            "destination": "nav",
        }
    ]
