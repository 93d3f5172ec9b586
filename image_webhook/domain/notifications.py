"""A valid notification, and one delivery as it arrived: the values the webhook hands to its recorder."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .values import Status

MAX_JOB_ID = 256  # a refused delivery's job_id is kept as received, cut to this length
MAX_STATUS = 32


def utc_now() -> str:
    """Now, as the ISO 8601 UTC text both databases store and sort (microseconds, `+00:00`)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class Notification:
    """A notification that passed validation: its job, its status, and the payload as it arrived."""

    payload: dict[str, Any]
    job_id: str
    status: Status

    @classmethod
    def of(cls, payload: dict[str, Any]) -> Notification:
        """The notification of a payload its schema accepted."""
        return cls(payload, payload["job_id"], Status(payload["status"]))

    @property
    def images(self) -> list[dict[str, Any]]:
        """A completed job's images, as the backend described them (none for other statuses)."""
        data = self.payload.get("data")
        images = data.get("images") if isinstance(data, dict) else None
        return images if isinstance(images, list) and self.status is Status.COMPLETED else []

    @property
    def metadata(self) -> dict[str, Any]:
        data = self.payload.get("data")
        metadata = data.get("metadata") if isinstance(data, dict) else None
        return metadata if isinstance(metadata, dict) else {}


@dataclass(slots=True)
class Delivery:
    """What one authenticated request brought: its body, who sent it, and what it said it was about."""

    client_address: str | None
    raw: bytes | None = None
    message_id: str | None = None  # a signed message's webhook-id
    job_id: str | None = None
    status: str | None = None
    received: float = field(default_factory=time.time)  # formatted only where it is kept (received_at)

    @property
    def received_at(self) -> str:
        """When it arrived, as the ISO 8601 UTC text the databases store."""
        return datetime.fromtimestamp(self.received, UTC).isoformat(timespec="microseconds")

    def describe(self, payload: Any) -> None:
        """Take the job id and status from a parsed body, valid or not, as text within bounds."""
        if isinstance(payload, dict):
            job_id, status = payload.get("job_id"), payload.get("status")
            self.job_id = job_id[:MAX_JOB_ID] if isinstance(job_id, str) else None
            self.status = status[:MAX_STATUS] if isinstance(status, str) else None
