"""Credentials never reach a message, a log line or an alert; a bad setting is one line naming it.

The passwords here hold ``%``, ``@``, ``:`` and ``/``, written into the URLs as a person
should (percent-encoded) and as people do (raw), plus an invalid percent-escape that
libpq used to print back verbatim. Each case checks stdout, stderr, the log records,
``ops.alerts`` and ``forecast.runs``: the secret, in any of its spellings, is in none.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import traceback
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pendulum
import pytest

from nightcast.cli import main
from nightcast.config import SettingError, get_settings
from nightcast.monitoring.alerts import Alert, first_line, raise_alert
from nightcast.orchestration import mask_secrets, on_task_failure
from nightcast.pipeline import runs, stages
from nightcast.redaction import redact
from nightcast.warehouse.base import open_warehouse

D = date(2025, 5, 1)
SECRET = "Pa%5s@w:rd/x9"  # % @ : and / in one password
ENCODED = quote(SECRET, safe="")  # Pa%255s%40w%3Ard%2Fx9
PERCENT_CASE = "S3cret%ZZ"  # an invalid percent-escape: libpq printed it back
SPELLINGS = {SECRET, ENCODED, PERCENT_CASE, "Pa%5s", "S3cret"}

WAREHOUSE_URLS = {
    "encoded": f"postgresql://nightcast_nobody:{ENCODED}@127.0.0.1:5432/nightcast",
    "raw": f"postgresql://nightcast_nobody:{SECRET}@127.0.0.1:5432/nightcast",
    "bad-escape": f"postgresql://nightcast:{PERCENT_CASE}@127.0.0.1:5432/nightcast",
}
ERP_URLS = {
    "encoded": f"mysql://root:{ENCODED}@127.0.0.1:3306/nightcast_erp",
    "raw": f"mysql://root:{SECRET}@127.0.0.1:3306/nightcast_erp",
    "bad-escape": f"mysql://root:{PERCENT_CASE}@127.0.0.1:3306/nightcast_erp",
}


def leaks(*texts: object) -> list[str]:
    """Every spelling of the secret found in ``texts``."""
    return [s for s in SPELLINGS for t in texts if s in str(t)]


def record_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    out = []
    for r in caplog.records:
        out.append(r.getMessage())
        if r.exc_info:
            out.append("".join(traceback.format_exception(*r.exc_info)))
    return out


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NIGHTCAST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_PATH", str(tmp_path / "wh.duckdb"))
    monkeypatch.delenv("NIGHTCAST_WAREHOUSE_URL", raising=False)
    monkeypatch.setenv("NIGHTCAST_SIMULATED_SOURCES", "")
    for name in ("NIGHTCAST_ALERT_WEBHOOK_URL", "NIGHTCAST_ALERT_EMAIL_TO"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def failure_context(task_id: str, err: BaseException) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="erp_forecast_nightly", task_id=task_id)
    return {
        "task_instance": ti,
        "logical_date": pendulum.datetime(D.year, D.month, D.day, 2, tz="UTC"),
        "exception": err,
    }


# --- the function ------------------------------------------------------------------------


@pytest.mark.parametrize("password", [SECRET, ENCODED, PERCENT_CASE])
def test_redact_removes_a_url_password_in_any_spelling(password: str) -> None:
    text = f"could not connect to postgresql://etl:{password}@db.internal:5432/wh (timeout)"
    out = redact(text)
    assert not leaks(out), out
    assert (
        out.removeprefix("could not connect to ")
        == "postgresql://etl:***@db.internal:5432/wh (timeout)"
    )


def test_redact_removes_configured_secrets_quoted_anywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", WAREHOUSE_URLS["bad-escape"])
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_DEMO_ERP", ERP_URLS["encoded"])
    monkeypatch.setenv("NIGHTCAST_ALERT_WEBHOOK_URL", "https://hooks.example.com/T0/B0/abcdef123")
    libpq = f'IO: [libpq] Failed to connect: invalid percent-encoded token: "{PERCENT_CASE}"'
    assert redact(libpq) == 'IO: [libpq] Failed to connect: invalid percent-encoded token: "***"'
    assert not leaks(redact(f"bad password {SECRET!r} or {ENCODED}"))
    assert "abcdef123" not in redact("POST https://hooks.example.com/T0/B0/abcdef123 failed")
    assert redact("nothing secret here: 5 rows") == "nothing secret here: 5 rows"


# --- the warehouse URL: the CLI and a task --------------------------------------------------


@pytest.mark.parametrize("case", sorted(WAREHOUSE_URLS))
def test_a_bad_warehouse_url_is_one_line_naming_the_variable_without_the_password(
    case: str,
    deployment: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", WAREHOUSE_URLS[case])
    caplog.set_level(logging.DEBUG)
    code = main(["summary"])
    out, err = capsys.readouterr()
    assert code != 0
    assert not leaks(out, err, *record_texts(caplog))
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "NIGHTCAST_WAREHOUSE_URL" in lines[0]
    assert "nightcast_nobody" in lines[0] or "percent" in lines[0], lines[0]


def test_the_installed_command_prints_no_traceback(deployment: Path) -> None:
    exe = Path(sys.executable).with_name("nightcast")
    env = {
        "PATH": "/usr/bin:/bin",
        "NIGHTCAST_DATA_DIR": str(deployment),
        "NIGHTCAST_WAREHOUSE_URL": WAREHOUSE_URLS["bad-escape"],
    }
    done = subprocess.run(
        [str(exe), "summary"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "NIGHTCAST_WAREHOUSE_URL" in done.stderr
    assert not leaks(done.stdout, done.stderr)


def test_a_task_with_a_bad_warehouse_url_fails_at_once_and_its_alert_holds_no_password(
    deployment: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", WAREHOUSE_URLS["bad-escape"])
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SettingError) as info:
        runs.start_run(get_settings(), D)
    text = "".join(traceback.format_exception(info.value))
    assert "NIGHTCAST_WAREHOUSE_URL" in first_line(info.value)
    on_task_failure(failure_context("start_run", info.value))
    alerts = [r for r in caplog.records if r.name == "nightcast.alerts"]
    assert alerts and "NIGHTCAST_WAREHOUSE_URL" in alerts[0].getMessage()
    assert not leaks(text, *record_texts(caplog))


def test_a_bad_number_setting_names_its_variable(
    deployment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NIGHTCAST_HORIZON_DAYS", "four weeks")
    assert main(["summary"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NIGHTCAST_HORIZON_DAYS" in err and "four weeks" in err


# --- an ERP connection: the extract task, its alert and the run's message ----------------


@pytest.mark.parametrize("case", sorted(ERP_URLS))
def test_a_failing_erp_connection_leaks_its_password_nowhere(
    case: str,
    deployment: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_DEMO_ERP", ERP_URLS[case])
    caplog.set_level(logging.DEBUG)
    settings = get_settings()
    runs.start_run(settings, D)
    with pytest.raises(Exception) as info:
        stages.extract(settings, "demo", D)
    if case != "encoded":  # a URL no driver reads as meant: a settings error, before connecting
        assert isinstance(info.value, SettingError)
        assert "AIRFLOW_CONN_NIGHTCAST_DEMO_ERP" in first_line(info.value)
    on_task_failure(failure_context("extract_demo", info.value))
    with open_warehouse(settings.warehouse_url) as wh:
        alerts = wh.fetchall("select message, rerun_hint from ops.alerts")
        run_rows = wh.fetchall("select status, message from forecast.runs")
    assert len(alerts) == 1 and run_rows[0][0] == "failed"
    assert not leaks(
        "".join(traceback.format_exception(info.value)),
        *record_texts(caplog),
        *alerts[0],
        *run_rows[0],
    )


def test_an_alert_never_carries_a_secret_it_was_handed(
    deployment: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_DEMO_ERP", ERP_URLS["encoded"])
    caplog.set_level(logging.DEBUG)
    alert = Alert(
        kind="task_failed",
        run_date=D,
        dag_id="erp_forecast_nightly",
        task_id="extract_demo",
        severity="critical",
        summary=f"could not open {ERP_URLS['raw']}: password {SECRET!r} refused",
        rerun_hint=f"check mysql://root:{ENCODED}@127.0.0.1:3306/nightcast_erp",
    )
    done = raise_alert(get_settings(), alert)
    with open_warehouse(get_settings().warehouse_url) as wh:
        (row,) = wh.fetchall("select message, rerun_hint from ops.alerts")
    assert "mysql://root:***@127.0.0.1:3306/nightcast_erp" in row[0]
    assert not leaks(done.message(), *row, *record_texts(caplog))


def test_every_task_hands_the_secrets_to_airflows_masker_before_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk._shared.secrets_masker import redact as airflow_redact

    monkeypatch.setenv("AIRFLOW_CONN_NIGHTCAST_DEMO_ERP", ERP_URLS["encoded"])
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags"))
    for dag in bag.dags.values():
        for task in dag.tasks:
            callbacks = task.on_execute_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert mask_secrets in callbacks, (dag.dag_id, task.task_id)
    line = f"OperationalError: mysql://root:{ENCODED}@127.0.0.1 said {SECRET!r}"
    assert not leaks(airflow_redact(redact(line)))  # ours first, then Airflow's
    mask_secrets({})
    assert not leaks(airflow_redact(line)), airflow_redact(line)
