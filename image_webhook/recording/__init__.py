"""Recording: what a valid notification does, decided once. One protocol, one recorder per mode
(`window.WindowRecorder` for the stateless mode, `database.DatabaseRecorder` by default)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..domain.values import Outcome
from . import journal

if TYPE_CHECKING:
    from ..domain.notifications import Delivery, Notification
    from ..observability.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a recorder did with a notification: its outcome (logs, metrics) and the answer it gets."""

    outcome: Outcome
    body: dict[str, Any]
    status: int = 200


class Recorder(Protocol):
    """Decides and records each notification exactly once, in the way of its mode."""

    keeps_records: bool  # whether jobs and deliveries are kept (the read API and the page need them)

    @property
    def processed_jobs(self) -> int:
        """Notifications processed by this process since it started (its shutdown line)."""
        ...

    def record(self, notification: Notification, delivery: Delivery) -> Recorded:
        """Decide what `notification` does (processed, duplicate, progress, stale) and record it."""
        ...

    def replayed(self, delivery: Delivery) -> Recorded:
        """A signed message this process's window already handled (its webhook-id): answered as a duplicate."""
        ...

    def refused(self, delivery: Delivery, *, outcome: Outcome | None, status: int, answer: str) -> None:
        """An authenticated delivery refused (4xx) or not handled (5xx): kept where deliveries are kept."""
        ...

    def not_ready(self) -> str | None:
        """Why notifications cannot be recorded now, or None."""
        ...

    def stop(self) -> None:
        """Finish what is queued (the database's writes)."""
        ...


class Tally:
    """What every mode does once a notification is processed: its metrics, the ⏱️ line, the process's count."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.count = 0
        self._lock = threading.Lock()  # += is not atomic across threads

    def processed(self, notification: Notification, body: dict[str, Any]) -> Recorded:
        milliseconds = body["processing_time_ms"]
        self.metrics.processed(notification, milliseconds / 1000)
        with self._lock:
            self.count += 1
        journal.processed(milliseconds)
        return Recorded(Outcome.PROCESSED, body)
