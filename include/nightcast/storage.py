"""Where the pipeline's files live: a local folder or an S3-compatible bucket.

A :class:`Location` is one file or folder on one filesystem, named by a URL:
a local path (the embedded default) or ``s3://bucket/prefix`` on any
S3-compatible store (AWS S3, MinIO, SeaweedFS, Ceph). Every reader and writer
that goes through it works the same on both.

The filesystem layer is pyarrow's (``pyarrow.fs``): already the Parquet reader
and writer of the pipeline, so S3 costs no extra dependency, and its S3 client
is the AWS C++ SDK (multipart uploads, credential chain). Credentials come from
the SDK's standard chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN``, a profile, an instance role), the endpoint of a store
other than AWS from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, the region
from ``AWS_REGION`` / ``AWS_DEFAULT_REGION``; or, with ``NIGHTCAST_S3_CONN_ID``
set, all four from that Airflow connection (``AIRFLOW_CONN_<ID>``, type aws:
login, password, extra ``endpoint_url`` and ``region_name``). Nothing is read
from a file in the repository.

Writes are whole or absent: a file is written to a temporary name next to
its target and then moved over it (a rename on disk; on S3 a server-side copy,
which replaces the object whole, and the temporary key's deletion), so a
writer killed halfway leaves the previous file readable on both. A killed
writer's temporary file stays behind (``TMP_MARK`` in its name, skipped by
:meth:`Location.files`). S3's single CopyObject moves objects up to 5 GB: the
pipeline's files are far smaller (an artifact is a few MB; a night's input
snapshot at 30k series ~100 MB), and a larger one fails loudly, never half-moved.

A folder of several files that must appear together (a landing's parts) is a
*partition*: its parts are written under names of their attempt and committed by
one whole-or-absent manifest naming them (:func:`commit_partition`); readers
read only what the manifest names (:func:`partition_parts`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nightcast.connections import ConnectionFormatError, ConnectionNotFoundError, get_connection

if TYPE_CHECKING:  # pyarrow loads on first use: DAG files parse without it
    import pyarrow as pa
    import pyarrow.fs as pafs

S3 = "s3"
LOCAL = "file"
# Infix of a write's temporary name: ``part-00001.parquet.tmp-<id>`` matches no reader's
# pattern (``*.parquet``, ``model.json``).
TMP_MARK = ".tmp-"


class StorageError(RuntimeError):
    """A file the pipeline needs cannot be read or written; the message names its URL."""


# Optional: the Airflow connection (type aws) the store's endpoint and keys come from,
# instead of the AWS_* variables; the one docker-compose's task logs use, for example.
CONN_ID_VAR = "NIGHTCAST_S3_CONN_ID"


@dataclass(frozen=True)
class S3Options:
    endpoint: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None


def _aws_connection(conn_id: str) -> S3Options:
    """Endpoint, region and keys of the Airflow connection ``conn_id`` (type aws): inside a
    task through Airflow's connection API, else from ``AIRFLOW_CONN_<ID>`` (JSON, or a URI
    ``aws://KEY:SECRET@/?endpoint_url=...``)."""
    try:
        conn = get_connection(conn_id)
    except (ConnectionNotFoundError, ConnectionFormatError) as exc:
        raise StorageError(f"{CONN_ID_VAR}={conn_id!r}: {exc}") from None
    extra = conn.extra
    return S3Options(
        endpoint=extra.get("endpoint_url") or None,
        region=extra.get("region_name") or None,
        access_key=conn.login or None,
        secret_key=conn.password or None,
    )


def s3_options() -> S3Options:
    """Where the S3 store is and how to sign in: the Airflow connection named by
    ``NIGHTCAST_S3_CONN_ID`` when set, else the AWS_* variables (and the SDK's chain:
    a profile, an instance role)."""
    conn_id = os.environ.get(CONN_ID_VAR, "").strip()
    if conn_id:
        return _aws_connection(conn_id)
    return S3Options(
        endpoint=os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None,
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
    )


@lru_cache(maxsize=8)
def _s3(options: S3Options, create_buckets: bool = False) -> pafs.S3FileSystem:
    import pyarrow.fs as pafs

    kwargs: dict[str, Any] = {"allow_bucket_creation": create_buckets}
    if options.endpoint:
        scheme, _, host = options.endpoint.partition("://")
        kwargs.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    if options.region:
        kwargs["region"] = options.region
    if options.access_key and options.secret_key:
        kwargs.update(access_key=options.access_key, secret_key=options.secret_key)
    return pafs.S3FileSystem(**kwargs)


def s3_filesystem() -> pafs.S3FileSystem:
    """The S3 filesystem of the current environment (cached per endpoint, region, keys)."""
    return _s3(s3_options())


@dataclass(frozen=True)
class Location:
    """One file or folder: ``scheme`` 'file' (an absolute local path) or 's3' (bucket/key)."""

    scheme: str
    path: str

    # ------------------------------------------------------------------ naming
    @property
    def url(self) -> str:
        return f"s3://{self.path}" if self.scheme == S3 else self.path

    def __str__(self) -> str:
        return self.url

    def __truediv__(self, name: str) -> Location:
        name = str(name).strip("/")
        return Location(self.scheme, posixpath.join(self.path, name) if name else self.path)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    @property
    def parent(self) -> Location:
        return Location(self.scheme, posixpath.dirname(self.path.rstrip("/")))

    @property
    def is_local(self) -> bool:
        return self.scheme == LOCAL

    def local_path(self) -> Path:
        """The local path (only for a local location)."""
        if not self.is_local:
            raise StorageError(f"{self.url} is not on the local disk")
        return Path(self.path)

    @property
    def fs(self) -> pafs.FileSystem:
        import pyarrow.fs as pafs

        return s3_filesystem() if self.scheme == S3 else pafs.LocalFileSystem()

    # ------------------------------------------------------------------ queries
    def _info(self) -> pafs.FileInfo:
        try:
            return self.fs.get_file_info(self.path)
        except OSError as exc:
            raise StorageError(f"cannot reach {self.url}: {exc}") from exc

    def exists(self) -> bool:
        return self._info().type.name != "NotFound"

    def is_file(self) -> bool:
        return self._info().type.name == "File"

    def files(self, pattern: str = "*", recursive: bool = False) -> list[Location]:
        """Files under this folder whose name (relative path if recursive) matches, sorted."""
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=recursive)
        try:
            infos = self.fs.get_file_info(selector)
        except OSError as exc:
            raise StorageError(f"cannot list {self.url}: {exc}") from exc
        root = self.path.rstrip("/") + "/"
        out = []
        for info in infos:
            rel = info.path[len(root) :] if info.path.startswith(root) else info.base_name
            if info.type != pafs.FileType.File or TMP_MARK in rel:
                continue  # a write (or scratch folder) in progress or killed: not a file yet
            if fnmatch.fnmatchcase(rel if recursive else info.base_name, pattern):
                out.append(Location(self.scheme, info.path))
        return sorted(out, key=lambda loc: loc.path)

    def relative_to(self, root: Location) -> str:
        prefix = root.path.rstrip("/") + "/"
        if not self.path.startswith(prefix):
            raise StorageError(f"{self.url} is not under {root.url}")
        return self.path[len(prefix) :]

    # ------------------------------------------------------------------ reading
    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Read errors named by URL: FileNotFoundError when the file is gone, else StorageError."""
        try:
            yield
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{self.url} does not exist") from exc
        except OSError as exc:
            if not self.exists():
                raise FileNotFoundError(f"{self.url} does not exist") from exc
            raise StorageError(f"cannot read {self.url}: {exc}") from exc

    def read_bytes(self) -> bytes:
        with self._reading(), self.fs.open_input_stream(self.path) as f:
            return bytes(f.read())

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def open_input(self) -> pa.NativeFile:
        """A seekable reader of this file (Parquet footers, batch iteration)."""
        with self._reading():
            return self.fs.open_input_file(self.path)

    def read_parquet(self, columns: list[str] | None = None, filters: Any = None) -> pa.Table:
        import pyarrow.parquet as pq

        if not self.is_file():
            raise FileNotFoundError(f"{self.url} does not exist")
        try:
            return pq.read_table(self.path, columns=columns, filters=filters, filesystem=self.fs)
        except OSError as exc:
            raise StorageError(f"cannot read Parquet {self.url}: {exc}") from exc

    # ------------------------------------------------------------------ writing
    def _staged(self) -> str:
        """A temporary sibling the write goes to first (moved over the target when whole)."""
        if self.scheme == LOCAL:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        return f"{self.path}{TMP_MARK}{uuid.uuid4().hex[:12]}"

    def _commit(self, staged: str) -> None:
        # Local: a rename. S3: a server-side copy (CopyObject replaces the object
        # whole) and the temporary key's deletion. A writer killed before this point
        # leaves only a temporary key, which no reader addresses.
        self.fs.move(staged, self.path)

    def _abort(self, staged: str) -> None:
        with contextlib.suppress(OSError):
            self.fs.delete_file(staged)

    def write_bytes(self, data: bytes) -> None:
        staged = self._staged()
        try:
            with self.fs.open_output_stream(staged) as f:
                f.write(data)
            self._commit(staged)
        except OSError as exc:
            self._abort(staged)
            raise StorageError(f"cannot write {self.url}: {exc}") from exc

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def put_file(self, local: Path, *, fresh_name: bool = False) -> None:
        """Publish a finished local file here, whole or not at all (the local file is used up).

        ``fresh_name``: this name was never read (a part of a partition attempt, made
        visible by the manifest later), so on S3 the upload goes to it directly, without
        the temporary key and the server-side copy.
        """
        if self.is_local:
            target = Path(self.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(local, target)  # same filesystem: one atomic rename
                return
            except OSError:
                pass  # another device: copy to a sibling, then rename
        import pyarrow.fs as pafs

        staged = self.path if fresh_name and not self.is_local else self._staged()
        try:
            pafs.copy_files(
                str(local),
                staged,
                source_filesystem=pafs.LocalFileSystem(),
                destination_filesystem=self.fs,
            )
            if staged != self.path:
                self._commit(staged)
        except OSError as exc:
            self._abort(staged)
            raise StorageError(f"cannot write {self.url}: {exc}") from exc
        local.unlink(missing_ok=True)

    @contextlib.contextmanager
    def staged_file(self, suffix: str = "") -> Iterator[Path]:
        """A local path to write this file's content to (streaming writers: Parquet
        writers, GX); published here by :meth:`put_file` when the block ends without an
        error, deleted otherwise. On a local location it sits beside the target (the
        publish is a rename); on S3 in the system's temporary folder."""
        if self.is_local:
            tmp = Path(self._staged() + suffix)
        else:
            fd, name = tempfile.mkstemp(prefix="nightcast-", suffix=f"-{self.name}{suffix}")
            os.close(fd)
            tmp = Path(name)
        try:
            yield tmp
            self.put_file(tmp)
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """A local scratch folder for a writer of this folder, removed afterwards: inside
        the folder on a local disk (the lake's disk, and a publish is a rename), in the
        system's temporary folder for S3."""
        parent = None
        if self.is_local:
            Path(self.path).mkdir(parents=True, exist_ok=True)
            parent = self.path
        with tempfile.TemporaryDirectory(prefix=f"{TMP_MARK}scratch-", dir=parent) as tmp:
            yield Path(tmp)

    def upload_tree(self, local: Path) -> None:
        """Copy every file under the local folder ``local`` here, keeping relative paths
        (each file written whole)."""
        for file in sorted(p for p in local.rglob("*") if p.is_file()):
            target = self / file.relative_to(local).as_posix()
            if self.is_local:
                Path(target.path).parent.mkdir(parents=True, exist_ok=True)
                staged = target._staged()
                shutil.copyfile(file, staged)
                target._commit(staged)
            else:
                target.write_bytes(file.read_bytes())

    def write_parquet(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        staged = self._staged()
        try:
            pq.write_table(table, staged, filesystem=self.fs)
            self._commit(staged)
        except OSError as exc:
            self._abort(staged)
            raise StorageError(f"cannot write Parquet {self.url}: {exc}") from exc

    def delete(self) -> None:
        """Remove this file (nothing when it is already gone)."""
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if self.exists():
                raise StorageError(f"cannot delete {self.url}: {exc}") from exc

    def delete_tree(self) -> None:
        """Remove this folder and everything under it (nothing when it is absent)."""
        try:
            if self.exists():
                self.fs.delete_dir(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete {self.url}: {exc}") from exc


# ---------------------------------------------------------------------- partitions
# A partition is a folder of parts made visible as one: the writer writes its parts
# under names no earlier attempt used, then the manifest naming exactly those parts
# (one whole-or-absent write: the commit), then deletes the parts of earlier attempts.
# Readers read the parts the manifest names, nothing else: a writer killed before its
# commit leaves the previous partition as it was, on S3 (no rename) as on local disk.
MANIFEST = "_manifest.json"


def new_attempt() -> str:
    """A name for one write attempt of a partition, unique in practice."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def commit_partition(folder: Location, parts: list[str], **info: Any) -> None:
    """Make ``parts`` (file names under ``folder``, in read order) the partition, then
    delete the files of earlier attempts (any other ``*.parquet`` in the folder)."""
    manifest = {
        "parts": list(parts),
        "committed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **info,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    keep = set(parts)
    for stale in folder.files("*.parquet"):
        if stale.name not in keep:
            stale.delete()


def read_manifest(folder: Location) -> dict[str, Any] | None:
    """The partition's manifest, or None when no attempt ever committed."""
    try:
        raw = (folder / MANIFEST).read_text()
    except FileNotFoundError:
        return None
    try:
        manifest: dict[str, Any] = json.loads(raw)
        if not isinstance(manifest.get("parts"), list):
            raise ValueError("no list of parts")
    except ValueError as exc:
        raise StorageError(f"{folder / MANIFEST} is not a partition manifest: {exc}") from exc
    return manifest


def partition_parts(folder: Location) -> list[Location]:
    """The committed parts of the partition at ``folder``, in read order ([] when none).

    A part the manifest names but the store lacks is an error naming both: something
    other than the pipeline deleted it.
    """
    manifest = read_manifest(folder)
    if manifest is None:
        return []
    parts = [folder / name for name in manifest["parts"]]
    present = {p.name for p in folder.files("*")}
    missing = [p.name for p in parts if p.name not in present]
    if missing:
        raise StorageError(
            f"partition {folder} names part(s) {missing} in {MANIFEST} that are not in the "
            "store: they were deleted outside the pipeline; rerun the task that writes it"
        )
    return parts


def check_store(target: Location, *, create_bucket: bool = False, wait_s: float = 0.0) -> str:
    """Prove ``target`` usable: (on S3, its bucket created first if asked and missing)
    a probe file written, read back, listed and deleted. Retries for ``wait_s`` seconds
    while the store does not answer (a store starting beside the caller); raises
    :class:`StorageError` naming the URL. Returns a one-line description."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _probe(target, create_bucket)
        except (OSError, StorageError) as exc:
            if time.monotonic() >= deadline:
                if isinstance(exc, StorageError):
                    raise
                raise StorageError(f"{target}: {exc}") from exc
            time.sleep(2)


def _probe(target: Location, create_bucket: bool) -> str:
    import pyarrow.fs as pafs

    created = ""
    if not target.is_local:
        bucket = target.path.split("/", 1)[0]
        fs = _s3(s3_options(), create_buckets=create_bucket)
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            if not create_bucket:
                raise StorageError(f"{target}: bucket {bucket!r} does not exist")
            fs.create_dir(bucket)
            created = f" (bucket {bucket} created)"
    probe = target / f"_nightcast_probe{TMP_MARK}{uuid.uuid4().hex[:8]}"
    body = f"nightcast storage check {datetime.now(UTC).isoformat()}".encode()
    probe.write_bytes(body)
    try:
        if probe.read_bytes() != body:
            raise StorageError(f"{target}: a probe file read back different bytes")
    finally:
        probe.delete()
    return f"{target}: write, read and delete ok{created}"


def location(target: str | Path | Location) -> Location:
    """The :class:`Location` of a local path or an ``s3://bucket/key`` URL."""
    if isinstance(target, Location):
        return target
    raw = str(target)
    if raw.startswith("s3://") or raw.startswith("s3a://"):
        path = raw.split("://", 1)[1].strip("/")
        if not path or path.startswith("/"):
            raise StorageError(f"{raw!r} names no bucket: use s3://bucket/prefix")
        return Location(S3, path)
    if "://" in raw and not raw.startswith("file://"):
        scheme = raw.split("://", 1)[0]
        raise StorageError(
            f"{raw!r}: storage scheme {scheme!r} is not supported; use a local path or s3://bucket/prefix"
        )
    local = Path(raw.removeprefix("file://")).expanduser().resolve()
    return Location(LOCAL, local.as_posix())
