"""Metrics: StatsD lines received on a real UDP socket, and the ``ops.metrics`` rows.

(Named ``test_statsd_metrics`` because ``tests/forecasting/test_metrics.py`` exists and
test basenames must be unique.)
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from nightcast.config import Settings, get_settings
from nightcast.monitoring.metrics import emit, send_statsd
from nightcast.pipeline.runs import record_task
from nightcast.warehouse.base import open_warehouse

D = date(2025, 5, 1)


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3)
    yield sock
    sock.close()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, udp: socket.socket) -> Settings:
    monkeypatch.setenv("NIGHTCAST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_PATH", str(tmp_path / "wh.duckdb"))
    monkeypatch.delenv("NIGHTCAST_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
    monkeypatch.setenv("NIGHTCAST_STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("NIGHTCAST_STATSD_PORT", str(udp.getsockname()[1]))
    monkeypatch.delenv("NIGHTCAST_STATSD_PREFIX", raising=False)
    return get_settings()


def received(sock: socket.socket, n: int) -> set[str]:
    """The next ``n`` StatsD lines sent to ``sock`` (several may share a datagram)."""
    lines: list[str] = []
    while len(lines) < n:
        lines += sock.recv(65535).decode().splitlines()
    return set(lines)


def metric_rows(settings: Settings) -> dict[tuple[str, str, str], float]:
    with open_warehouse(settings.warehouse_url) as wh:
        rows = wh.fetchall(
            "select dag_id, task_id, name, value from ops.metrics where run_date = ?", [D]
        )
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def test_emit_sends_statsd_gauges_and_records_them_once(
    settings: Settings, udp: socket.socket
) -> None:
    gauges = {"wape.h1_7": 0.21, "drift.psi_max": 0.08}
    emit(settings, D, gauges, task_id="monitor", dag_id="erp_forecast_nightly")
    assert received(udp, 2) == {
        "nightcast.monitor.wape.h1_7:0.21|g",
        "nightcast.monitor.drift.psi_max:0.08|g",
    }
    emit(settings, D, {"wape.h1_7": 0.19}, task_id="monitor", dag_id="erp_forecast_nightly")
    assert received(udp, 1) == {"nightcast.monitor.wape.h1_7:0.19|g"}
    # a rerun replaces the metric's row; the other metric keeps its value
    assert metric_rows(settings) == {
        ("erp_forecast_nightly", "monitor", "wape.h1_7"): 0.19,
        ("erp_forecast_nightly", "monitor", "drift.psi_max"): 0.08,
    }


def test_counters_timers_and_prefix(settings: Settings, udp: socket.socket) -> None:
    custom = settings.model_copy(update={"statsd_prefix": "acme.nightcast"})
    emit(custom, D, {"alerts sent": 2}, task_id="alerting", kind="c")
    emit(custom, D, {"render": 350}, task_id="report", kind="ms")
    assert received(udp, 2) == {
        "acme.nightcast.alerting.alerts_sent:2|c",
        "acme.nightcast.report.render:350|ms",
    }


def test_every_stage_counter_is_a_metric(
    settings: Settings, udp: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "erp_forecast_nightly")
    with open_warehouse(settings.warehouse_url) as wh:
        record_task(wh, D, "extract", source="shop", table="order_lines", rows_out=120, seconds=1.5)
        assert received(udp, 2) == {
            "nightcast.extract.rows_extracted.shop.order_lines:120|g",
            "nightcast.extract.duration_seconds.shop.order_lines:1.5|g",
        }
        for ok, severity in ((False, "critical"), (False, "warning"), (True, "critical")):
            wh.execute(
                "insert into ops.dq_results values (?, 'order_lines', 'x', 'c', ?, ?, '', '')",
                [D, severity, ok],
            )
        record_task(wh, D, "validate", rows_in=118, seconds=0.25)
        lines = received(udp, 5)
    assert {
        "nightcast.validate.dq_failures:2|g",
        "nightcast.validate.dq_failures.critical:1|g",
        "nightcast.validate.dq_failures.warning:1|g",
        "nightcast.validate.rows_in:118|g",
    } <= lines
    rows = metric_rows(settings)
    assert rows[("erp_forecast_nightly", "extract", "rows_extracted.shop.order_lines")] == 120
    assert rows[("erp_forecast_nightly", "validate", "dq_failures")] == 2


def test_unreachable_statsd_never_fails_the_task(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    broken = settings.model_copy(update={"statsd_host": "statsd.invalid"})
    with caplog.at_level(logging.WARNING, logger="nightcast.metrics"):
        emit(broken, D, {"rows": 5}, task_id="load", dag_id="d")
    assert "could not send 1 metric(s) to StatsD at statsd.invalid" in caplog.text
    assert metric_rows(settings) == {("d", "load", "rows"): 5.0}


def test_many_metrics_are_split_into_datagrams_under_the_mtu(udp: socket.socket) -> None:
    port = udp.getsockname()[1]
    lines = [f"nightcast.t.metric_{i:04d}:{i}|g" for i in range(200)]
    assert send_statsd("127.0.0.1", port, lines)
    got: list[str] = []
    while len(got) < 200:
        packet = udp.recv(65535)
        assert len(packet) <= 1400
        got += packet.decode().splitlines()
    assert got == lines
