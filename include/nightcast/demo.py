"""``make demo``: a demo ERP and a few nights of the real DAG run by Airflow."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from nightcast.config import Settings, connection_url, get_settings
from nightcast.orchestration import NIGHTLY_DAG_ID
from nightcast.sources.mapping import source_pools

log = logging.getLogger("nightcast.demo")

HISTORY_START = date(2024, 1, 1)


def _airflow(*args: str, log_file: Path | None = None) -> None:
    """Run the Airflow CLI of this virtualenv; its output goes to ``log_file`` if given."""
    exe = Path(sys.executable).with_name("airflow")
    cmd = [str(exe), *args]
    if log_file is None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return
    with log_file.open("w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log_file.read_text(errors="replace").splitlines()[-40:]
        raise RuntimeError(
            f"`airflow {' '.join(args)}` failed (exit {proc.returncode}); full log: {log_file}\n"
            + "\n".join(tail)
        )


def airflow_setup(settings: Settings | None = None) -> None:
    """Migrate the metadata DB and create one pool per ERP source (idempotent)."""
    settings = settings or get_settings()
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    _airflow("db", "migrate")
    # Two connections per ERP, or more when one table's extraction runs more streams.
    pools = {
        pool: {
            "slots": max(2, slots),
            "description": f"concurrent connections to ERP source {src!r}",
            "include_deferred": False,
        }
        for src, pool, slots in source_pools(settings.sources_dir)
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(pools, fh)
    try:
        _airflow("pools", "import", fh.name)
    finally:
        os.unlink(fh.name)


def _reset(settings: Settings, erp_url: str) -> None:
    for path in (
        settings.lake_dir,
        settings.models_dir,
        settings.data_dir / "dbt",
        settings.data_dir / "logs",
    ):
        shutil.rmtree(path, ignore_errors=True)
    settings.warehouse_path.unlink(missing_ok=True)
    if erp_url.startswith("sqlite:///"):
        Path(erp_url.removeprefix("sqlite:///")).unlink(missing_ok=True)


def run_night(day: date, log_dir: Path) -> float:
    """Run the nightly DAG for business day ``day`` through Airflow (`airflow dags test`)."""
    started = time.monotonic()
    log_dir.mkdir(parents=True, exist_ok=True)
    _airflow(
        "dags",
        "test",
        NIGHTLY_DAG_ID,
        f"{day.isoformat()}T02:00:00+00:00",
        log_file=log_dir / f"night-{day}.log",
    )
    return time.monotonic() - started


def run_demo(size: str, nights: int, first_night: date, fresh: bool = True) -> int:
    from nightcast import demo_erp

    settings = get_settings()
    url = connection_url("nightcast_demo_erp")
    timings: dict[str, float] = {}
    if fresh:
        _reset(settings, url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    if demo_erp.last_simulated_day(url) is None:
        print(
            f"[demo] generating the {size!r} demo ERP, {HISTORY_START} .. {first_night - timedelta(days=1)}"
        )
        counts = demo_erp.generate(
            url, size=size, start=HISTORY_START, end=first_night - timedelta(days=1)
        )
        print("[demo] ERP rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    timings["generate demo ERP"] = time.monotonic() - t
    t = time.monotonic()
    airflow_setup(settings)
    timings["airflow db migrate + pools"] = time.monotonic() - t
    log_dir = settings.data_dir / "logs"
    for i in range(nights):
        day = first_night + timedelta(days=i)
        last = demo_erp.last_simulated_day(url)
        if last is None or last < day:
            demo_erp.advance(url, day)
        print(
            f"[demo] night {i + 1}/{nights}: business day {day} — running {NIGHTLY_DAG_ID} (log: {log_dir}/night-{day}.log)"
        )
        seconds = run_night(day, log_dir)
        timings[f"night {day}"] = seconds
        print(f"[demo]   done in {seconds:.0f}s")
    print()
    print(render_summary(settings, None, timings))
    return 0


def render_summary(
    settings: Settings, run_date: date | None, timings: dict[str, float] | None = None
) -> str:
    """A short, human summary of the runs in the warehouse."""
    from nightcast.warehouse.base import open_warehouse

    with open_warehouse(settings.warehouse_url, ensure=False) as wh:
        runs = wh.fetchall(
            "select run_date, status, model_version, series_count, rows_forecast, published_at, message "
            "from forecast.runs order by run_date"
        )
        if run_date is not None:
            runs = [r for r in runs if r[0] == run_date]
        lines = [f"Nightcast — {len(runs)} night(s) in {settings.warehouse_path}"]
        for r in runs:
            day = r[0]
            ext = wh.fetchone(
                "select coalesce(sum(rows_in), 0), coalesce(sum(rows_out), 0), coalesce(sum(rows_quarantined), 0) "
                "from ops.task_runs where run_date = ? and task = 'load'",
                [day],
            ) or (0, 0, 0)
            dq = wh.fetchone(
                "select count(*), count(*) filter (where not success), "
                "count(*) filter (where not success and severity = 'critical') from ops.dq_results where run_date = ?",
                [day],
            ) or (0, 0, 0)
            stages = wh.fetchall(
                "select task, sum(seconds) from ops.task_runs where run_date = ? group by task order by min(finished_at)",
                [day],
            )
            lines.append(
                f"  {day}: {r[1]:<9} extracted {ext[0]:,} rows, loaded {ext[1]:,}, quarantined {ext[2]:,}; "
                f"DQ {dq[0] - dq[1]}/{dq[0]} checks passed ({dq[2]} critical failures); "
                f"{r[3] or 0:,} series, {r[4] or 0:,} forecast rows, model {r[2] or '-'}"
                + (f"\n      message: {r[6]}" if r[6] else "")
            )
            if stages:
                lines.append(
                    "      stages: "
                    + ", ".join(f"{t} {s:.1f}s" for t, s in stages if s is not None)
                )
    if timings:
        lines.append("Wall time: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    lines.append(
        f"Forecasts: open {settings.warehouse_path} with any DuckDB client and "
        "`select * from marts.forecast_latest` (p10/p50/p90 per item, location and day)."
    )
    report = settings.data_dir / "reports" / "latest.html"
    if report.exists():
        lines.append(f"Report: open {report} in a browser (the latest night's HTML report).")
    return "\n".join(lines)


def scheduled_night(now: datetime) -> date:
    """The business day of the run the scheduler creates at ``now`` for an unpaused nightly
    DAG: the last one whose close has passed (its schedule, "0 2 * * *" UTC, fires at 02:00 on
    the day after; the e2e test checks this against the scheduler's real run)."""
    return (now.astimezone(UTC) - timedelta(hours=2)).date() - timedelta(days=1)


def unpause_hint(settings: Settings, now: datetime) -> list[str]:
    """What unpausing the nightly DAG will do with each simulated (demo) ERP source."""
    from nightcast import demo_erp
    from nightcast.sources.mapping import load_mappings

    night = scheduled_night(now)
    lines = []
    for mapping in load_mappings(settings.sources_dir):
        if mapping.source not in settings.simulated_sources:
            continue
        try:
            last = demo_erp.last_simulated_day(connection_url(mapping.connection))
        except Exception as exc:  # a hint, never a reason not to start Airflow
            lines.append(f"source {mapping.source!r}: cannot read its demo ERP ({exc})")
            continue
        if last is None:
            lines.append(
                f"source {mapping.source!r} has no demo ERP yet: run `make demo` "
                f"before unpausing {NIGHTLY_DAG_ID}, or its night {night} fails"
            )
        elif last < night:
            lines.append(
                f"unpausing {NIGHTLY_DAG_ID} runs business day {night}: source "
                f"{mapping.source!r} first simulates the {(night - last).days} day(s) since "
                f"{last} (progress in the extract_{mapping.source} log)"
            )
        else:
            lines.append(f"unpausing {NIGHTLY_DAG_ID} runs business day {night}")
    return lines


def airflow_standalone() -> int:
    """`airflow standalone` with the project's DAGs; Ctrl-C stops every process it started."""
    import secrets
    import signal

    airflow_setup()
    home = Path(os.environ["AIRFLOW_HOME"])
    # A known password file, so the login can be printed (Airflow's default is AIRFLOW_HOME/…generated).
    pw_file = Path(
        os.environ.setdefault(
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
            str(home / "simple_auth_manager_passwords.json"),
        )
    )
    pw_file.parent.mkdir(parents=True, exist_ok=True)
    if not pw_file.exists():
        pw_file.write_text(json.dumps({"admin": secrets.token_urlsafe(12)}))
    password = json.loads(pw_file.read_text()).get("admin", "?")
    print(
        f"Airflow UI: http://localhost:8080  login: admin / {password}  (Ctrl-C to stop)",
        flush=True,
    )
    for line in unpause_hint(get_settings(), datetime.now(UTC)):
        print(f"Demo: {line}", flush=True)
    bin_dir = Path(sys.executable).parent
    # standalone starts its components as `airflow ...` found on PATH: use this virtualenv's.
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    # Its own process group, so one signal reaches the scheduler, api-server,
    # triggerer and dag-processor together and none is left orphaned.
    proc = subprocess.Popen(
        [str(bin_dir / "airflow"), "standalone"], start_new_session=True, env=env
    )

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Explicit handlers: a shell may start us with SIGINT ignored, and `kill` sends SIGTERM.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        print("\nstopping Airflow ...", flush=True)
        stop_process_group(proc)
        print("Airflow stopped.", flush=True)
        return 0


def stop_process_group(
    proc: subprocess.Popen[bytes],
    schedule: Sequence[tuple[int, float]] | None = None,
) -> None:
    """Signal the whole group, escalating SIGINT → SIGTERM → SIGKILL until no member is left.

    ``schedule`` is the escalation as (signal, grace seconds) pairs; the default
    waits 10 s after SIGINT, 15 s after SIGTERM and 5 s after SIGKILL.
    """
    import signal

    if schedule is None:
        schedule = ((signal.SIGINT, 10.0), (signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0))
    for sig, grace in schedule:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, or its zombie keeps the group alive
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.3)
