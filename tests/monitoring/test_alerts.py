"""Alerts: webhook, email, ops.alerts, failure callback and the publish deadline."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nightcast import cli, orchestration
from nightcast.cleaning.clean import SchemaDriftError
from nightcast.config import Settings, get_settings
from nightcast.monitoring import alerts
from nightcast.quality.results import DataQualityError
from nightcast.warehouse.base import open_warehouse

D = date(2025, 5, 1)
LOGICAL = datetime(2025, 5, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("NIGHTCAST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_PATH", str(tmp_path / "wh.duckdb"))
    monkeypatch.delenv("NIGHTCAST_WAREHOUSE_URL", raising=False)
    monkeypatch.setenv("NIGHTCAST_TIMEZONE", "UTC")
    for var in (
        "NIGHTCAST_ALERT_WEBHOOK_URL",
        "NIGHTCAST_ALERT_EMAIL_TO",
        "NIGHTCAST_SMTP_HOST",
        "NIGHTCAST_ALERT_CONN_ID",
        "NIGHTCAST_PUBLISH_DEADLINE",
    ):
        monkeypatch.delenv(var, raising=False)
    return get_settings()


def rows(settings: Settings) -> list[dict[str, Any]]:
    with open_warehouse(settings.warehouse_url) as wh:
        df = wh.df("select * from ops.alerts order by raised_at")
    return list(df.to_dict("records"))


class Hook:
    def __init__(self, status: int) -> None:
        self.status = status
        self.bodies: list[dict[str, Any]] = []
        self.port = 0


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hook]:
    hook = Hook(200)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers["Content-Length"])
            hook.bodies.append(json.loads(self.rfile.read(size)))
            self.send_response(hook.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(
        "NIGHTCAST_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/hook"
    )
    yield hook
    server.shutdown()
    server.server_close()


def failed(error: str = "boom: column x\nTraceback line 2") -> alerts.Alert:
    return alerts.task_failed_alert("erp_forecast_nightly", "load", D, LOGICAL.isoformat(), error)


def test_message_names_everything() -> None:
    text = failed().message()
    for part in (
        "DAG: erp_forecast_nightly",
        "Task: load",
        "2025-05-01T02:00:00+00:00",
        "Error: boom: column x",
        "airflow tasks clear erp_forecast_nightly -t load -d "
        "-s 2025-05-01T02:00:00+00:00 -e 2025-05-01T02:00:00+00:00 -y",
        "Grid → erp_forecast_nightly",
        "Clear → with Downstream",
    ):
        assert part in text
    assert "Traceback line 2" not in text


# The nightly DAG's shape with two sources whose ids share a prefix: task -> all downstream.
_AFTER_GATE = {"load", "dbt_build", "publish", "report"}
GRAPH: dict[str, set[str]] = {
    "start_run": {"extract_demo", "extract_demo_eu", "clean_demo", "clean_demo_eu", "validate"}
    | _AFTER_GATE,
    "extract_demo": {"clean_demo", "validate"} | _AFTER_GATE,
    "extract_demo_eu": {"clean_demo_eu", "validate"} | _AFTER_GATE,
    "clean_demo": {"validate"} | _AFTER_GATE,
    "clean_demo_eu": {"validate"} | _AFTER_GATE,
    "validate": set(_AFTER_GATE),
    "load": {"dbt_build", "publish", "report"},
    "dbt_build": {"publish", "report"},
    "publish": {"report"},
    "report": set(),
}


def gate_failure(*sources: str) -> DataQualityError:
    return DataQualityError("Data-quality gate failed: 1 critical check(s) failed.", [], sources)


def cli_line(hint: str) -> str:
    (line,) = [x for x in hint.splitlines() if x.startswith("Rerun (CLI): ")]
    return line.removeprefix("Rerun (CLI): ")


def test_gate_failure_reruns_from_the_extract_of_the_failed_source() -> None:
    hint = alerts.task_rerun_hint(
        "erp_forecast_nightly", "validate", LOGICAL.isoformat(), gate_failure("demo_eu"), GRAPH
    )
    assert cli_line(hint) == (
        "airflow tasks clear erp_forecast_nightly -t extract_demo_eu -d "
        "-s 2025-05-01T02:00:00+00:00 -e 2025-05-01T02:00:00+00:00 -y"
    )
    assert "clearing validate alone re-reads the same data and fails again" in hint
    assert "task extract_demo_eu → Clear → with Downstream" in hint
    assert "Note" not in hint  # nothing else contains 'extract_demo_eu'


def test_substring_match_beyond_the_downstream_is_said() -> None:
    # -t extract_demo also matches extract_demo_eu, whose extract and clean are not
    # downstream of extract_demo: the hint must not pretend the command is exact.
    hint = alerts.task_rerun_hint(
        "erp_forecast_nightly",
        "clean_demo",
        LOGICAL.isoformat(),
        SchemaDriftError("x", "demo"),
        GRAPH,
    )
    assert "-t extract_demo -d" in cli_line(hint)
    assert "also clears clean_demo_eu, extract_demo_eu" in hint
    assert "The UI clears exactly" in hint
    both = alerts.task_rerun_hint(
        "erp_forecast_nightly",
        "validate",
        LOGICAL.isoformat(),
        gate_failure("demo", "demo_eu"),
        GRAPH,
    )
    assert cli_line(both).count("airflow tasks clear") == 2 and "Note" not in both
    # 'load' matches 'load_forecasts' in the real DAG, but that one is downstream anyway.
    graph = {**GRAPH, "load": GRAPH["load"] | {"load_forecasts"}, "load_forecasts": {"publish"}}
    assert "Note" not in alerts.task_rerun_hint("d", "load", "L", RuntimeError("x"), graph)


def test_an_ordinary_failure_reruns_the_failed_task() -> None:
    hint = alerts.task_rerun_hint(
        "erp_forecast_nightly", "extract_demo", "L", ConnectionError("refused"), GRAPH
    )
    assert (
        cli_line(hint) == "airflow tasks clear erp_forecast_nightly -t extract_demo -d -s L -e L -y"
    )
    assert "alone" not in hint


def test_webhook_delivery_and_row(settings: Settings, webhook: Hook) -> None:
    done = alerts.raise_alert(get_settings(), failed())  # as a task reads it
    assert done.delivered_to == ("log", "webhook", "table")
    assert len(webhook.bodies) == 1
    text = webhook.bodies[0]["text"]
    assert "erp_forecast_nightly" in text and "Task: load" in text
    assert "2025-05-01" in text and "boom: column x" in text
    assert "airflow tasks clear erp_forecast_nightly -t load -d" in text
    [row] = rows(settings)
    assert row["kind"] == "task_failed" and row["task_id"] == "load"
    assert str(row["run_date"])[:10] == "2025-05-01"
    assert row["delivered_to"] == "log,webhook,table"
    assert row["delivery_errors"] is None
    assert "airflow tasks clear" in row["rerun_hint"]


def test_webhook_error_is_recorded_not_raised(settings: Settings, webhook: Hook) -> None:
    webhook.status = 500
    done = alerts.raise_alert(get_settings(), failed())  # as a task reads it
    assert done.delivered_to == ("log", "table")
    [row] = rows(settings)
    assert row["delivered_to"] == "log,table"
    assert row["delivery_errors"].startswith("webhook:") and "500" in row["delivery_errors"]


def test_webhook_refused_is_recorded(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("NIGHTCAST_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{port}/")
    done = alerts.raise_alert(get_settings(), failed())  # as a task reads it
    assert "webhook" not in done.delivered_to
    assert rows(settings)[0]["delivery_errors"].startswith("webhook:")


class Mailbox:
    """A real SMTP server on loopback (the standard library's, in a thread)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], Any]] = []
        self.port = 0


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    import asyncore
    import email
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import smtpd

    box = Mailbox()

    class Server(smtpd.SMTPServer):
        def process_message(
            self, peer: Any, mailfrom: str, rcpttos: list[str], data: Any, **kw: Any
        ) -> None:
            box.received.append((mailfrom, rcpttos, email.message_from_bytes(data)))

    server = Server(("127.0.0.1", 0), None)
    box.port = server.socket.getsockname()[1]
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            asyncore.loop(timeout=0.05, count=1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield box
    stop.set()
    thread.join(2)
    server.close()


def body(msg: Any) -> str:
    parts = msg.walk() if msg.is_multipart() else [msg]
    return "".join(
        p.get_payload(decode=True).decode() for p in parts if p.get_content_type() == "text/plain"
    )


def test_email_delivery(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, mailbox: Mailbox
) -> None:
    monkeypatch.setenv("NIGHTCAST_ALERT_EMAIL_TO", "oncall@example.com, ops@example.com")
    monkeypatch.setenv("NIGHTCAST_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("NIGHTCAST_SMTP_PORT", str(mailbox.port))
    monkeypatch.setenv("NIGHTCAST_ALERT_EMAIL_FROM", "nightcast@example.com")
    done = alerts.raise_alert(get_settings(), failed())  # as a task reads it
    assert done.delivered_to == ("log", "email", "table")
    assert sorted(to for _, (to,), _ in mailbox.received) == [
        "oncall@example.com",
        "ops@example.com",
    ]
    for sender, _, msg in mailbox.received:
        assert sender == "nightcast@example.com" == msg["From"]
        assert "load" in msg["Subject"] and "2025-05-01" in msg["Subject"]
        assert "airflow tasks clear" in body(msg)

    monkeypatch.setenv("NIGHTCAST_SMTP_PORT", str(free_port()))  # nothing listens there
    done = alerts.raise_alert(get_settings(), failed())
    assert done.delivered_to == ("log", "table")
    assert rows(settings)[-1]["delivery_errors"].startswith("email: ")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_channels_from_an_airflow_apprise_connection(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, webhook: Hook, mailbox: Mailbox
) -> None:
    """NIGHTCAST_ALERT_CONN_ID: the channels listed in an Airflow connection of type
    apprise (the provider's format), each delivered and named on its own."""
    monkeypatch.delenv("NIGHTCAST_ALERT_WEBHOOK_URL")
    hook_url = f"json://127.0.0.1:{webhook.port}/hook?:message=text"
    mail_url = (
        f"mailto://127.0.0.1:{mailbox.port}?from=nc@example.com&to=oncall@example.com&mode=insecure"
    )
    config = [{"path": f"{hook_url}, {mail_url}"}, {"path": f"json://127.0.0.1:{free_port()}/"}]
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTCAST_ALERTS",
        json.dumps({"conn_type": "apprise", "extra": {"config": config}}),
    )
    monkeypatch.setenv("NIGHTCAST_ALERT_CONN_ID", "nightcast_alerts")
    done = alerts.raise_alert(get_settings(), failed())
    assert done.delivered_to == ("log", "nightcast_alerts[0]", "nightcast_alerts[1]", "table")
    assert "Task: load" in webhook.bodies[0]["text"]
    assert [to for _, to, _ in mailbox.received] == [["oncall@example.com"]]
    assert rows(settings)[0]["delivery_errors"].startswith("nightcast_alerts[2]: ")

    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_ALERTS", '{"conn_type": "apprise", "extra": {}}')
    done = alerts.raise_alert(get_settings(), failed())
    assert done.delivered_to == ("log", "table")
    assert "lists no Apprise URL" in done.delivery_errors[0]


def test_on_task_failure_alerts_and_fails_run(
    settings: Settings, webhook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    from nightcast.pipeline.runs import start_run

    start_run(settings, D)
    context = {
        "task_instance": SimpleNamespace(task_id="dbt_build", dag_id="erp_forecast_nightly"),
        "exception": RuntimeError("dbt test failed: not_null_x\nmore"),
        "logical_date": LOGICAL,
    }
    with caplog.at_level("ERROR", logger="nightcast.alerts"):
        orchestration.on_task_failure(context)
    assert "-t dbt_build -d" in caplog.text
    with open_warehouse(settings.warehouse_url) as wh:
        assert wh.fetchone("select status, message from forecast.runs where run_date = ?", [D]) == (
            "failed",
            "dbt_build failed: dbt test failed: not_null_x",
        )
    [row] = rows(settings)
    assert (row["kind"], row["task_id"]) == ("task_failed", "dbt_build")
    assert "dbt test failed: not_null_x" in webhook.bodies[0]["text"]


class FakeTask:
    def __init__(self, task_id: str) -> None:
        self.task_id = task_id

    def get_flat_relative_ids(self, *, upstream: bool = False) -> set[str]:
        assert not upstream
        return GRAPH[self.task_id]


def test_on_task_failure_names_the_extract_to_clear_after_a_gate_failure(
    settings: Settings, webhook: Hook
) -> None:
    context = {
        "task_instance": SimpleNamespace(task_id="validate", dag_id="erp_forecast_nightly"),
        "dag": SimpleNamespace(tasks=[FakeTask(t) for t in GRAPH]),
        "exception": gate_failure("demo"),
        "logical_date": LOGICAL,
    }
    orchestration.on_task_failure(context)
    [row] = rows(settings)
    assert "-t extract_demo -d" in cli_line(row["rerun_hint"])
    assert "also clears clean_demo_eu, extract_demo_eu" in row["rerun_hint"]
    assert "-t extract_demo -d" in webhook.bodies[0]["text"]


def test_on_task_failure_never_raises(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", "nosuch://x")
    orchestration.on_task_failure({"exception": ValueError("x"), "logical_date": LOGICAL})
    orchestration.on_task_failure({})


def publish(settings: Settings, day: date, status: str) -> None:
    with open_warehouse(settings.warehouse_url) as wh:
        wh.execute(
            "insert into forecast.runs (run_date, status, horizon_days, message) values (?, ?, 28, ?)",
            [day, status, "forecast failed: no data\nstack" if status == "failed" else None],
        )


def test_deadline_not_yet_due(settings: Settings) -> None:
    assert alerts.check_deadline(settings, D, datetime(2025, 5, 2, 6, 29, tzinfo=UTC)) is None
    assert rows(settings) == []


def test_deadline_missed_once(settings: Settings) -> None:
    publish(settings, D, "failed")
    now = datetime(2025, 5, 2, 6, 30, tzinfo=UTC)
    alert = alerts.check_deadline(settings, D, now)
    assert alert is not None and alert.kind == "deadline_missed"
    assert "not published by 2025-05-02T06:30:00+00:00" in alert.summary
    assert "forecast failed: no data" in alert.summary
    assert alerts.check_deadline(settings, D, datetime(2025, 5, 2, 7, 0, tzinfo=UTC)) is None
    [row] = rows(settings)
    assert row["kind"] == "deadline_missed" and "airflow tasks clear" in row["rerun_hint"]


def test_deadline_repeats_what_the_failure_alert_said(settings: Settings) -> None:
    publish(settings, D, "failed")
    failed_at_gate = alerts.task_failed_alert(
        "erp_forecast_nightly", "validate", D, LOGICAL.isoformat(), gate_failure("demo"), GRAPH
    )
    alerts.raise_alert(settings, failed_at_gate)
    alert = alerts.check_deadline(settings, D, datetime(2025, 5, 2, 6, 30, tzinfo=UTC))
    assert alert is not None and alert.rerun_hint == failed_at_gate.rerun_hint
    assert "--only-failed" not in alert.rerun_hint  # it would re-check the same rows


def test_deadline_hint_spans_the_local_day_of_the_run_date() -> None:
    hint = alerts.deadline_rerun_hint("erp_forecast_nightly", D, "America/New_York")
    assert cli_line(hint) == (
        "airflow tasks clear erp_forecast_nightly --only-failed "
        "-s 2025-05-01T00:00:00-04:00 -e 2025-05-01T23:59:59-04:00 -y"
    )


def test_deadline_published_no_alert(settings: Settings) -> None:
    publish(settings, D, "published")
    assert alerts.check_deadline(settings, D, datetime(2025, 5, 3, tzinfo=UTC)) is None
    assert rows(settings) == []


def test_deadline_configured_time_and_zone(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NIGHTCAST_PUBLISH_DEADLINE", "07:15")
    monkeypatch.setenv("NIGHTCAST_TIMEZONE", "Europe/Paris")
    s = get_settings()
    assert alerts.deadline_at(s, D).isoformat() == "2025-05-02T07:15:00+02:00"
    assert alerts.check_deadline(s, D, datetime(2025, 5, 2, 5, 14, tzinfo=UTC)) is None
    assert alerts.check_deadline(s, D, datetime(2025, 5, 2, 5, 15, tzinfo=UTC)) is not None
    assert alerts.latest_due_run_date(s, datetime(2025, 5, 2, 5, 14, tzinfo=UTC)) == date(
        2025, 4, 30
    )
    assert alerts.latest_due_run_date(s, datetime(2025, 5, 2, 5, 15, tzinfo=UTC)) == D


def test_cli_deadline_check(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(
            ["deadline-check", "--run-date", "2025-05-01", "--now", "2025-05-02T06:00:00+00:00"]
        )
        == 0
    )
    assert "not yet reached" in capsys.readouterr().out
    assert cli.main(["deadline-check", "--now", "2025-05-02T06:31:00+00:00"]) == 1
    out = capsys.readouterr().out
    assert "run date 2025-05-01: NOT published" in out and "raised now" in out
    assert "already raised" not in out  # the call that raises it does not say "already"
    assert cli.main(["deadline-check", "--now", "2025-05-02T06:45:00+00:00"]) == 1
    out = capsys.readouterr().out
    assert "already raised" in out and "raised now" not in out
    assert len(rows(settings)) == 1
    publish(settings, date(2025, 5, 2), "published")
    assert (
        cli.main(["deadline-check", "--run-date", "2025-05-02", "--now", "2025-05-04T00:00:00"])
        == 0
    )
    assert "published, deadline" in capsys.readouterr().out
