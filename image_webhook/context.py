"""What the application and the current request hold: `Service` (per application) and `RequestState`."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import current_app

if TYPE_CHECKING:
    from .auth import Authenticator, BasicUsers, BearerTokens
    from .body import BodyDeadlines
    from .db import Database
    from .db.deliveries import Delivery
    from .idempotence import IdempotenceStore
    from .idempotence.memory import CleanupThread
    from .metrics import Metrics
    from .validation import PayloadValidator

EXTENSION = "image_webhook"  # the key of the Service in app.extensions


@dataclass
class Service:
    """Per-application state, set up once by create_app() in the process that serves the requests."""

    auth: Authenticator
    readers: BearerTokens  # who may read /api/jobs
    page_users: BasicUsers  # who may open the /jobs page
    validator: PayloadValidator
    jobs: IdempotenceStore  # terminal notifications processed in the window
    messages: IdempotenceStore  # signed messages (webhook-id) seen in the window: replays
    cleanup: CleanupThread | None  # the memory stores'; Redis expires its keys itself
    deadlines: BodyDeadlines
    metrics: Metrics
    on_job: Callable[[dict[str, Any]], object]
    openapi: dict[str, Any]
    db: Database | None = None  # None: the stateless mode (DATABASE_URL empty)
    processed_jobs: int = 0  # in this process's life, for the shutdown line
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_processed(self) -> None:
        with self._lock:  # += is not atomic across threads
            self.processed_jobs += 1

    def not_ready(self) -> str | None:
        """Why the service cannot do its work, or None."""
        if self.cleanup is not None and not self.cleanup.is_alive():
            return "le nettoyage des jobs traités ne tourne pas"
        if self.db is not None and (reason := self.db.not_ready()):
            return reason
        return self.jobs.not_ready()

    def stop(self) -> None:
        """Stop the background threads (tests, and gunicorn's worker exit)."""
        if self.cleanup is not None:
            self.cleanup.stop()
        self.deadlines.stop()
        if self.db is not None:
            self.db.close()  # commits what is queued


def service() -> Service:
    """The Service of the current application."""
    return current_app.extensions[EXTENSION]


@dataclass(slots=True)
class RequestState:
    """What one request decided so far: stamped on its log lines, counted in the metrics."""

    request_id: str
    started: float = field(default_factory=time.perf_counter)
    status: str | None = None  # a known notification status, else None
    job_id: str | None = None  # once the payload is valid
    outcome: str | None = None  # what the webhook did: set by the view and the error handlers
    delivery: Delivery | None = None  # an authenticated delivery, recorded with a database
    recorded: bool = False  # its delivery is already written (with the job's record, or as a duplicate)

    def elapsed_ms(self) -> float:
        """Milliseconds since the request started, rounded to the microsecond."""
        return round((time.perf_counter() - self.started) * 1000, 3)


_current: ContextVar[RequestState | None] = ContextVar("image_webhook_request", default=None)


def begin_request(request_id: str) -> RequestState:
    """Start the state of the request being served (one per thread or context at a time)."""
    state = RequestState(request_id)
    _current.set(state)
    return state


def end_request() -> None:
    _current.set(None)


def current_request() -> RequestState | None:
    """The state of the request being served, or None outside a request."""
    return _current.get()


class RequestIds:
    """Generated request ids: a random prefix per process and a counter (uuid4 costs a system call)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()  # made after the fork: workers never share it
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"
