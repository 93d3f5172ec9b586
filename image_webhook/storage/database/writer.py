"""Group commit: one writer thread per process runs every queued write in one transaction, then answers them."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any, Protocol

from ...observability.logs import LOGGER

log = logging.getLogger(LOGGER)
MAX_BATCH = 128  # writes per transaction: enough to amortise the fsync, short enough to hold the lock briefly
RECONNECT_PAUSE = 0.2  # seconds between two attempts to reach a database that is down


class Finish(Protocol):
    """What a transaction writes last, from what its writes staged (tally.Tally: the rollups)."""

    def begin(self) -> None: ...
    def settle(self, kept: bool) -> None: ...
    def flush(self, connection: Any) -> None: ...


class WriteState(Enum):
    QUEUED = "queued"
    RUNNING = "running"  # taken by the writer: it will commit or fail, and answer
    CANCELLED = "cancelled"  # its request gave up before the writer took it: it never runs


class Write:
    """One queued write: `op(connection)`, its result or error, and whether anyone still waits for it."""

    __slots__ = ("done", "error", "op", "result", "state", "waited")

    def __init__(self, op: Callable[[Any], Any], waited: bool) -> None:
        self.op = op
        self.waited = waited
        self.state = WriteState.QUEUED
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class GroupCommitWriter(threading.Thread):
    """Writers queue; one thread commits everything queued in one transaction (one fsync), each write in a
    savepoint of its own, and only then answers each request: a 200 is sent after the commit holding its row.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        transaction: Callable[[Any], Any],
        *,
        errors: tuple[type[BaseException], ...],
        timeout: float,
        turn: Callable[[], contextlib.AbstractContextManager[object]],
        on_commit: Callable[[int, float], object] | None = None,
        on_error: Callable[[int], object] | None = None,
        finish: Finish | None = None,
    ) -> None:
        super().__init__(name="group-commit", daemon=True)
        self.finish = finish  # told of each write's end, and writes last in each transaction (the rollups)
        self.connect = connect
        self.transaction = transaction
        self.turn = turn  # the machine's writers take turns (SQLite); what queues meanwhile joins the batch
        self.errors = errors
        self.timeout = timeout
        self.on_commit = on_commit  # (writes, seconds): metrics
        self.on_error = on_error  # (writes failed): metrics
        self._queue: queue.SimpleQueue[Write | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards Write.state between a giving-up request and the writer
        self._connection: Any = None
        self._stopping = threading.Event()

    def submit(self, op: Callable[[Any], Any]) -> Any:
        """Queue `op`, wait for its commit, return its result (or raise its error, or TimeoutError)."""
        write = Write(op, waited=True)
        self._queue.put(write)
        if not write.done.wait(self.timeout):
            with self._lock:
                if write.state is WriteState.QUEUED:  # never started: it never will, nothing is written
                    write.state = WriteState.CANCELLED
                    raise TimeoutError("the database writer did not start this write in time")
            write.done.wait()  # started: its transaction is bounded by the database's own timeouts
        if write.error is not None:
            raise write.error
        return write.result

    def submit_later(self, op: Callable[[Any], Any]) -> None:
        self._queue.put(Write(op, waited=False))

    def run(self) -> None:
        while not self._stopping.is_set():
            first = self._queue.get()
            batch: list[Write] = []
            try:
                with self.turn():
                    batch = self._take(first)
                    self._commit(batch)
            except Exception as exc:  # a bug here must not leave requests waiting on a dead thread
                log.exception("❌ [Image Webhook] Échec du writer de la base", extra={"event": "error"})
                self._close()
                for write in batch:
                    write.error = write.error or exc
                    write.done.set()
        self._close()

    def stop(self, timeout: float = 5) -> None:
        """Commit what is queued, then end the thread."""
        self._stopping.set()
        self._queue.put(None)
        self.join(timeout)

    def _take(self, first: Write | None) -> list[Write]:
        items = [first]
        while len(items) < MAX_BATCH:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        batch = []
        with self._lock:
            for write in items:
                if write is not None and write.state is WriteState.QUEUED:
                    write.state = WriteState.RUNNING
                    batch.append(write)
        return batch

    def _commit(self, batch: list[Write]) -> None:
        if not batch:
            return
        started = time.perf_counter()
        try:
            try:
                self._run(batch)
            except self.errors:
                if not self._connection_lost():
                    raise
                self._close()  # a connection broken since the last batch (the database restarted): one more try
                self._run(batch)
        except self.errors as exc:
            self._close()
            for write in batch:
                write.error = exc
            if self.on_error:
                self.on_error(len(batch))
            if not any(write.waited for write in batch):
                log.error(
                    "❌ [Image Webhook] Écriture différée perdue (base indisponible): %d",
                    len(batch),
                    extra={"event": "database_unavailable"},
                )
        else:
            if self.on_commit:
                self.on_commit(len(batch), time.perf_counter() - started)
        for write in batch:
            if write.error is not None and not write.waited and not isinstance(write.error, self.errors):
                log.error(
                    "❌ [Image Webhook] Écriture différée en échec: %s",
                    type(write.error).__name__,
                    exc_info=write.error,
                    extra={"event": "error"},
                )
            write.done.set()

    def _run(self, batch: list[Write]) -> None:
        connection = self._connection or self._open()
        with self.transaction(connection) as transaction:
            if self.finish:
                self.finish.begin()
            for write in batch:
                write.result, write.error = None, None
                with self._savepoint(transaction, write):
                    write.result = write.op(transaction)
                if self.finish:
                    self.finish.settle(write.error is None)
            if self.finish:
                self.finish.flush(transaction)

    def _connection_lost(self) -> bool:
        """Whether the last error came from a connection that no longer works (psycopg: `broken`)."""
        return bool(getattr(self._connection, "broken", False) or getattr(self._connection, "closed", False))

    @contextlib.contextmanager
    def _savepoint(self, connection: Any, write: Write) -> Iterator[None]:
        """A failing write (not the database: the code or the job handler) rolls back alone."""
        connection.execute("SAVEPOINT write")
        try:
            yield
        except self.errors:
            raise
        except Exception as exc:
            connection.execute("ROLLBACK TO SAVEPOINT write")
            write.error = exc
        connection.execute("RELEASE SAVEPOINT write")

    def _open(self) -> Any:
        try:
            self._connection = self.connect()
        except self.errors:
            time.sleep(RECONNECT_PAUSE)  # a database that is down: do not spin
            raise
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None
