"""Report storage backends: the local directory and an S3-compatible bucket (a moto server on a
free port, spoken to over HTTP by boto3 as any S3 service would be)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from cloud.reports.storage import LocalStorage, S3Storage, storage_for
from tests.support.services import free_tcp_port


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_tcp_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="reports")
    yield endpoint
    server.stop()


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_put_get_delete_and_foreign_keys(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "s3":
        endpoint = request.getfixturevalue("s3")
        storage = storage_for(tmp_path, "reports", endpoint)
        assert isinstance(storage, S3Storage)
    else:
        storage = storage_for(tmp_path, None, None)
        assert isinstance(storage, LocalStorage)
    storage.put("r7/consumption-2026-10-01.csv", b"a,b\n1,2\n")
    assert storage.get("r7/consumption-2026-10-01.csv") == b"a,b\n1,2\n"
    storage.delete("r7/consumption-2026-10-01.csv")
    with pytest.raises((FileNotFoundError, ClientError)):  # the S3 client's NoSuchKey
        storage.get("r7/consumption-2026-10-01.csv")
    for key in ("../etc/passwd", "r1/../../x", "/abs/path", "R1/x"):
        with pytest.raises(ValueError, match="not one the service makes"):
            storage.put(key, b"x")
