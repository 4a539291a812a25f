"""A real S3-compatible server on 127.0.0.1 for the object-store tests (moto's standalone server, not a mock
of the client: requests go over HTTP through obstore and Polars exactly as they would to S3, R2 or MinIO)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import skip_or_fail

#: Not a real credential; tests check that it never reaches any output.
SECRET_KEY = "test-secret-Zq8vX2-never-printed"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def environment(self) -> dict[str, str]:
        """The standard AWS_* variables that point a client at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing-key-id",
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def new_bucket(self) -> str:
        """A fresh, empty bucket's name."""
        import boto3  # moto's own dependency; used only to create buckets, which the job never does

        name = f"snap-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing-key-id",
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=name)
        return name


def running_s3_server() -> Iterator[S3Server]:
    """Start moto's threaded server on a free port of 127.0.0.1 for the session."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        skip_or_fail("moto[server] is not installed (pip install -e '.[test]')")
        raise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(endpoint=f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    yield from running_s3_server()


@pytest.fixture
def s3_location(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://bucket/prefix`` in a fresh bucket, with the AWS_* variables set for this test."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    location = f"s3://{s3_server.new_bucket()}/snapshots"
    monkeypatch.setenv("SNAPSHOT_DIR", location)
    return location
