"""Where generated reports are kept: a directory on the service's disk (the default) or an
S3-compatible bucket (`GRIDGATE_REPORTS_S3_BUCKET`, with `GRIDGATE_REPORTS_S3_ENDPOINT` for a
non-AWS service; credentials the usual AWS way; `pip install 'gridgate[s3]'`). Keys are made by
the service (never taken from a request), so no key can reach outside its store."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

KEY = re.compile(r"^[a-z0-9_-]{1,64}/[a-z0-9_.-]{1,128}$")


def check_key(key: str) -> str:
    if not KEY.match(key):
        raise ValueError(f"storage key {key!r} is not one the service makes")
    return key


class ReportStorage(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(data)
        os.replace(partial, path)  # readers never see half a file

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Storage:
    """Reports as objects `<prefix><key>` in a bucket of an S3-compatible service."""

    def __init__(self, bucket: str, *, endpoint_url: str | None = None, prefix: str = "reports/"):
        try:
            import boto3
        except ImportError as exc:  # an optional extra
            raise RuntimeError("S3 report storage needs boto3: pip install 'gridgate[s3]'") from exc
        self.bucket, self.prefix = bucket, prefix
        self._client = boto3.client("s3", endpoint_url=endpoint_url)

    def put(self, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=self.prefix + check_key(key), Body=data)

    def get(self, key: str) -> bytes:
        answer = self._client.get_object(Bucket=self.bucket, Key=self.prefix + check_key(key))
        return answer["Body"].read()

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self.prefix + check_key(key))


def storage_for(data_dir: Path, bucket: str | None, endpoint_url: str | None) -> ReportStorage:
    if bucket:
        return S3Storage(bucket, endpoint_url=endpoint_url)
    return LocalStorage(data_dir / "reports")
