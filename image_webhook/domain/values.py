"""The closed sets the service speaks in: a notification's status, and what the webhook did with a request."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A notification's status, as the backend sends it. Statuses move forward only (`rank`)."""

    PENDING = "pending"
    INITIALIZING = "initializing"
    GENERATING = "generating"
    SAVING = "saving"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """completed or failed: the notification that is processed once."""
        return self in TERMINAL

    @property
    def rank(self) -> int:
        """Where the status stands in a job's life; the two terminal ones share the last rank."""
        return RANK[self]

    @classmethod
    def named(cls, value: object) -> Status | None:
        """The status a value names, or None (an unknown or missing status)."""
        return cls._value2member_map_.get(value) if isinstance(value, str) else None  # type: ignore[return-value]


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED})
INTERMEDIATE = (Status.PENDING, Status.INITIALIZING, Status.GENERATING, Status.SAVING)
RANK = {status: min(number, 4) for number, status in enumerate(Status)}


class Outcome(StrEnum):
    """What the webhook did with one request: the label of its answer in the metrics and the logs."""

    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    INTERMEDIATE = "intermediate"  # a progress notification that moved its job forward
    STALE = "stale"  # a progress notification behind what its job already is: it changes nothing
    UNAUTHORIZED = "unauthorized"
    INVALID_JSON = "invalid_json"
    INVALID_PAYLOAD = "invalid_payload"
    INVALID_PARAMETER = "invalid_parameter"  # the read API's and the page's query parameters
    MISSING_IMAGES = "missing_images"
    TOO_LARGE = "too_large"
    INVALID_FRAMING = "invalid_framing"
    INVALID_ENCODING = "invalid_encoding"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    ERROR = "error"

    @property
    def stored(self) -> str:
        """The word a delivery's row keeps for a notification handled with this outcome (the deliveries
        table says `progress` where the metrics say `intermediate`: both kept their first names)."""
        return "progress" if self is Outcome.INTERMEDIATE else self.value


# what a notification can be answered 200 with; every other outcome is a refusal
HANDLED = frozenset({Outcome.PROCESSED, Outcome.DUPLICATE, Outcome.INTERMEDIATE, Outcome.STALE})
