"""Shared fixtures: a real S3-protocol server (moto's server mode on 127.0.0.1) and stores on it."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tracedrop.storage.objectstore import ObjectStore, make_s3_client, open_store

# CI explores a fixed set of examples so a green main stays green; runs elsewhere draw new ones each
# time and keep searching (a failure found that way becomes an explicit @example).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server on a free loopback port, with throwaway credentials in the env."""
    from moto.server import ThreadedMotoServer

    patch = pytest.MonkeyPatch()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        patch.setenv(name, value)
    patch.delenv("AWS_PROFILE", raising=False)
    # the server's request log would otherwise go to whatever stderr was current when it first logged
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    patch.setenv("TRACEDROP_S3_ENDPOINT_URL", endpoint)
    yield endpoint
    server.stop()
    patch.undo()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket on the S3 server."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    make_s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """The same test against a temp directory and against a prefix in a bucket on the S3 server."""
    if request.param == "local":
        return str(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/root"


@pytest.fixture
def store(store_url: str) -> ObjectStore:
    return open_store(store_url)
