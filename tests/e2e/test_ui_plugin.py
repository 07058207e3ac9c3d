"""End to end: the Nightcast page of the Airflow UI, served by a real ``airflow api-server``.

One API server for the module (SQLite metadata, the simple auth manager with a known
viewer login), over the warehouse of real nights that ``ui_world`` built
(tests/_ui_world.py). The page must refuse anonymous callers, and a logged-in
browser (headless Chromium, the UI's own session cookie) must see the numbers the
warehouse holds, open the night's report and GX Data Docs through the page's
authenticated routes, and find the page under the UI's "Nightcast" entry.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from _chromium import Browser
from _ui_world import BLANK_FIRST, FIRST, HELD_BACK, SECOND, UiWorld

from nightcast.warehouse.base import open_warehouse

pytestmark = pytest.mark.e2e

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
USER = "oncall"  # a viewer: reading the nightly DAG's runs is all the page needs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@dataclass
class Server:
    base: str
    token: str
    env: dict[str, str]


def _airflow_env(world: UiWorld, tmp: Path, port: int) -> dict[str, str]:
    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps({USER: secrets.token_urlsafe(12)}))
    return {
        **os.environ,
        **world.env,
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
    }


@pytest.fixture(scope="module")
def server(ui_world: UiWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("api-server")
    port = _free_port()
    env = _airflow_env(ui_world, tmp, port)
    log_path = tmp / "api-server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 240
            status = 0
            while time.monotonic() < deadline and proc.poll() is None and status != 200:
                try:
                    status, _ = _get(f"{base}/api/v2/version")
                except OSError:
                    time.sleep(2)
            assert status == 200, log_path.read_text()[-3000:]
            password = json.loads(
                Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text()
            )[USER]
            req = urllib.request.Request(
                f"{base}/auth/token",
                data=json.dumps({"username": USER, "password": password}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(req, timeout=60) as resp:
                token = json.loads(resp.read())["access_token"]
            yield Server(base, token, env)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


def sql(world: UiWorld, text: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with open_warehouse(world.settings.warehouse_url, ensure=False) as wh:
        return wh.fetchall(text, params or [])


class Page(HTMLParser):
    """The night rows (``data-night`` → ``data-field`` → text), ids and links of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self.by_id: dict[str, str] = {}
        self.fields: dict[str, str] = {}
        self.links: dict[str, list[tuple[str, str]]] = {}
        self._night: str | None = None
        self._open: list[tuple[dict[str, str | None], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-night"):
            self._night = a["data-night"]
            self.rows[str(self._night)] = {}
        if tag == "a" and self._night and a.get("href"):
            self.links.setdefault(self._night, []).append((str(a["href"]), ""))
        if tag not in ("meta", "br", "link", "img", "input", "hr"):
            self._open.append((a, []))

    def handle_data(self, data: str) -> None:
        for _, parts in self._open:
            parts.append(data)
        if self._night and self.links.get(self._night) and self._open:
            href, text = self.links[self._night][-1]
            if not text:
                self.links[self._night][-1] = (href, data.strip())

    def handle_endtag(self, tag: str) -> None:
        if not self._open:
            return
        a, parts = self._open.pop()
        text = " ".join("".join(parts).split())
        if a.get("id"):
            self.by_id[str(a["id"])] = text
        field = a.get("data-field")
        if field and self._night and tag == "td":
            self.rows[self._night][str(field)] = text
        elif field:
            self.fields[str(field)] = text
        if tag == "tr":
            self._night = None


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def test_airflow_plugins_lists_the_nightcast_plugin(ui_world: UiWorld, tmp_path: Path) -> None:
    env = _airflow_env(ui_world, tmp_path, 8080)
    done = subprocess.run(
        [AIRFLOW, "plugins", "-o", "json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    plugins = json.loads(done.stdout[done.stdout.index("[") :])
    (ours,) = [p for p in plugins if p["name"] == "nightcast"]
    assert ours["source"] == "$PLUGINS_FOLDER/nightcast_ui.py"
    assert [(a["url_prefix"], a["name"]) for a in ours["fastapi_apps"]] == [
        ("/nightcast", "Nightcast")
    ]
    (view,) = ours["external_views"]
    assert (view["name"], view["href"], view["url_route"], view["destination"]) == (
        "Nightcast",
        "nightcast/",
        "nightcast",
        "nav",
    )


def test_anonymous_and_forged_callers_are_refused(server: Server) -> None:
    for path in (
        "/nightcast/",
        f"/nightcast/nights/{FIRST}/report",
        f"/nightcast/nights/{FIRST}/dq/gx/index.html",
    ):
        status, body = _get(server.base + path)
        assert status == 401 and "Not authenticated" in body, (path, status, body[:300])
        assert "nightly report" not in body.lower()
    # A token signed with another secret is no login either.
    import jwt

    forged = jwt.encode({"sub": USER, "role": "admin"}, secrets.token_hex(64), algorithm="HS512")
    status, body = _get(server.base + "/nightcast/", forged)
    assert status in (401, 403) and 'id="nights"' not in body, (status, body[:300])
    # The same request with the real login is served.
    status, body = _get(server.base + "/nightcast/", server.token)
    assert status == 200 and 'id="nights"' in body
    # The UI lists the page (what its navigation is built from).
    status, body = _get(server.base + "/api/v2/plugins", server.token)
    assert status == 200
    (ours,) = [p for p in json.loads(body)["plugins"] if p["name"] == "nightcast"]
    assert ours["external_views"][0]["url_route"] == "nightcast"


def test_a_logged_in_browser_sees_what_the_warehouse_holds(
    server: Server, browser: Browser, ui_world: UiWorld, tmp_path: Path
) -> None:
    # Without the UI's session cookie the browser gets the refusal, not the page.
    browser.goto(server.base + "/nightcast/")
    refused = browser.wait_for("document.body && document.body.innerText")
    assert "Not authenticated" in refused and "is 7am safe" not in refused

    browser.set_cookie("_token", server.token, server.base)
    browser.goto(server.base + "/nightcast/")
    html = browser.wait_for(
        "document.querySelector('#nights') ? document.documentElement.outerHTML : null"
    )
    page = parse(html)
    browser.screenshot(tmp_path / "nightcast.png")

    runs = sql(ui_world, "select run_date, status, model_version from forecast.runs")
    assert sorted(page.rows) == sorted(d.isoformat() for d, _, _ in runs)
    for day, status, model in runs:
        row = page.rows[day.isoformat()]
        assert row["status"] == status and row["model"] == (model or "—"), row
        total, failed, critical = sql(
            ui_world,
            "select count(*), count(*) filter (where not success), "
            "count(*) filter (where not success and severity = 'critical') "
            "from ops.dq_results where run_date = ?",
            [day],
        )[0]
        assert row["gate"] == f"{total - failed}/{total} passed, {critical} critical", row
        (quarantined, held) = sql(
            ui_world,
            "select count(distinct row_number), coalesce(bool_or(held_back), false) "
            "from ops.quarantine where run_date = ?",
            [day],
        )[0]
        assert row["quarantined"] == f"{quarantined:,}" + (" (held back)" if held else ""), row
    assert page.rows[FIRST.isoformat()]["quarantined"] == str(BLANK_FIRST)
    assert page.rows[HELD_BACK.isoformat()]["status"] == "failed"
    assert page.rows[HELD_BACK.isoformat()]["gate"].endswith(" critical")
    assert not page.rows[HELD_BACK.isoformat()]["gate"].endswith(" 0 critical")

    # What BI sees: the freshness view's flag and reason, and the run it serves.
    (stale, reason) = sql(ui_world, "select is_stale, stale_reason from marts.forecast_freshness")[
        0
    ]
    verdict = page.by_id["verdict"]
    assert stale and verdict.startswith(f"BI serves run {SECOND} (published ")
    assert verdict.endswith(f"STALE: {' '.join(reason.split())}"), verdict

    # The model in service and its holdout accuracy against the best baseline.
    (champion,) = sql(
        ui_world, "select model_version from forecast.model_registry where status = 'champion'"
    )[0]
    assert page.fields["champion"] == champion
    versus = page.by_id["champion-vs-baseline"]
    assert versus.startswith("WAPE ") and " vs " in versus and " than " in versus, versus
    assert page.rows[SECOND.isoformat()]["vs-baseline"] == versus

    # Live accuracy: the monitor's pooled WAPE 1-7 days ahead of the second night.
    (abs_error, actual) = sql(
        ui_world,
        "select sum(abs_error), sum(actual_quantity) from ops.forecast_accuracy "
        "where evaluation_date = ? and segment_type = 'all' and horizon_max <= 7",
        [SECOND],
    )[0]
    assert page.rows[SECOND.isoformat()]["wape"].startswith(f"{abs_error / actual:.1%} (")

    # The night's report and GX Data Docs open through the page's own routes.
    links = dict((text, href) for href, text in page.links[FIRST.isoformat()])
    assert links == {
        "report": f"nights/{FIRST}/report",
        "gate": f"nights/{FIRST}/dq/index.html",
        "Data Docs": f"nights/{FIRST}/dq/gx/index.html",
    }
    browser.goto(f"{server.base}/nightcast/{links['report']}")
    run_date = browser.wait_for(
        "(document.querySelector('[data-metric=runDate]') || {}).textContent"
    )
    assert run_date == FIRST.isoformat()
    browser.goto(f"{server.base}/nightcast/{links['Data Docs']}")
    sheets = browser.wait_for(
        "document.readyState === 'complete' && document.title.includes('Data Docs') "
        "&& document.styleSheets.length"
    )
    assert sheets >= 1  # GX's stylesheets came through the same authenticated route
    # Its pages per suite too (GX links them from a table its scripts build).
    gx = ui_world.settings.lake / "dq_docs" / f"date={FIRST}" / "gx"
    (suite_page,) = gx.files("validations/*/order_lines.html", recursive=True)
    status, body = _get(
        f"{server.base}/nightcast/nights/{FIRST}/dq/gx/{suite_page.relative_to(gx)}", server.token
    )
    assert status == 200 and body == suite_page.read_text()


def test_the_ui_navigation_embeds_the_page(server: Server, browser: Browser) -> None:
    browser.set_cookie("_token", server.token, server.base)
    browser.goto(server.base + "/plugin/nightcast")
    nav = browser.wait_for(
        "[...document.querySelectorAll('a')].filter(a => "
        "(a.getAttribute('href') || '').endsWith('plugin/nightcast')).length",
        timeout=120,
    )
    assert nav >= 1
    framed = browser.wait_for(
        "(() => { const f = document.querySelector('iframe');"
        " const d = f && f.contentDocument;"
        " return d && d.querySelector('#nights') ? d.location.pathname : null })()",
        timeout=120,
    )
    assert framed == "/nightcast/"
