"""Storage hygiene: local objects are world-readable whatever the umask, interrupted writes leave no
temporary files, deleting a directory's last object removes the empty directories, and S3 errors are
one line naming the object once."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from tracedrop.storage.objectstore import (
    STALE_TEMP_SECONDS,
    TEMP_PREFIX,
    LocalStore,
    ObjectStoreError,
    open_store,
    write_parquet,
)


@pytest.fixture
def strict_umask() -> Iterator[None]:
    previous = os.umask(0o077)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def temp_files(root: Path) -> list[Path]:
    return list(root.rglob(f"{TEMP_PREFIX}*"))


def test_local_objects_are_0644_and_directories_0755_whatever_the_umask(tmp_path, strict_umask) -> None:
    store = LocalStore(tmp_path / "out")
    store.put("a/b/put.json", b"{}")
    store.put_if_absent("a/c/blob", b"x")
    write_parquet(store, "a/b/part-00000.parquet", pa.table({"x": [1]}))
    for key in ("a/b/put.json", "a/c/blob", "a/b/part-00000.parquet"):
        assert mode(tmp_path / "out" / key) == 0o644
    for directory in ("out", "out/a", "out/a/b", "out/a/c"):
        assert mode(tmp_path / directory) == 0o755


def test_an_interrupted_write_leaves_no_temporary_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path)
    store.put("d/kept", b"old")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.put("d/kept", b"new")
    with pytest.raises(OSError, match="No space left"):
        store.put_if_absent("d/new", b"new")
    assert temp_files(tmp_path) == []
    assert store.get("d/kept") == b"old"
    assert [o.key for o in store.list()] == ["d/kept"]


def test_a_killed_writers_temporary_file_is_never_listed_and_goes_with_its_directory(tmp_path) -> None:
    store = LocalStore(tmp_path)
    store.put("day/dt=1/part-0", b"x")
    leftover = tmp_path / "day/dt=1" / f"{TEMP_PREFIX}killed"
    leftover.write_bytes(b"half")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(leftover, (old, old))
    assert [o.key for o in store.list()] == ["day/dt=1/part-0"]
    store.delete(["day/dt=1/part-0"])
    assert list(tmp_path.iterdir()) == []


def test_a_running_writers_temporary_file_keeps_its_directory(tmp_path) -> None:
    store = LocalStore(tmp_path)
    store.put("day/part-0", b"x")
    (tmp_path / "day" / f"{TEMP_PREFIX}in-flight").write_bytes(b"half")
    store.delete(["day/part-0"])
    assert [p.name for p in (tmp_path / "day").iterdir()] == [f"{TEMP_PREFIX}in-flight"]


def test_deleting_the_last_object_removes_empty_directories_up_to_the_root(tmp_path) -> None:
    root = tmp_path / "store"
    store = LocalStore(root)
    for key in ("p/e/dt=1/part-0", "p/e/dt=1/part-1", "p/e/dt=2/part-0", "q/only"):
        store.put(key, b"x")
    store.delete(["p/e/dt=1/part-0", "p/e/dt=1/part-1", "q/only"])
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "p",
        "p/e",
        "p/e/dt=2",
        "p/e/dt=2/part-0",
    ]
    store.delete(["p/e/dt=2/part-0"])
    assert root.is_dir() and list(root.iterdir()) == []
    store.put("p/e/dt=1/part-0", b"again")  # and writing there again recreates them
    assert store.get("p/e/dt=1/part-0") == b"again"


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("put", lambda s: s.put("a/k.json", b"x")),
        ("put", lambda s: s.put_if_absent("a/k.json", b"x")),
        ("get", lambda s: s.get("a/k.json")),
        ("delete", lambda s: s.delete(["a/k.json"])),
    ],
)
def test_an_s3_error_is_one_line_naming_the_object_once(s3_endpoint: str, operation: str, call) -> None:
    store = open_store("s3://no-such-bucket-here/prefix")
    with pytest.raises(ObjectStoreError) as raised:
        call(store)
    where = "s3://no-such-bucket-here/prefix/a/k.json"
    assert str(raised.value) == f"{where}: {operation} failed: NoSuchBucket: The specified bucket does not exist"
