"""One validated settings object: every NIGHTCAST_* variable, set to a bad value in turn,
gets a one-line error naming it (and its value, unless it may hold a secret)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nightcast.config import (
    PROJECT_ROOT,
    SettingError,
    Settings,
    env_name,
    get_settings,
)

# A bad value for every field; "{file}" / "{folder}" are filled with a real file/folder.
BAD = {
    "data_dir": "{file}",
    "lake_url": "gs://bucket/lake",
    "models_url": "hdfs://nn/models",
    "reports_url": "ftp://host/reports",
    "models_dir": "{file}",
    "s3_conn_id": "my conn",
    "warehouse_conn_id": "my/warehouse",
    "alert_conn_id": "pager duty",
    "warehouse_path": "{folder}",
    "warehouse_url": "postgresql+psycopg://nightcast:p@ss@db:5432/nightcast",
    "sources_dir": "/no/such/mappings",
    "dbt_project_dir": "/no/such/dbt_project",
    "dbt_target": "oracle",
    "expectations_dir": "/no/such/expectations",
    "timezone": "Mars/Base",
    "horizon_days": "abc",
    "lookback_days": "-1",
    "forecast_batch_series": "0",
    "simulated_sources": "demo, Demo ERP!",
    "lightgbm_device": "tpu",
    "lightgbm_num_threads": "two",
    "explain_top_k": "0",
    "explain_max_series": "-5",
    "shadow": "maybe",
    "promotion_margin": "1.5",
    "baseline_margin": "-2",
    "coverage_min": "0",
    "coverage_max": "1.2",
    "holdout_windows": "0",
    "dask_address": "scheduler without port",
    "dask_timeout_s": "0",
    "accuracy_lookback_days": "0",
    "drift_psi_max": "-1",
    "accuracy_wape_max": "zero",
    "accuracy_degradation_max": "0",
    "publish_deadline": "25:99",
    "alert_webhook_url": "hooks.slack.com/T000/B000/secret",
    "alert_email_to": "oncall@example.com, not-an-address",
    "alert_email_from": "nightcast",
    "smtp_host": "smtp://mail.example.com:25",
    "smtp_port": "70000",
    "statsd_host": "statsd exporter",
    "statsd_port": "0",
    "statsd_prefix": "night cast",
    "actor": "   ",
    "code_version": "v1\tbeta",
}
# May hold a password or a token: the error names the variable, never the value.
SECRET = {"warehouse_url", "alert_webhook_url"}


def test_every_setting_has_a_bad_value_here() -> None:
    assert set(BAD) == set(Settings.model_fields)


@pytest.mark.parametrize("field", sorted(BAD))
def test_a_bad_value_fails_in_one_line_naming_the_variable(
    field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-folder").mkdir()
    value = BAD[field].format(file=tmp_path / "a-file", folder=tmp_path / "a-folder")
    var = env_name(field)
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingError) as err:
        get_settings()
    message = str(err.value)
    assert "\n" not in message and message.startswith(var), message
    if field in SECRET:
        assert value not in message and "p@ss" not in message, message
    else:
        assert repr(value) in message, message


def test_good_values_are_read_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "NIGHTCAST_DATA_DIR": str(tmp_path / "data"),
        "NIGHTCAST_HORIZON_DAYS": "14",
        "NIGHTCAST_TIMEZONE": "Europe/Berlin",
        "NIGHTCAST_SIMULATED_SOURCES": "demo, acme",
        "NIGHTCAST_ALERT_EMAIL_TO": "a@example.com,b@example.com",
        "NIGHTCAST_SHADOW": "1",
        "NIGHTCAST_LIGHTGBM_DEVICE": "auto",
        "LIGHTGBM_NUM_THREADS": "2",
        "NIGHTCAST_DASK_ADDRESS": "tcp://dask-scheduler:8786",
        "NIGHTCAST_PUBLISH_DEADLINE": "07:15",
        "NIGHTCAST_DASK_TIMEOUT_S": "",  # empty = unset (compose passes empty values)
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("NIGHTCAST_WAREHOUSE_PATH", raising=False)  # set by conftest
    s = get_settings()
    assert s.data_dir == tmp_path / "data"
    assert s.warehouse_url == f"duckdb:///{tmp_path / 'data' / 'warehouse.duckdb'}"
    assert (s.horizon_days, s.timezone, s.shadow, s.lightgbm_num_threads) == (
        14, "Europe/Berlin", True, 2
    )  # fmt: skip
    assert s.simulated_sources == ("demo", "acme")
    assert s.alert_email_to == ("a@example.com", "b@example.com")
    assert (s.deadline.hour, s.deadline.minute, s.dask_timeout_s) == (7, 15, 3600.0)


def test_a_coverage_band_upside_down_names_both_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NIGHTCAST_COVERAGE_MIN", "0.9")
    monkeypatch.setenv("NIGHTCAST_COVERAGE_MAX", "0.8")
    with pytest.raises(
        SettingError, match=r"NIGHTCAST_COVERAGE_MIN \(0.9\).*NIGHTCAST_COVERAGE_MAX"
    ):
        get_settings()


# Where the package may still read the environment itself: the settings module, the
# storage layer (AWS_* and NIGHTCAST_S3_CONN_ID: it sits below the settings), Airflow's
# own context and home, the AIRFLOW_CONN_<ID> variables outside a task (connections.py), (metrics, the CLI and demo that set Airflow up), the child
# processes of the bulk extract (passing the environment on) and dbt, whose profile
# reads the variables the warehouse URL is turned into.
ENVIRON_ALLOWED = {
    "transform/dbt.py",
    "config.py",
    "storage.py",
    "connections.py",
    "monitoring/metrics.py",
    "cli.py",
    "demo.py",
    "sources/bulk.py",
}


def test_only_the_settings_module_reads_nightcast_variables() -> None:
    package = PROJECT_ROOT / "include" / "nightcast"
    readers = {
        p.relative_to(package).as_posix()
        for p in package.rglob("*.py")
        if "os.environ" in p.read_text()
    }
    assert readers <= ENVIRON_ALLOWED, readers - ENVIRON_ALLOWED
    # Every NIGHTCAST_* name the package spells is a declared setting (or a renamed one,
    # refused by name), so a new variable cannot bypass validation and the reference.
    declared = {env_name(f) for f in Settings.model_fields} | {"NIGHTCAST_LAKE_DIR"}
    # Defaults of two CLI options, not pipeline settings: `nightcast demo --size` and the
    # variable `nightcast bi-role` reads the BI role's password from.
    declared |= {"NIGHTCAST_DEMO_SIZE", "NIGHTCAST_BI_PASSWORD"}
    spelled: set[str] = set()
    for p in package.rglob("*.py"):
        spelled |= set(re.findall(r"\bNIGHTCAST_[A-Z0-9_]*[A-Z0-9]\b", p.read_text()))
    undeclared = {n for n in spelled if n not in declared and not n.startswith("NIGHTCAST_PG_")}
    assert undeclared == set(), undeclared


def test_the_configuration_reference_is_generated_from_the_code() -> None:
    from nightcast.config import reference_markdown

    doc = PROJECT_ROOT / "docs" / "configuration.md"
    assert doc.read_text() == reference_markdown(), (
        "docs/configuration.md is stale: .venv/bin/nightcast config reference > docs/configuration.md"
    )
    for name in Settings.model_fields:
        assert f"`{env_name(name)}`" in doc.read_text()


def test_failure_callbacks_still_get_settings_when_one_is_bad(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """on_task_failure pages on-call with lenient settings: the bad variable at its
    default, the others as set; a bad warehouse URL never becomes another warehouse."""
    from nightcast.config import lenient_settings

    monkeypatch.setenv("NIGHTCAST_HORIZON_DAYS", "abc")
    monkeypatch.setenv("NIGHTCAST_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", "postgresql://u:p@ss@db/x")
    s = lenient_settings()
    assert (s.horizon_days, s.timezone) == (28, "Europe/Berlin")
    assert s.warehouse_url.startswith("unusable://") and "p@ss" not in s.warehouse_url
    monkeypatch.setenv("NIGHTCAST_COVERAGE_MIN", "0.9")
    monkeypatch.setenv("NIGHTCAST_COVERAGE_MAX", "0.8")
    fallback = lenient_settings()  # a rule across variables: all defaults
    assert fallback.timezone == "UTC" and fallback.warehouse_url.startswith("unusable://")
    assert fallback.warehouse_path.name == "warehouse.duckdb"
