"""Docker machinery for the deployment test (tests/deploy/test_stack.py).

- :func:`docker_engine`: a reachable Docker engine (the user's, or one this module
  starts as root with no bridge network, on its own socket and data root);
- :func:`prepare_images`: the official images where they can be pulled, stand-ins
  built from Debian packages (deploy/offline/build.sh) where they cannot;
- :class:`Stack`: ``docker compose`` (the venv's Compose v2) for one project, with
  helpers that run the REST API, psql and the airflow CLI *inside* the stack, since
  it publishes nothing on the host.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import textwrap
import time
from base64 import urlsafe_b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
LOOPBACK = ROOT / "deploy" / "test" / "loopback.yaml"
OFFLINE_BUILD = ROOT / "deploy" / "offline" / "build.sh"
# Our own engine, when none is reachable: kept between runs (its images are a cache).
OWN_SOCKET = Path("/run/nightcast-docker/docker.sock")
OWN_DATA_ROOT = Path("/var/lib/nightcast-docker")
# Third-party services of docker-compose.yaml -> the stand-in of deploy/offline/.
OFFLINE_STAND_INS = {
    "postgres": "nightcast-offline/postgres:15",
    "redis": "nightcast-offline/redis:7",
    "mariadb-erp": "nightcast-offline/mariadb:10.11",
    "seaweedfs": "nightcast-offline/seaweedfs:4.48",
}
OFFLINE_PYTHON = "nightcast-offline/python:3.11"


class Unavailable(RuntimeError):
    """What the test needs cannot be had on this machine (the test skips, or fails in CI)."""


def run_command(
    cmd: list[str], env: dict[str, str], timeout: float, check: bool = True, **kw: Any
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False, **kw
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(cmd[:6])} ...` exited {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def _engine_answers(env: dict[str, str]) -> bool:
    try:
        return run_command(["docker", "info"], env, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def docker_engine(log_dir: Path) -> Iterator[dict[str, str]]:
    """Environment (DOCKER_HOST) of a Docker engine that answers; starts one if needed.

    Tried in order: the engine the environment points at; ours on OWN_SOCKET; a new
    ``dockerd`` (root only) with no bridge, no iptables and its own data root, which
    is stopped again afterwards (its images stay, as a cache).
    """
    if shutil.which("docker") is None:
        raise Unavailable("the docker CLI is not installed (apt-get install docker.io)")
    env = dict(os.environ)
    if _engine_answers(env):
        yield env
        return
    env["DOCKER_HOST"] = f"unix://{OWN_SOCKET}"
    if _engine_answers(env):
        yield env
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        raise Unavailable(
            "no Docker engine answers and none can be started here "
            f"({'dockerd is not installed' if dockerd is None else 'not root'})"
        )
    OWN_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    OWN_DATA_ROOT.mkdir(parents=True, exist_ok=True)
    log = (log_dir / "dockerd.log").open("w")
    proc = subprocess.Popen(
        [
            dockerd,
            "--iptables=false",
            "--ip-masq=false",
            "--bridge=none",
            f"--data-root={OWN_DATA_ROOT}",
            f"--exec-root={OWN_SOCKET.parent / 'exec'}",
            f"--pidfile={OWN_SOCKET.parent / 'dockerd.pid'}",
            f"--host=unix://{OWN_SOCKET}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _engine_answers(env):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise Unavailable(
                    "dockerd did not start: " + (log_dir / "dockerd.log").read_text()[-1500:]
                )
            time.sleep(1)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _pullable(image: str, env: dict[str, str]) -> bool:
    """Present already, or pulled now (a registry that cannot be reached fails fast)."""
    if (
        run_command(["docker", "image", "inspect", image], env, timeout=30, check=False).returncode
        == 0
    ):
        return True
    try:
        return (
            run_command(["docker", "pull", "-q", image], env, timeout=300, check=False).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


def dockerfile_base_image() -> str:
    m = re.search(r"^ARG BASE_IMAGE=(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert m, "the Dockerfile declares no ARG BASE_IMAGE default"
    return m[1]


@dataclass
class Images:
    base: str  # the Dockerfile's BASE_IMAGE
    service_images: dict[str, str] = field(default_factory=dict)  # service -> stand-in
    offline: list[str] = field(default_factory=list)  # what had to be built from Debian

    def override(self, path: Path) -> Path | None:
        """A compose override that swaps in the stand-ins (None: all official)."""
        if not self.service_images:
            return None
        doc = {"services": {s: {"image": i} for s, i in self.service_images.items()}}
        path.write_text(yaml.safe_dump(doc))
        return path


def prepare_images(env: dict[str, str]) -> Images:
    """Official images where they can be had; deploy/offline stand-ins for the rest."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    images = Images(base=dockerfile_base_image())
    wanted: list[str] = []
    if not _pullable(images.base, env):
        images.base = OFFLINE_PYTHON
        wanted.append("python")
    for service, stand_in in OFFLINE_STAND_INS.items():
        if not _pullable(compose[service]["image"], env):
            images.service_images[service] = stand_in
            wanted.append(stand_in.split("/", 1)[1].split(":", 1)[0])
    if wanted:
        if os.geteuid() != 0 or shutil.which("debootstrap") is None:
            raise Unavailable(
                f"cannot pull {wanted} and cannot build stand-ins (needs root and debootstrap)"
            )
        run_command(["bash", str(OFFLINE_BUILD), *wanted], env, timeout=1800)
        images.offline = wanted
    return images


def fernet_key() -> str:
    return urlsafe_b64encode(secrets.token_bytes(32)).decode()


def filled_env_file(path: Path, overrides: dict[str, str]) -> dict[str, str]:
    """.env.example with every change-me replaced by a fresh URL-safe secret."""
    values: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition("=")
        if value == "change-me":
            value = fernet_key() if key == "AIRFLOW_FERNET_KEY" else secrets.token_hex(16)
        values[key] = value
    values.update(overrides)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return values


# Runs inside the api-server container: one REST call as the admin user of .env.
_REST = textwrap.dedent(
    """
    import json, os, sys, urllib.error, urllib.request
    base = "http://127.0.0.1:8080"
    def call(method, path, body=None, token=None):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")
    status, tok = call("POST", "/auth/token", {
        "username": os.environ.get("AIRFLOW_ADMIN_USER") or "admin",
        "password": os.environ["AIRFLOW_ADMIN_PASSWORD"],
    })
    if status >= 300:
        sys.exit(f"login failed: {status} {tok}")
    method, path, body = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    status, out = call(method, path, body, tok["access_token"])
    print(json.dumps({"status": status, "body": out}))
    """
)


@dataclass
class Stack:
    """One compose project: ``docker compose -p NAME -f ... --env-file ... --profile ...``."""

    project: str
    files: list[Path]
    env_file: Path
    values: dict[str, str]
    engine_env: dict[str, str]
    profiles: tuple[str, ...] = ("demo",)

    @property
    def compose_cmd(self) -> list[str]:
        exe = Path(sys.executable).with_name("docker-compose")
        cmd = [str(exe)] if exe.exists() else ["docker", "compose"]
        cmd += ["--project-name", self.project, "--project-directory", str(ROOT)]
        for f in self.files:
            cmd += ["-f", str(f)]
        cmd += ["--env-file", str(self.env_file)]
        for p in self.profiles:
            cmd += ["--profile", p]
        return cmd

    def compose(
        self, *args: str, timeout: float = 600, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_command([*self.compose_cmd, *args], self.engine_env, timeout, check, input=input)

    def exec(
        self, service: str, *argv: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        flags = [f"--env={k}={v}" for k, v in (env or {}).items()]
        return self.compose("exec", "-T", *flags, service, *argv, timeout=timeout, check=False)

    def rest(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        proc = self.exec(
            "airflow-apiserver", "python", "-c", _REST, method, path, json.dumps(body), timeout=120
        )
        if proc.returncode != 0:
            raise RuntimeError(f"REST {method} {path}: {proc.stderr[-2000:]}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        return int(out["status"]), out["body"]

    def sql(self, query: str, *, role: str = "nightcast", password: str | None = None) -> str:
        """psql over TCP in the postgres container, as ``role`` with its password."""
        pw = password if password is not None else self.values["NIGHTCAST_WAREHOUSE_PASSWORD"]
        proc = self.exec(
            "postgres",
            "psql", "-h", "127.0.0.1", "-U", role, "-d", "nightcast", "-X", "-A", "-t",
            "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", query,
            env={"PGPASSWORD": pw},
        )  # fmt: skip
        if proc.returncode != 0:
            raise PermissionError(proc.stderr.strip())
        return proc.stdout.strip()

    def erp_sql(self, query: str) -> str:
        proc = self.exec(
            "mariadb-erp",
            "mariadb", "-h", "127.0.0.1", "-u", "root", "erp", "-N", "-B", "-e", query,
            env={"MYSQL_PWD": self.values["MARIADB_ROOT_PASSWORD"]},
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"ERP query failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def logs(self, *services: str, tail: int = 200) -> str:
        proc = self.compose("logs", "--no-color", f"--tail={tail}", *services, check=False)
        return proc.stdout + proc.stderr
