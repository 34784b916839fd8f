"""An S3-compatible server on loopback for tests: moto's server mode, in a process of its
own (as the bucket is for scribe's processes: over HTTP, never in-process), started by the
tests themselves. Each test gets a fresh bucket; nothing touches the network."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

ACCESS_KEY = "scribe-test-access-key"
SECRET_KEY = "scribe-test-secret-key"
REGION = "us-east-1"


def require_moto() -> None:
    """Skip without moto's server (the dev extra) — except in CI, where that fails."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as exc:
        message = (
            f"the loopback S3 server needs moto[server] and boto3 ({exc}): "
            "pip install -e '.[dev,s3]'"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@contextlib.contextmanager
def s3_server(log_path: Path) -> Iterator[str]:
    """moto's S3 server on a free loopback port; yield its endpoint URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                    break
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "moto's S3 server did not come up"
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


@dataclass(frozen=True)
class Bucket:
    endpoint_url: str
    name: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def object_keys(self, prefix: str = "") -> list[str]:
        """Every object's key in the bucket (under ``prefix``), listed over the S3 API."""
        pages = self.client().get_paginator("list_objects_v2")
        return sorted(
            item["Key"]
            for page in pages.paginate(Bucket=self.name, Prefix=prefix)
            for item in page.get("Contents", ())
        )

    def environment(self) -> dict[str, str]:
        """The environment of a scribe process storing in this bucket."""
        return {
            "SCRIBE_STORAGE": "s3",
            "SCRIBE_S3_BUCKET": self.name,
            "SCRIBE_S3_ENDPOINT_URL": self.endpoint_url,
            "SCRIBE_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "SCRIBE_S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "SCRIBE_S3_REGION": REGION,
        }

    def storage(self) -> dict[str, Any]:
        """``STORAGES["default"]`` for this bucket, as scribe/settings.py builds it from
        ``environment()``."""
        return {
            "BACKEND": "scribe.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": self.name,
                "endpoint_url": self.endpoint_url,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "region_name": REGION,
            },
        }


@contextlib.contextmanager
def fresh_bucket(endpoint_url: str) -> Iterator[Bucket]:
    bucket = Bucket(endpoint_url, f"scribe-test-{uuid.uuid4().hex[:12]}")
    client = bucket.client()
    client.create_bucket(Bucket=bucket.name)
    try:
        yield bucket
    finally:
        for key in bucket.object_keys():
            client.delete_object(Bucket=bucket.name, Key=key)
        client.delete_bucket(Bucket=bucket.name)
