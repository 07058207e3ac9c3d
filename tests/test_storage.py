"""nightcast.storage on the local disk and on a real S3-compatible store (SeaweedFS)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pytest

from nightcast.storage import Location, StorageError, location


@pytest.fixture
def root(store_root: Location) -> Location:
    return store_root


def test_round_trips(root: Location) -> None:
    part = root / "forecast" / "date=2026-01-02" / "part-00000.parquet"
    table = pa.table({"item": ["a", "b", "c"], "qty": [1.0, 2.5, 0.0]})
    part.write_parquet(table)
    assert part.is_file() and part.exists()
    assert part.read_parquet().equals(table)
    assert part.read_parquet(filters=[("item", "in", ["a", "c"])]).num_rows == 2
    meta = root / "model" / "model.json"
    meta.write_bytes(b'{"horizon": 28}')
    assert meta.read_bytes() == b'{"horizon": 28}'
    same = location(part.url)
    assert same == part and same.read_bytes() == part.read_bytes()
    assert [f.relative_to(root) for f in root.files(recursive=True)] == [
        "forecast/date=2026-01-02/part-00000.parquet",
        "model/model.json",
    ]
    assert [f.name for f in part.parent.files("part-*.parquet")] == ["part-00000.parquet"]
    meta.delete()
    meta.delete()  # already gone: nothing to do
    assert not meta.exists()
    part.delete()
    assert root.files(recursive=True) == []


def test_missing_file_names_its_url(root: Location) -> None:
    missing = root / "nowhere" / "history.parquet"
    with pytest.raises(FileNotFoundError, match=rf"{missing.url} does not exist"):
        missing.read_bytes()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        missing.read_parquet()
    assert (root / "nowhere").files() == []


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from nightcast import storage

    target = storage.location(sys.argv[1])
    staged = target._staged()
    rng = np.random.default_rng(0)
    batch = pa.table({"v": rng.random(1_000_000)})
    with pq.ParquetWriter(staged, batch.schema, filesystem=target.fs) as writer:
        for i in range(10_000):
            writer.write_table(batch)
            if i == 2:
                print("writing", flush=True)
    target._commit(staged)
    """
)


def test_killed_writer_leaves_the_previous_file(root: Location) -> None:
    """A writer killed mid-file (SIGKILL, nothing runs after it) never replaces the target."""
    target = root / "forecast_input" / "history.parquet"
    before = pa.table({"v": [1.0, 2.0, 3.0]})
    target.write_parquet(before)
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, target.url], stdout=subprocess.PIPE, env=dict(os.environ)
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == b"writing", line
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert target.read_parquet().equals(before)
    # The next whole write replaces it; the killed writer's temporary file is no reader's.
    after = pa.table({"v": [4.0]})
    target.write_parquet(after)
    assert target.read_parquet().equals(after)
    assert [f.name for f in target.parent.files("*.parquet")] == ["history.parquet"]


def test_location_errors() -> None:
    with pytest.raises(StorageError, match="scheme 'gs' is not supported"):
        location("gs://bucket/lake")
    with pytest.raises(StorageError, match="names no bucket"):
        location("s3://")
    assert location("s3://bucket/lake/").url == "s3://bucket/lake"
    assert location("s3://bucket/lake") / "a/b" == location("s3://bucket/lake/a/b")
    with pytest.raises(StorageError, match="not on the local disk"):
        location("s3://bucket/lake").local_path()


def test_storage_check_creates_a_missing_bucket_only_when_asked(
    s3_root: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`nightcast storage-check` (docker-compose's airflow-init runs it): a bucket that
    does not exist is named; with --create-buckets it is made, and every store probed."""
    from nightcast.cli import main

    bucket = f"fresh-{os.urandom(4).hex()}"
    monkeypatch.setenv("NIGHTCAST_LAKE_URL", f"s3://{bucket}/lake")
    monkeypatch.setenv("NIGHTCAST_MODELS_URL", f"{s3_root}/models")
    monkeypatch.setenv("NIGHTCAST_REPORTS_URL", f"s3://{bucket}/reports")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOGGING", "True")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", f"{s3_root}/logs")
    assert main(["storage-check"]) == 1
    err = capsys.readouterr().err
    assert f"lake (NIGHTCAST_LAKE_URL): FAILED: s3://{bucket}/lake: bucket {bucket!r}" in err
    # A fresh SeaweedFS bucket grows its first volume on the first write: --wait retries.
    assert main(["storage-check", "--create-buckets", "--wait", "60"]) == 0
    out = capsys.readouterr().out
    assert f"s3://{bucket}/lake: write, read and delete ok (bucket {bucket} created)" in out
    assert "task logs (AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER)" in out
    assert location(f"s3://{bucket}/lake").files(recursive=True) == []  # no probe left
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(StorageError, match=r"s3://.*/models"):
        from nightcast.storage import check_store

        check_store(location(f"{s3_root}/models"), wait_s=0)


@pytest.mark.parametrize("form", ["json", "uri"])
def test_credentials_from_an_airflow_connection(
    s3_root: str, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """NIGHTCAST_S3_CONN_ID: endpoint, region and keys from AIRFLOW_CONN_<ID> (the form
    Airflow reads), not from the AWS_* variables."""
    import json
    import urllib.parse

    env = {
        k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    for key in env:
        monkeypatch.delenv(key)
    if form == "json":
        conn = json.dumps(
            {
                "conn_type": "aws",
                "login": env["AWS_ACCESS_KEY_ID"],
                "password": env["AWS_SECRET_ACCESS_KEY"],
                "extra": {"endpoint_url": env["AWS_ENDPOINT_URL"], "region_name": "us-east-1"},
            }
        )
    else:
        query = urllib.parse.urlencode({"endpoint_url": env["AWS_ENDPOINT_URL"]})
        conn = f"aws://{env['AWS_ACCESS_KEY_ID']}:{env['AWS_SECRET_ACCESS_KEY']}@/?{query}"
    monkeypatch.setenv("AIRFLOW_CONN_LAKE_STORE", conn)
    monkeypatch.setenv("NIGHTCAST_S3_CONN_ID", "lake_store")
    target = location(s3_root) / "via-connection.txt"
    target.write_bytes(b"signed with the connection's keys")
    assert target.read_bytes() == b"signed with the connection's keys"
    monkeypatch.setenv("NIGHTCAST_S3_CONN_ID", "no_such_conn")
    with pytest.raises(
        StorageError, match=r"NIGHTCAST_S3_CONN_ID=.no_such_conn.*AIRFLOW_CONN_NO_SUCH_CONN"
    ):
        target.read_bytes()
