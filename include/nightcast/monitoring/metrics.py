"""Pipeline metrics: always rows in ``ops.metrics``, and StatsD lines when configured.

One metric is one number for a run date, DAG, task and name, e.g. rows extracted
from ``demo.order_lines`` by the ``extract`` task. ``NIGHTCAST_STATSD_HOST`` (with
``NIGHTCAST_STATSD_PORT``, 8125, and ``NIGHTCAST_STATSD_PREFIX``, ``nightcast``)
turns on plain StatsD over UDP: ``<prefix>.<task>.<name>:<value>|g``. In
docker-compose a ``statsd-exporter`` receives them (and Airflow's own metrics) and
serves them to Prometheus on :9102.

Sending never fails a task: an unknown host or a refused packet is a logged warning.
The ``ops.metrics`` row is written in the caller's transaction, so a task's
metrics commit with its data (or not at all).
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
from collections.abc import Mapping
from datetime import date, datetime
from typing import Literal

from nightcast.config import Settings, get_settings
from nightcast.warehouse.base import Warehouse, open_warehouse

log = logging.getLogger("nightcast.metrics")

Kind = Literal["g", "c", "ms"]
DEFAULT_DAG_ID = "nightcast"
# One UDP datagram stays under a typical MTU; StatsD accepts newline-separated lines.
MAX_PACKET_BYTES = 1400
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")

# What a ``rows_out`` counter means for each stage that records one.
ROWS_OUT_NAMES = {
    "extract": "rows_extracted",
    "clean": "rows_clean",
    "load": "rows_loaded",
    "load_forecasts": "forecast_rows_loaded",
    "forecast": "forecast_rows",
    "publish": "forecast_rows_published",
}


def metric_name(*parts: str) -> str:
    """A StatsD-safe dotted name: anything but letters, digits, ``_ . -`` becomes ``_``."""
    return ".".join(_UNSAFE.sub("_", p) for p in parts if p)


def statsd_lines(prefix: str, task_id: str, metrics: Mapping[str, float], kind: Kind) -> list[str]:
    """One StatsD line per finite metric: ``<prefix>.<task>.<name>:<value>|<kind>``."""
    lines = []
    for name, value in metrics.items():
        if not math.isfinite(value):
            continue
        lines.append(f"{metric_name(prefix, task_id, name)}:{value:g}|{kind}")
    return lines


def send_statsd(host: str, port: int, lines: list[str]) -> bool:
    """Send ``lines`` as UDP datagrams to ``host:port``; False (and a warning) if it failed."""
    packets: list[str] = []
    for line in lines:
        if packets and len(packets[-1]) + 1 + len(line) <= MAX_PACKET_BYTES:
            packets[-1] += "\n" + line
        else:
            packets.append(line)
    try:
        address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(address[0], socket.SOCK_DGRAM) as sock:
            for packet in packets:
                sock.sendto(packet.encode(), address[4])
    except OSError as err:
        log.warning(
            "could not send %d metric(s) to StatsD at %s:%s (%s); they are in ops.metrics. "
            "Check NIGHTCAST_STATSD_HOST/NIGHTCAST_STATSD_PORT",
            len(lines),
            host,
            port,
            err,
        )
        return False
    return True


def record_metrics(
    wh: Warehouse,
    run_date: date,
    metrics: Mapping[str, float],
    *,
    task_id: str,
    dag_id: str | None = None,
    kind: Kind = "g",
    settings: Settings | None = None,
) -> None:
    """Replace these metrics' rows in ``ops.metrics`` (one per run, DAG, task and name) and send them.

    ``dag_id`` defaults to the running Airflow task's DAG (``AIRFLOW_CTX_DAG_ID``).
    """
    values = {name: float(v) for name, v in metrics.items() if v is not None}
    if not values:
        return
    dag = dag_id or os.environ.get("AIRFLOW_CTX_DAG_ID") or DEFAULT_DAG_ID
    now = datetime.now()
    for name, value in values.items():
        wh.execute(
            "delete from ops.metrics where run_date = ? and dag_id = ? and task_id = ? and name = ?",
            [run_date, dag, task_id, name],
        )
        wh.execute(
            "insert into ops.metrics values (?, ?, ?, ?, ?, ?)",
            [run_date, dag, task_id, name, value, now],
        )
    cfg = settings or get_settings()
    if cfg.statsd_host:
        send_statsd(
            cfg.statsd_host,
            cfg.statsd_port,
            statsd_lines(cfg.statsd_prefix, task_id, values, kind),
        )


def emit(
    settings: Settings,
    run_date: date,
    metrics: Mapping[str, float],
    *,
    task_id: str,
    dag_id: str | None = None,
    kind: Kind = "g",
) -> None:
    """Record ``metrics`` (name → value) of ``task_id`` for ``run_date``: ``ops.metrics`` + StatsD.

    For callers outside a warehouse transaction, e.g. the monitor stage's accuracy and
    drift gauges: ``emit(settings, d, {"wape.h1_7": 0.21, "drift.psi_max": 0.08}, task_id="monitor")``.
    """
    with open_warehouse(settings.warehouse_url) as wh, wh.transaction():
        record_metrics(
            wh, run_date, metrics, task_id=task_id, dag_id=dag_id, kind=kind, settings=settings
        )


def task_metrics(
    wh: Warehouse,
    run_date: date,
    task: str,
    *,
    source: str = "",
    table: str = "",
    counters: Mapping[str, float | int | None],
) -> dict[str, float]:
    """The metrics of one ``ops.task_runs`` row: named counters, scoped by source and table.

    ``counters`` holds ``rows_in``, ``rows_out``, ``rows_quarantined`` and ``seconds``;
    the ``validate`` task adds its failed data-quality checks by severity.
    """
    names = {
        "rows_in": "rows_in",
        "rows_out": ROWS_OUT_NAMES.get(task, "rows_out"),
        "rows_quarantined": "rows_quarantined",
        "seconds": "duration_seconds",
    }
    out = {
        metric_name(names[key], source, table): float(value)
        for key, value in counters.items()
        if value is not None and key in names
    }
    if task == "validate":
        failed = wh.fetchall(
            "select severity, count(*) from ops.dq_results "
            "where run_date = ? and not success group by severity",
            [run_date],
        )
        counts = {str(sev): int(n) for sev, n in failed}
        out["dq_failures"] = float(sum(counts.values()))
        for severity in ("critical", "warning"):
            out[metric_name("dq_failures", severity)] = float(counts.get(severity, 0))
    return out


def record_task_metrics(
    wh: Warehouse,
    run_date: date,
    task: str,
    *,
    source: str = "",
    table: str = "",
    counters: Mapping[str, float | int | None],
) -> None:
    """``task_metrics`` recorded and sent; the hook ``runs.record_task`` calls."""
    metrics = task_metrics(wh, run_date, task, source=source, table=table, counters=counters)
    record_metrics(wh, run_date, metrics, task_id=task)
