"""The object store behaves the same on a local directory and on a real S3-protocol server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest

from tracedrop.storage.objectstore import (
    LocalStore,
    ObjectNotFound,
    ObjectStore,
    S3Store,
    open_store,
    put_content_addressed,
    read_parquet,
    sha256_hex,
    write_parquet,
)


def test_put_then_get_round_trips_bytes(store: ObjectStore) -> None:
    result = store.put("a/b/c.bin", b"\x00hello\xff")
    assert store.get("a/b/c.bin") == b"\x00hello\xff"
    assert result.size == 7
    assert result.sha256 == sha256_hex(b"\x00hello\xff")
    assert store.exists("a/b/c.bin")


def test_put_overwrites(store: ObjectStore) -> None:
    store.put("k", b"one")
    store.put("k", b"two")
    assert store.get("k") == b"two"


def test_missing_object_raises_not_found_naming_the_key(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound, match="nope/missing"):
        store.get("nope/missing")
    assert not store.exists("nope/missing")


def test_list_is_recursive_sorted_and_relative_to_the_prefix(store: ObjectStore) -> None:
    for key in ["x/2.txt", "x/1.txt", "x/sub/3.txt", "y/4.txt", "xy.txt"]:
        store.put(key, key.encode())
    assert [o.key for o in store.list("x")] == ["x/1.txt", "x/2.txt", "x/sub/3.txt"]
    assert [o.key for o in store.list()] == ["x/1.txt", "x/2.txt", "x/sub/3.txt", "xy.txt", "y/4.txt"]
    assert [o.size for o in store.list("y")] == [7]
    assert list(store.list("absent")) == []


def test_listing_goes_past_a_thousand_keys(store: ObjectStore) -> None:
    keys = [f"many/{i:05d}" for i in range(1105)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: store.put(k, b"."), keys))
    assert [o.key for o in store.list("many")] == keys


def test_put_if_absent_writes_once_and_never_overwrites(store: ObjectStore) -> None:
    assert store.put_if_absent("blob", b"first") is True
    assert store.put_if_absent("blob", b"second") is False
    assert store.get("blob") == b"first"


def test_content_addressed_put_dedups_by_sha256(store: ObjectStore) -> None:
    key, written = put_content_addressed(store, "prompts", b'{"messages": []}')
    assert key == "prompts/" + sha256_hex(b'{"messages": []}')
    assert written is True
    assert put_content_addressed(store, "prompts", b'{"messages": []}') == (key, False)
    assert [o.key for o in store.list("prompts")] == [key]


def test_delete_removes_only_the_named_keys(store: ObjectStore) -> None:
    for key in ["d/1", "d/2", "d/3"]:
        store.put(key, b"x")
    store.delete(["d/1", "d/3", "d/never-existed"])
    assert [o.key for o in store.list("d")] == ["d/2"]


def test_parquet_round_trip(store: ObjectStore) -> None:
    table = pa.table({"a": [1, 2, 3], "b": ["x", None, "z"]})
    result = write_parquet(store, "t/part-0.parquet", table)
    assert result.sha256 == sha256_hex(store.get("t/part-0.parquet"))
    assert read_parquet(store, "t/part-0.parquet").equals(table)


def test_child_store_is_scoped_to_its_prefix(store: ObjectStore) -> None:
    child = store.child("inner/dir")
    child.put("f", b"1")
    assert store.get("inner/dir/f") == b"1"
    assert [o.key for o in child.list()] == ["f"]


@pytest.mark.parametrize("bad", ["", "/", "a/../b", "a//b", "./a"])
def test_keys_cannot_escape_the_root(store: ObjectStore, bad: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        store.put(bad, b"x")


def test_urls_pick_the_back_end(tmp_path, s3_bucket: str) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    s3 = open_store(f"s3://{s3_bucket}/some/prefix")
    assert isinstance(s3, S3Store)
    assert s3.url == f"s3://{s3_bucket}/some/prefix"
    with pytest.raises(ValueError, match="unsupported storage URL"):
        open_store("gs://bucket/x")


def test_s3_errors_name_the_url_and_operation(s3_endpoint: str) -> None:
    missing_bucket = open_store("s3://no-such-bucket-here/p")
    with pytest.raises(Exception, match="no-such-bucket-here"):
        missing_bucket.put("k", b"x")
