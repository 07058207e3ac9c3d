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
from nightcast.reporting.summary import render_summary
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
    settings.lake.delete_tree()
    settings.models_location.delete_tree()
    for path in (
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
