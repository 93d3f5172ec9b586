"""Image stores: where the copied images and their thumbnails are kept, a directory or an S3 bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from ...domain.settings import Settings
from ..errors import ImageStoreUnavailable
from .directory import DirectoryStore
from .keys import UnsafeKey, check_key

__all__ = ["DirectoryStore", "ImageStore", "ImageStoreUnavailable", "UnsafeKey", "check_key", "open_store"]


class ImageStore(Protocol):
    """Files by key (a safe relative path such as "ab/abcdef….png", given by the caller: content-addressed).
    Every method but `locate` raises ImageStoreUnavailable when the store cannot answer, UnsafeKey on a bad key."""

    def put(self, key: str, path: Path, content_type: str) -> None:
        """Keep the file at `path` under `key`, atomically (never half a file under the key); again is fine."""
        ...

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Keep `data` under `key`, as `put` does."""
        ...

    def exists(self, key: str) -> bool:
        """Whether a file is kept under `key`."""
        ...

    def delete(self, key: str) -> None:
        """Remove the file under `key`; a missing one is fine."""
        ...

    def locate(self, key: str) -> Path | str:
        """Where to read `key`: a local Path, or a URL valid IMAGE_URL_TTL seconds (no network call)."""
        ...

    def check(self) -> None:
        """Raise ImageStoreUnavailable unless the store can be written now (cheap: for /readyz)."""
        ...

    def describe(self) -> str:
        """What the store is, for the start-up log (no secret)."""
        ...


def open_store(settings: Settings) -> ImageStore:
    """The store IMAGE_STORE names: file:///absolute/path or s3://bucket/prefix (validated by the settings)."""
    url = urlsplit(settings.image_store)
    if url.scheme == "s3":
        # boto3 is imported only where S3 is used: importing it costs a worker about 25 MB and 0.4 s (measured)
        from .s3 import S3Store

        return S3Store(url.netloc, url.path, settings.s3_endpoint_url, settings.image_url_ttl)
    return DirectoryStore(Path(unquote(url.path)))
