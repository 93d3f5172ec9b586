"""What every request has, for its log lines and its metrics: `RequestState`, held in a context variable."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..domain.notifications import Delivery
    from ..domain.values import Outcome, Status


@dataclass(slots=True)
class RequestState:
    """One request: its id and start, and what its log lines and metrics say of it (status, job, outcome)."""

    request_id: str
    started: float = field(default_factory=time.perf_counter)
    status: Status | None = None  # a known notification status, else None
    job_id: str | None = None  # once the payload is valid
    outcome: Outcome | None = None  # what the webhook did: set once by its view or by the error path
    delivery: Delivery | None = None  # the webhook's delivery once its sender is authenticated: kept if refused

    def elapsed_ms(self) -> float:
        """Milliseconds since the request started, rounded to the microsecond."""
        return round((time.perf_counter() - self.started) * 1000, 3)


_current: ContextVar[RequestState | None] = ContextVar("image_webhook_request", default=None)


class Activity:
    """How many requests this process is serving: background work (the copiers) waits for a quiet moment,
    so that it takes the CPU and the interpreter's lock the requests leave (BENCHMARKS.md, issue 19)."""

    def __init__(self) -> None:
        self._serving = 0
        self._lock = threading.Lock()
        self._quiet = threading.Event()
        self._quiet.set()

    def enter(self) -> None:
        with self._lock:
            self._serving += 1
            self._quiet.clear()

    def leave(self) -> None:
        with self._lock:
            self._serving -= 1
            if self._serving <= 0:
                self._serving = 0
                self._quiet.set()

    def wait_quiet(self, timeout: float) -> bool:
        """Wait until no request is being served, `timeout` seconds at most; whether it is quiet."""
        return self._quiet.wait(timeout)


ACTIVITY = Activity()  # this process's
_rest = threading.local()  # the rest the last request of this thread asked for its connection


def rest_connection(seconds: float) -> None:
    """Ask the server to read the connection of the request being served again only after `seconds`: its
    client was told to come back later (429, Retry-After). The worker takes it once it has answered
    (server/worker.py); a keep-alive flood of refused logins then costs one request a connection a second."""
    _rest.seconds = seconds


def take_rest() -> float:
    """The rest asked for by the request this thread served last (0: none), and no more after."""
    seconds: float = getattr(_rest, "seconds", 0.0)
    _rest.seconds = 0.0
    return seconds


def begin_request(request_id: str) -> RequestState:
    """Start the state of the request being served (one per thread or context at a time)."""
    state = RequestState(request_id)
    if _current.get() is None:
        ACTIVITY.enter()
    _current.set(state)
    return state


def end_request() -> None:
    if _current.get() is not None:
        ACTIVITY.leave()
    _current.set(None)


def current_request() -> RequestState | None:
    """The state of the request being served, or None outside a request."""
    return _current.get()


def elapsed_ms() -> float:
    """Milliseconds since the current request started (0 outside a request)."""
    state = _current.get()
    return state.elapsed_ms() if state is not None else 0.0


def request_clock() -> Callable[[], float]:
    """`elapsed_ms` of the current request, for another thread to read (the database's writer)."""
    state = _current.get()
    return state.elapsed_ms if state is not None else lambda: 0.0


class RequestIds:
    """Generated request ids: a random prefix per process and a counter (uuid4 costs a system call)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()  # made after the fork: workers never share it
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"
