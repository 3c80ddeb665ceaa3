"""One object-store abstraction over a URL: a local path / ``file://`` URL or ``s3://bucket/prefix``.

Keys are ``/``-separated paths relative to the store's root.  Both back ends behave the same:
``list`` is recursive and sorted, ``get`` of a missing key raises :class:`ObjectNotFound`, ``put``
is atomic (readers see the old object or the new one, never half), and ``put_if_absent`` never
overwrites.  Local objects are written world-readable (0644, directories 0755) whatever the umask; a
write interrupted midway leaves no temporary file, and deleting the last object of a directory removes
the directories it leaves empty, up to the store's root.  Every error is one line naming
``<url>/<key>`` once.  S3 settings come from the standard AWS environment (``AWS_ACCESS_KEY_ID``,
``AWS_DEFAULT_REGION``...) plus ``TRACEDROP_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``) for an
S3-compatible server.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.parquet as pq

from tracedrop.schemas.settings import S3_ENDPOINT_URL, from_environment

TEMP_PREFIX = ".tmp-"
FILE_MODE, DIR_MODE = 0o644, 0o755
STALE_TEMP_SECONDS = 3600  # a temporary file this old belongs to a write that was killed, not a running one


class ObjectStoreError(RuntimeError):
    """A storage operation failed; the message names the URL and the operation."""


class ObjectNotFound(ObjectStoreError, KeyError):
    """The key does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "object not found"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: float = field(default=0.0, compare=False)  # unix seconds of the last write (S3: LastModified)


@dataclass(frozen=True)
class PutResult:
    key: str
    size: int
    sha256: str


class ObjectStore(Protocol):
    """What every back end offers."""

    url: str

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...
    def get(self, key: str) -> bytes: ...
    def open(self, key: str) -> BinaryIO: ...
    def exists(self, key: str) -> bool: ...
    def put(self, key: str, data: bytes) -> PutResult: ...
    def put_if_absent(self, key: str, data: bytes) -> bool: ...
    def delete(self, keys: Iterable[str]) -> None: ...
    def child(self, prefix: str) -> ObjectStore: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _clean_key(key: str) -> str:
    key = key.strip("/")
    if not key or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid object key {key!r}")
    return key


def _join(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key


class LocalStore:
    """A directory on the local file system."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / _clean_key(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        prefix = prefix.strip("/")
        base = self.root / prefix if prefix else self.root
        if base.is_file():
            stat = base.stat()
            yield ObjectInfo(prefix, stat.st_size, stat.st_mtime)
            return
        if not base.is_dir():
            return
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in filenames:
                if name.startswith(TEMP_PREFIX):
                    continue
                full = Path(dirpath) / name
                stat = full.stat()
                found.append(ObjectInfo(full.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime))
        yield from sorted(found, key=lambda info: info.key)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"{self.url}/{key}: no such object") from None

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"{self.url}/{key}: no such object") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _make_dirs(self, directory: Path) -> None:
        """Create ``directory`` and its missing parents, each 0755 whatever the umask."""
        missing = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                continue
            os.chmod(path, DIR_MODE)

    def _write_temp(self, path: Path, data: bytes) -> Path:
        """``data`` in a new 0644 temporary file next to ``path``; nothing is left if the write fails."""
        for attempt in range(3):  # a concurrent delete may prune the directory between mkdir and mkstemp
            self._make_dirs(path.parent)
            try:
                fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), FILE_MODE)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp)

    def put(self, key: str, data: bytes) -> PutResult:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return PutResult(_clean_key(key), len(data), sha256_hex(data))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        if path.exists():
            return False
        tmp = self._write_temp(path, data)
        try:
            os.link(tmp, path)  # atomic, fails if the name exists
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        return True

    def delete(self, keys: Iterable[str]) -> None:
        """Remove the objects, then every directory they leave empty (stale temporary files aside)."""
        emptied: set[Path] = set()
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            emptied.add(path.parent)
        for directory in sorted(emptied, key=lambda d: len(d.parts), reverse=True):
            self._prune(directory)

    def _prune(self, directory: Path) -> None:
        """Remove ``directory`` and its parents below the root while they hold nothing but stale temp files."""
        while directory != self.root and self.root in directory.parents:
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                directory = directory.parent
                continue
            stale = [e for e in entries if e.name.startswith(TEMP_PREFIX) and _is_stale(e)]
            if len(stale) != len(entries):
                return
            for entry in stale:
                Path(entry.path).unlink(missing_ok=True)
            try:
                directory.rmdir()
            except OSError:  # a writer got there first
                return
            directory = directory.parent

    def child(self, prefix: str) -> LocalStore:
        return LocalStore(self.root / _clean_key(prefix))


class S3Store:
    """A bucket and prefix on S3 or an S3-compatible server, through boto3."""

    def __init__(self, bucket: str, prefix: str = "", client: Any | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client if client is not None else make_s3_client()
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return _join(self.prefix, _clean_key(key))

    def _where(self, key: str) -> str:
        return f"{self.url}/{key}" if key else self.url

    def _fail(self, operation: str, key: str, exc: Exception) -> ObjectStoreError:
        """``<url>/<key>: <operation> failed: <reason>``, one line, the key named once."""
        return ObjectStoreError(f"{self._where(key)}: {operation} failed: {_reason(exc)}")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        prefix = prefix.strip("/")
        full = _join(self.prefix, prefix) if prefix else self.prefix
        list_prefix = f"{full}/" if full else ""
        strip = len(f"{self.prefix}/") if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            if prefix:
                # the prefix may itself be an object
                for page in paginator.paginate(Bucket=self.bucket, Prefix=full, MaxKeys=1):
                    for item in page.get("Contents", []):
                        if item["Key"] == full:
                            yield ObjectInfo(item["Key"][strip:], item["Size"], item["LastModified"].timestamp())
                    break
            for page in paginator.paginate(Bucket=self.bucket, Prefix=list_prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"][strip:], item["Size"], item["LastModified"].timestamp())
        except self.client.exceptions.NoSuchBucket:
            return
        except Exception as exc:
            raise self._fail("list", prefix, exc) from exc

    def get(self, key: str) -> bytes:
        return self.open(key).read()

    def open(self, key: str) -> BinaryIO:
        full_key = self._key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=full_key)
        except self.client.exceptions.NoSuchKey:
            raise ObjectNotFound(f"{self.url}/{key}: no such object") from None
        except Exception as exc:
            raise self._fail("get", key, exc) from exc
        return response["Body"]

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if _status(exc) == 404:
                return False
            raise self._fail("head", key, exc) from exc
        return True

    def _put(self, key: str, full_key: str, data: bytes, **extra: Any) -> PutResult:
        """Upload with a SHA-256 checksum; the client's exceptions propagate as they are."""
        digest = hashlib.sha256(data).digest()
        response = self.client.put_object(
            Bucket=self.bucket,
            Key=full_key,
            Body=data,
            ChecksumSHA256=base64.b64encode(digest).decode(),
            **extra,
        )
        returned = response.get("ChecksumSHA256")
        if returned and base64.b64decode(returned) != digest:
            raise ObjectStoreError(f"{self._where(key)}: put failed: checksum mismatch after upload")
        return PutResult(_clean_key(key), len(data), digest.hex())

    def put(self, key: str, data: bytes) -> PutResult:
        full_key = self._key(key)
        try:
            return self._put(key, full_key, data)
        except ObjectStoreError:
            raise
        except Exception as exc:
            raise self._fail("put", key, exc) from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        full_key = self._key(key)
        try:
            self._put(key, full_key, data, IfNoneMatch="*")
        except ObjectStoreError:
            raise
        except Exception as exc:
            if _status(exc) in (409, 412):
                return False
            raise self._fail("put", key, exc) from exc
        return True

    def delete(self, keys: Iterable[str]) -> None:
        batch: list[dict[str, str]] = []
        for key in keys:
            batch.append({"Key": self._key(key)})
            if len(batch) == 1000:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, batch: list[dict[str, str]]) -> None:
        try:
            response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        except Exception as exc:
            raise self._fail("delete", self._relative(batch[0]["Key"]), exc) from exc
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            more = f" (and {len(errors) - 1} more keys)" if len(errors) > 1 else ""
            raise ObjectStoreError(
                f"{self._where(self._relative(first.get('Key', '')))}: delete failed{more}: "
                + " ".join(f"{first.get('Code', '')}: {first.get('Message') or 'no message'}".split())
            )

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix and full_key.startswith(f"{self.prefix}/") else full_key

    def child(self, prefix: str) -> S3Store:
        return S3Store(self.bucket, _join(self.prefix, _clean_key(prefix)), client=self.client)


def _is_stale(entry: os.DirEntry[str]) -> bool:
    try:
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS
    except FileNotFoundError:
        return True


def _reason(exc: Exception) -> str:
    """What failed, on one line: the S3 error code and message, or the exception's own text."""
    error = (getattr(exc, "response", None) or {}).get("Error") or {}
    text = f"{error['Code']}: {error.get('Message') or 'no message'}" if error.get("Code") else str(exc)
    return " ".join((text or type(exc).__name__).split())


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None) or {}
    code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(code) if code else None


def make_s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client with standard retries; endpoint from the argument or the environment."""
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url or from_environment(S3_ENDPOINT_URL) or None
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint else {},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client("s3", endpoint_url=endpoint, config=config)


def open_store(url: str | Path, *, s3_client: Any | None = None) -> ObjectStore:
    """The store for a URL: ``s3://bucket/prefix``, ``file:///path`` or a plain local path."""
    text = str(url)
    parsed = urlparse(text)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"{text}: an s3 URL needs a bucket, e.g. s3://bucket/prefix")
        return S3Store(parsed.netloc, parsed.path, client=s3_client)
    if parsed.scheme == "file":
        return LocalStore(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ValueError(f"{text}: unsupported storage URL (use a local path, file:// or s3://)")
    return LocalStore(text)


def write_parquet(store: ObjectStore, key: str, table: pa.Table, **options: Any) -> PutResult:
    """Write ``table`` as one Parquet object (zstd by default) and return its size and sha256."""
    buffer = io.BytesIO()
    options.setdefault("compression", "zstd")
    pq.write_table(table, buffer, **options)
    return store.put(key, buffer.getvalue())


def read_parquet(store: ObjectStore, key: str) -> pa.Table:
    """Read one Parquet object."""
    return pq.read_table(io.BytesIO(store.get(key)))


def content_key(prefix: str, data: bytes) -> str:
    """The content-addressed key of ``data`` under ``prefix``: ``prefix/<sha256 hex>``."""
    return f"{prefix.strip('/')}/{sha256_hex(data)}"


def put_content_addressed(store: ObjectStore, prefix: str, data: bytes) -> tuple[str, bool]:
    """Store ``data`` under its sha256 if absent; return the key and whether it was newly written."""
    key = content_key(prefix, data)
    return key, store.put_if_absent(key, data)
