"""The production stack, brought up for real (`make test-deploy`).

Builds the image, `docker compose --profile demo up -d --wait`s the whole stack
(CeleryExecutor, PostgreSQL, Redis, MariaDB demo ERP), then, through the REST API:

1. triggers the demo ERP's next night and waits for it to publish on the Celery
   workers, the LightGBM tasks on the `forecasting` queue's own worker;
2. reads `marts.forecast_latest` as the read-only BI role (and nothing else);
3. breaks the next night's ERP data so the quality gate fails, measures how soon
   on-call is paged (no retries: fail fast), repairs the data, runs the rerun
   command exactly as the alert printed it, and checks the night publishes;

and `down -v`s. No traffic leaves loopback: deploy/test/loopback.yaml puts every
container in one network namespace with nothing but loopback. Images the
registry cannot give are built from Debian packages (deploy/offline/). Figures
(build, up-to-healthy, night, page latency) are printed at the end.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from _stack import (
    LOOPBACK,
    ROOT,
    Stack,
    Unavailable,
    docker_engine,
    filled_env_file,
    prepare_images,
    run_command,
)

pytestmark = pytest.mark.deploy

DAG_ID = "erp_forecast_nightly"
IMAGE = "nightcast:deploy-test"
PROJECT = "nightcast-deploy-test"
# The demo ERP is seeded up to LAST_SEEDED; the test runs the two nights after it.
LAST_SEEDED = date(2025, 11, 30)
NIGHT_1 = LAST_SEEDED + timedelta(days=1)
NIGHT_2 = LAST_SEEDED + timedelta(days=2)
NIGHT_TIMEOUT_S = 1200
PAGE_WITHIN_S = 60.0
FORECASTING_TASKS = {"forecast_plan", "forecast_batch", "explain"}


def _unavailable(err: Exception) -> None:
    msg = f"the deployment test cannot run here: {err}"
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; CI must run it (.ci/run installs docker.io and debootstrap)")
    pytest.skip(msg)


@pytest.fixture(scope="module")
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """What the test measured, printed at the end even under `pytest -q` (docs/benchmarks.md figures)."""
    out: dict[str, Any] = {}
    yield out
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if out and reporter is not None:
        reporter.write_line("\n[deploy figures] " + json.dumps(out, default=str))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, figures: dict[str, Any]) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("deploy")
    try:
        with docker_engine(work) as engine_env:
            t = time.monotonic()
            images = prepare_images(engine_env)
            figures["images_s"] = round(time.monotonic() - t, 1)
            figures["built_from_debian"] = images.offline
            t = time.monotonic()
            # --network host: an engine without a bridge network builds on the host's.
            run_command(
                ["docker", "build", "--network", "host", "--build-arg",
                 f"BASE_IMAGE={images.base}", "-t", IMAGE, str(ROOT)],
                engine_env, timeout=1800,
            )  # fmt: skip
            figures["build_s"] = round(time.monotonic() - t, 1)
            files = [ROOT / "docker-compose.yaml", LOOPBACK]
            override = images.override(work / "images.yaml")
            if override is not None:
                files.append(override)
            values = filled_env_file(
                work / "deploy.env",
                {
                    "NIGHTCAST_IMAGE": IMAGE,
                    "NIGHTCAST_DEMO_SIZE": "tiny",
                    "NIGHTCAST_DEMO_END": LAST_SEEDED.isoformat(),
                },
            )
            stack = Stack(PROJECT, files, work / "deploy.env", values, engine_env)
            stack.compose("down", "-v", "--remove-orphans", timeout=300, check=False)
            try:
                t = time.monotonic()
                up = stack.compose("up", "-d", "--wait", "--wait-timeout", "900", check=False,
                                   timeout=1200)  # fmt: skip
                figures["up_to_healthy_s"] = round(time.monotonic() - t, 1)
                assert up.returncode == 0, (
                    f"compose up failed:\n{up.stderr[-3000:]}\n{stack.logs(tail=60)[-8000:]}"
                )
                yield stack
            finally:
                (work / "compose.log").write_text(stack.logs(tail=100000))
                stack.compose("down", "-v", "--remove-orphans", timeout=300, check=False)
    except Unavailable as err:
        _unavailable(err)


def _run_id(day: date) -> str:
    return f"deploy_test__{day.isoformat()}"


def _trigger(stack: Stack, day: date) -> None:
    status, body = stack.rest(
        "POST",
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        {"dag_run_id": _run_id(day), "logical_date": f"{day.isoformat()}T02:00:00+00:00"},
    )
    assert status == 200, body


def _task_instances(stack: Stack, day: date) -> list[dict[str, Any]]:
    status, body = stack.rest(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{_run_id(day)}/taskInstances?limit=200"
    )
    assert status == 200, body
    return list(body["task_instances"])


def _wait_for_run(stack: Stack, day: date, states: set[str]) -> str:
    deadline = time.monotonic() + NIGHT_TIMEOUT_S
    state = "?"
    while time.monotonic() < deadline:
        status, body = stack.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{_run_id(day)}")
        assert status == 200, body
        state = body["state"]
        if state in states:
            return str(state)
        time.sleep(10)
    tis = {ti["task_id"]: ti["state"] for ti in _task_instances(stack, day)}
    raise AssertionError(f"night {day} still {state} after {NIGHT_TIMEOUT_S} s: {tis}")


def _failure_detail(stack: Stack, day: date) -> str:
    tis = _task_instances(stack, day)
    failed = [ti["task_id"] for ti in tis if ti["state"] in ("failed", "upstream_failed")]
    return (
        f"task states: {[(ti['task_id'], ti['state']) for ti in tis]}; failed: {failed}\n"
        + (stack.logs("airflow-worker", "airflow-worker-forecasting", tail=80)[-6000:])
    )


def _wait_for_dag(stack: Stack) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status, _ = stack.rest("GET", f"/api/v2/dags/{DAG_ID}")
        if status == 200:
            return
        time.sleep(5)
    raise AssertionError(
        f"{DAG_ID} was not parsed within 300 s:\n{stack.logs('airflow-dag-processor')}"
    )


def _advance_erp(stack: Stack, day: date) -> None:
    proc = stack.exec(
        "airflow-worker", "nightcast", "demo-erp", "advance", "--day", day.isoformat()
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def _peak_memory_mib(stack: Stack) -> dict[str, int]:
    """Peak memory of each running service's container (cgroup v1 or v2)."""
    out: dict[str, int] = {}
    ps = stack.compose("ps", "--format", "json", check=False).stdout
    rows = [json.loads(line) for line in ps.splitlines() if line.strip().startswith("{")]
    for row in rows:
        service = row["Service"]
        proc = stack.exec(
            service, "sh", "-c",
            "cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.peak",
            timeout=60,
        )  # fmt: skip
        if proc.returncode == 0 and proc.stdout.strip().isdigit():
            out[service] = int(proc.stdout.strip()) // 2**20
    return out


def test_a_night_publishes_on_celery_workers_and_bi_reads_it(
    stack: Stack, figures: dict[str, Any]
) -> None:
    _wait_for_dag(stack)
    status, body = stack.rest("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    assert status == 200 and body["is_paused"] is False, body
    # No manual step: the extract simulates the demo ERP's missing day itself
    # (NIGHTCAST_SIMULATED_SOURCES=demo).
    t = time.monotonic()
    _trigger(stack, NIGHT_1)
    state = _wait_for_run(stack, NIGHT_1, {"success", "failed"})
    figures["night_on_celery_s"] = round(time.monotonic() - t, 1)
    assert state == "success", _failure_detail(stack, NIGHT_1)

    # Every task ran on a Celery worker; the LightGBM ones on the forecasting worker.
    tis = _task_instances(stack, NIGHT_1)
    assert tis and all(ti["executor"] in (None, "CeleryExecutor") for ti in tis), tis
    queues = {ti["task_id"]: ti["queue"] for ti in tis}
    assert {queues[t] for t in FORECASTING_TASKS} == {"forecasting"}, queues
    assert queues["extract_demo"] == "default", queues
    forecasting_log = stack.logs("airflow-worker-forecasting", tail=100000)
    default_log = stack.logs("airflow-worker", tail=100000)
    for task in FORECASTING_TASKS:
        assert task in forecasting_log, f"{task} did not run on airflow-worker-forecasting"
        assert task not in default_log, f"{task} ran on the default worker"
    assert "extract_demo" in default_log and "extract_demo" not in forecasting_log
    last_day = stack.erp_sql("select value from erp_meta where `key` = 'last_simulated_day'")
    assert last_day == NIGHT_1.isoformat(), last_day

    # The two workers share no volume (the lake, models and reports are on the object
    # store), and the UI's log view serves each one's task log from that store.
    mounts = {w: _mounts(stack, w) for w in ("airflow-worker", "airflow-worker-forecasting")}
    assert mounts == {"airflow-worker": [], "airflow-worker-forecasting": []}, mounts
    bucket = stack.values.get("NIGHTCAST_S3_BUCKET") or "nightcast"
    for task, map_index, line in (
        ("extract_demo", None, f"extract demo.order_lines for {NIGHT_1}"),
        ("forecast_batch", 0, f"forecast_batch {NIGHT_1} 1/"),
    ):
        text = _task_log(stack, NIGHT_1, task, map_index)
        assert line in text, f"{task}: {line!r} not in its log:\n{text[-3000:]}"
        assert f"s3://{bucket}/logs/" in text, f"{task}: log not read from the object store"
    lake = stack.exec(
        "airflow-apiserver", "python", "-c",
        "from nightcast.config import get_settings; s = get_settings(); "
        f"print(len((s.lake / 'forecast' / 'date={NIGHT_1}').files('part-*')), s.lake)",
    )  # fmt: skip
    assert lake.returncode == 0 and lake.stdout.split()[0] != "0", lake.stdout + lake.stderr
    figures["lake"] = lake.stdout.split()[-1]

    # BI reads the published night as its own read-only role, and only the marts.
    bi = {"role": "nightcast_bi", "password": stack.values["NIGHTCAST_BI_PASSWORD"]}
    rows, run_date, lo, hi = stack.sql(
        "select count(*), max(run_date), bool_and(p10 <= p50 and p50 <= p90)::int, "
        "count(distinct forecast_date) from marts.forecast_latest",
        **bi,
    ).split("|")
    assert int(rows) > 0 and run_date == NIGHT_1.isoformat() and lo == "1", (rows, run_date, lo)
    assert int(hi) == 28
    # Freshness reads the clock at query time: the stack replays a past night, so BI is
    # told that the night due by today's deadline is missing and which run it shows.
    stale, shown, due, reason = stack.sql(
        "select is_stale, latest_published_run_date, expected_run_date, stale_reason "
        "from marts.forecast_freshness",
        **bi,
    ).split("|")
    assert shown == NIGHT_1.isoformat(), (shown, reason)
    if date.fromisoformat(due) > NIGHT_1:
        assert stale in ("t", "true") and f"BI shows run {NIGHT_1}" in reason, (stale, reason)
    else:
        assert stale in ("f", "false"), (stale, reason)
    with pytest.raises(PermissionError, match="permission denied"):
        stack.sql("select count(*) from raw.order_lines", **bi)
    figures["forecast_rows"] = int(rows)


def test_a_failed_gate_pages_at_once_and_the_printed_rerun_recovers_the_night(
    stack: Stack, figures: dict[str, Any]
) -> None:
    # The next night's ERP data breaks a critical expectation (list_price >= 0).
    _advance_erp(stack, NIGHT_2)
    product = stack.erp_sql("select product_id from product order by product_id limit 1")
    stack.erp_sql(f"update product set list_price = -list_price - 1 where product_id = {product}")
    _trigger(stack, NIGHT_2)
    assert _wait_for_run(stack, NIGHT_2, {"success", "failed"}) == "failed"
    tis = {ti["task_id"]: ti for ti in _task_instances(stack, NIGHT_2)}
    validate = tis["validate"]
    assert validate["state"] == "failed" and validate["try_number"] == 1, validate  # no retries

    raw = stack.sql(
        "select extract(epoch from raised_at), rerun_hint from ops.alerts "
        f"where run_date = '{NIGHT_2}' and task_id = 'validate' and kind = 'task_failed' "
        "order by raised_at limit 1"
    )
    assert raw, "no task_failed alert for validate in ops.alerts"
    raised_epoch, hint = raw.split("|", 1)
    status, ti = stack.rest(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{_run_id(NIGHT_2)}/taskInstances/validate"
    )
    assert status == 200, ti
    ended = _epoch(ti["end_date"])
    latency = float(raised_epoch) - _epoch(ti["start_date"])
    figures["page_after_gate_started_s"] = round(latency, 1)
    figures["page_after_gate_failed_s"] = round(float(raised_epoch) - ended, 1)
    assert latency <= PAGE_WITHIN_S, f"paged {latency:.0f} s after the gate started"

    # The alert says which task to clear; the data is repaired at the source, then
    # the command runs exactly as printed.
    cli = re.search(r"Rerun \(CLI\): (airflow tasks clear .+)", hint)
    assert cli, hint
    command = cli[1].strip()
    assert "extract_demo" in shlex.split(command), command
    stack.erp_sql(f"update product set list_price = -(list_price + 1) where product_id = {product}")
    t = time.monotonic()
    proc = stack.exec("airflow-scheduler", "bash", "-c", command, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _wait_for_run(stack, NIGHT_2, {"success", "failed"}) == "success", _failure_detail(
        stack, NIGHT_2
    )
    figures["rerun_to_published_s"] = round(time.monotonic() - t, 1)
    bi = {"role": "nightcast_bi", "password": stack.values["NIGHTCAST_BI_PASSWORD"]}
    assert stack.sql("select max(run_date) from marts.forecast_latest", **bi) == NIGHT_2.isoformat()
    figures["peak_memory_mib"] = _peak_memory_mib(stack)


def _mounts(stack: Stack, service: str) -> list[str]:
    """The volumes and bind mounts of the service's container (``docker inspect``)."""
    cid = stack.compose("ps", "-q", service).stdout.strip()
    out = run_command(
        ["docker", "inspect", "--format", "{{json .Mounts}}", cid], stack.engine_env, timeout=60
    ).stdout
    return [f"{m['Type']}:{m.get('Name') or m['Source']}" for m in json.loads(out) or []]


def _task_log(stack: Stack, day: date, task: str, map_index: int | None) -> str:
    """The task's first try's log as the UI gets it (REST API of the api-server)."""
    query = "?full_content=true" + (f"&map_index={map_index}" if map_index is not None else "")
    status, body = stack.rest(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{_run_id(day)}/taskInstances/{task}/logs/1{query}"
    )
    assert status == 200, body
    return json.dumps(body)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
