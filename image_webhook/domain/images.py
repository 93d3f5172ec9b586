"""A job's images as the service keeps them: the state of each image's copy, and what a file differs in from
what the notification claimed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CopyState(StrEnum):
    """Where one image's copy stands (docs/images.md): queued, then copying under a lease, then one of the ends."""

    QUEUED = "queued"  # waiting for a copier (again, after a failed attempt, at its `due` time)
    COPYING = "copying"  # claimed by a copier until its lease runs out
    STORED = "stored"  # the bytes are in the store, verified
    FAILED = "failed"  # every attempt failed, or the file can never be kept: `last_error` says why
    REFUSED = "refused"  # its URL may not be fetched (IMAGE_SOURCES): no connection was made


# the formats an image generator produces: the only ones opened, each with the content type it is served with
FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One field where the file is not what the notification said (`format`, `dimensions`, `size_bytes`)."""

    field: str
    claimed: object
    actual: object

    def as_dict(self) -> dict[str, object]:
        return {"field": self.field, "claimed": self.claimed, "actual": self.actual}


def image_key(sha256: str, content_type: str | None) -> str:
    """Where a file lives in the store: by its content, so the same bytes are stored once."""
    extension = next((name for name, kind in FORMATS.items() if kind == content_type), "bin")
    return f"{sha256[:2]}/{sha256}.{extension}"


def thumbnail_key(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256}.thumb.webp"
