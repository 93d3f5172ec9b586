"""The S3 store: each image an object under a prefix of one bucket, on AWS or any S3-compatible server."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import ImageStoreUnavailable
from .keys import check_key

TIMEOUT = 5  # seconds to connect, and for each read: a stalled store fails a copy, which is retried later
ATTEMPTS = 2  # in all, the first included: botocore retries a throttled or dropped request once
PROBE = ".probe"  # the key check() writes and deletes under the prefix (a dot name is never an image's key)
NOT_FOUND = ("404", "NoSuchKey", "NotFound")


class S3Store:
    """Objects named prefix + key in `bucket`. A PUT is atomic on S3: an interrupted upload leaves no object.
    Credentials and region come from the usual AWS variables (or files, or the instance's role), read by
    boto3; `endpoint_url` names an S3-compatible server (path-style addressing), None for AWS."""

    def __init__(
        self, bucket: str, prefix: str, endpoint_url: str | None, url_ttl: int, *, timeout: float = TIMEOUT
    ) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.url_ttl = url_ttl
        self.timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()

    def put(self, key: str, path: Path, content_type: str) -> None:
        name = self._name(key)
        with open(path, "rb") as body, self._unavailable("écriture"):  # one PUT: no threads, no multipart
            self.client.put_object(Bucket=self.bucket, Key=name, Body=body, ContentType=content_type)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        name = self._name(key)
        with self._unavailable("écriture"):
            self.client.put_object(Bucket=self.bucket, Key=name, Body=data, ContentType=content_type)

    def exists(self, key: str) -> bool:
        name = self._name(key)
        try:
            with self._unavailable("lecture", found=False):
                self.client.head_object(Bucket=self.bucket, Key=name)
        except _Missing:
            return False
        return True

    def delete(self, key: str) -> None:
        name = self._name(key)
        with self._unavailable("suppression"):  # S3 answers 204 for a missing object too
            self.client.delete_object(Bucket=self.bucket, Key=name)

    def locate(self, key: str) -> str:
        params = {"Bucket": self.bucket, "Key": self._name(key)}
        with self._unavailable("lecture"):  # signed locally: no request is made
            url: str = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=self.url_ttl)
        return url

    def check(self) -> None:
        # a write, not head_bucket: read-only credentials or a full server would pass a HEAD
        with self._unavailable("écriture"):
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + PROBE, Body=b"ok")
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + PROBE)

    def describe(self) -> str:
        where = "AWS" if self.endpoint_url is None else _without_userinfo(self.endpoint_url)
        return f"S3 s3://{self.bucket}/{self.prefix} ({where})"

    @property
    def client(self) -> Any:
        """One client per store, made on first use (boto3's clients are thread-safe; making one is not)."""
        if self._client is not None:
            return self._client
        with self._lock:
            if self._client is None:
                config = Config(
                    connect_timeout=self.timeout,
                    read_timeout=self.timeout,
                    retries={"total_max_attempts": ATTEMPTS, "mode": "standard"},
                    signature_version="s3v4",  # presigned URLs too: AWS regions since 2014 accept only v4
                    # S3-compatible servers are addressed by path; AWS chooses virtual hosts itself
                    s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                )
                session = boto3.session.Session()  # a session of its own: the default one is shared state
                self._client = session.client("s3", endpoint_url=self.endpoint_url, config=config)
            return self._client

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextlib.contextmanager
    def _unavailable(self, action: str, *, found: bool = True) -> Iterator[None]:
        """botocore's errors as ImageStoreUnavailable; with found=False a 404 is _Missing instead."""
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if not found and str(error.get("Code")) in NOT_FOUND:
                raise _Missing() from None
            cause = f"{error.get('Code', '?')} {error.get('Message', '')}".strip()
            raise ImageStoreUnavailable(f"{action} impossible dans {self.describe()}: {cause}") from exc
        except BotoCoreError as exc:  # unreachable, timed out, no credentials...
            raise ImageStoreUnavailable(f"{action} impossible dans {self.describe()}: {exc}") from exc


class _Missing(Exception):
    """head_object's 404: the object is not there."""


def _without_userinfo(url: str) -> str:
    """`url` without the user and password it may hold."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
