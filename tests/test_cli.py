"""The ``nightcast`` command line, and stopping a process group on Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from nightcast.cli import main
from nightcast.demo import stop_process_group
from nightcast.env import embedded_defaults


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    # Commands fill unset variables from the embedded defaults; keep that out of other tests.
    with mock.patch.dict(os.environ):
        yield


def test_env_prints_every_embedded_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("#")
    defaults = embedded_defaults()
    assert len(defaults) >= 10
    for key, value in defaults.items():
        assert f"{key}={value}" in lines
    assert "AIRFLOW_CONN_NIGHTCAST_DEMO_ERP" in defaults


def test_env_write_creates_then_keeps_an_existing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / ".env"
    assert main(["env", "--write", str(path)]) == 0
    written = path.read_text()
    assert "NIGHTCAST_WAREHOUSE_PATH=" in written

    path.write_text("MY_SECRET=keep-me\n")
    capsys.readouterr()
    assert main(["env", "--write", str(path)]) == 0
    assert path.read_text() == "MY_SECRET=keep-me\n"
    assert "--force" in capsys.readouterr().out

    assert main(["env", "--write", str(path), "--force"]) == 0
    assert path.read_text() == written


def test_demo_erp_init_and_advance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "nested" / "erp.sqlite"  # the folder does not exist yet
    url = f"sqlite:///{db}"
    args = ["demo-erp", "init", "--url", url, "--size", "tiny"]
    assert main([*args, "--start", "2024-01-01", "--end", "2024-01-07"]) == 0
    out = capsys.readouterr().out
    assert db.is_file()
    counts = dict(part.split(": ") for part in out.strip().splitlines()[-1].split(", "))
    with sqlite3.connect(db) as con:
        lines = con.execute("select count(*) from sales_order_line").fetchone()[0]
        products = con.execute("select count(*) from product").fetchone()[0]
    assert lines > 0
    assert int(counts["sales_order_line"].replace(",", "")) == lines
    assert int(counts["product"].replace(",", "")) == products == 12  # tiny: 12 products

    assert main(["demo-erp", "advance", "--url", url, "--day", "2024-01-08"]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert "sales_order_line: " in out
    advanced = int(
        dict(p.split(": ") for p in out.split(", "))["sales_order_line"].replace(",", "")
    )
    with sqlite3.connect(db) as con:
        after = con.execute("select count(*) from sales_order_line").fetchone()[0]
    assert after > lines
    assert advanced >= after - lines  # inserted + updated lines


def test_demo_erp_advance_needs_a_day(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--day"):
        main(["demo-erp", "advance", "--url", f"sqlite:///{tmp_path / 'erp.sqlite'}"])


def test_bad_date_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo-erp", "init", "--start", "01/02/2024"])
    assert info.value.code == 2
    assert "not a date" in capsys.readouterr().err


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may contain spaces, so split after ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("ignored", ["INT", "INT TERM"])
def test_stop_process_group_escalates_until_no_member_is_left(ignored: str) -> None:
    proc = subprocess.Popen(
        ["bash", "-c", f'trap "" {ignored}; sleep 60 & sleep 60 & wait'], start_new_session=True
    )
    pgid = proc.pid
    try:
        deadline = time.monotonic() + 5
        while len(_group_members(pgid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_group_members(pgid)) == 3  # bash and its two sleeps

        started = time.monotonic()
        # Killed members may linger as zombies until init reaps them: a generous last grace.
        stop_process_group(
            proc, schedule=((signal.SIGINT, 0.5), (signal.SIGTERM, 0.5), (signal.SIGKILL, 6.0))
        )
        elapsed = time.monotonic() - started

        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)
        assert proc.poll() is not None
        assert elapsed < 8
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=5)


def test_stop_process_group_of_a_finished_process_returns_at_once() -> None:
    proc = subprocess.Popen(["true"], start_new_session=True)
    proc.wait()
    started = time.monotonic()
    stop_process_group(proc)  # default schedule: must not wait out any grace period
    assert time.monotonic() - started < 1


def test_make_airflow_says_which_night_unpausing_runs_and_what_it_simulates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, date, datetime

    from nightcast.config import get_settings
    from nightcast.demo import scheduled_night, unpause_hint
    from nightcast.demo_erp import generate

    # The run for business day D fires at 02:00 UTC on D+1.
    assert scheduled_night(datetime(2026, 12, 2, 1, 59, tzinfo=UTC)) == date(2026, 11, 30)
    assert scheduled_night(datetime(2026, 12, 2, 2, 0, tzinfo=UTC)) == date(2026, 12, 1)

    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_DEMO_ERP", url)
    monkeypatch.delenv("NIGHTCAST_SOURCES_DIR", raising=False)
    monkeypatch.setenv("NIGHTCAST_SIMULATED_SOURCES", "demo")
    now = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    assert unpause_hint(get_settings(), now) == [
        "source 'demo' has no demo ERP yet: run `make demo` before unpausing "
        "erp_forecast_nightly, or its night 2026-12-01 fails"
    ]
    generate(url, size="tiny", start=date(2025, 11, 1), end=date(2025, 12, 3))
    assert unpause_hint(get_settings(), now) == [
        "unpausing erp_forecast_nightly runs business day 2026-12-01: source 'demo' first "
        "simulates the 363 day(s) since 2025-12-03 (progress in the extract_demo log)"
    ]
    assert unpause_hint(get_settings(), datetime(2025, 12, 4, 3, tzinfo=UTC)) == [
        "unpausing erp_forecast_nightly runs business day 2025-12-03"
    ]
    monkeypatch.setenv("NIGHTCAST_SIMULATED_SOURCES", "")  # production: nothing to say
    assert unpause_hint(get_settings(), now) == []


def test_help_introduces_the_tool_and_the_on_call_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and "usage: nightcast [-h] COMMAND" in out
    words = " ".join(out.split())  # argparse wraps the description
    for command in ("summary", "deadline-check", "quarantine replay", "model rollback"):
        assert command in words
