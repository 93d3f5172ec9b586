"""SQLite: WAL, synchronous=FULL, a busy timeout, writes in BEGIN IMMEDIATE, a connection per thread."""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO, TypeVar

from .base import Database

T = TypeVar("T")


class SQLiteDatabase(Database):
    """A SQLite file: WAL, synchronous=FULL (a commit survives a power cut), a busy timeout, writes in
    BEGIN IMMEDIATE; one connection per thread, opened in the thread that uses it."""

    dialect = "sqlite"
    errors = (sqlite3.OperationalError,)  # locked past the busy timeout, read-only, disk full, I/O error

    def __init__(self, path: str, *, timeout: float, **callbacks: Any) -> None:
        self.path = path
        self._local = threading.local()
        self._turns: TextIO | None = None
        super().__init__(timeout=timeout, **callbacks)

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """One writer of the machine at a time, queued on a lock file in the kernel. Without it the workers'
        writers collide on SQLite's lock and retry from its busy handler, which sleeps up to 100 ms a try
        (BENCHMARKS.md: the p99); with it the next writer starts as soon as the lock is free, and the writes
        queued meanwhile join its batch."""
        if self._turns is None:  # opened by the writer thread, after the fork
            self._turns = open(self.path + ".lock", "a")  # noqa: SIM115 (kept for the process's life)
        with _holding(self._turns):
            yield

    def connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=True)
        connection.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.row_factory = sqlite3.Row
        return connection

    def optimize(self) -> None:
        """Without statistics SQLite may pick the status index for an organisation's jobs (docs/queries.md).
        Outside the group commit's BEGIN IMMEDIATE, on a connection of its own, in the writers' turn (a lock
        file descriptor of its own: the writer thread's would let both in), each table's ANALYZE bounded
        to 400 rows looked at: the write lock is held for milliseconds, never for a scan of the tables."""
        with (
            open(self.path + ".lock", "a") as turns,
            contextlib.closing(self.connect()) as connection,
            _holding(turns),
        ):
            connection.execute("PRAGMA analysis_limit = 400")
            connection.execute("PRAGMA optimize")

    def checkpoint(self) -> None:
        """A PASSIVE checkpoint on this thread's read connection, outside the writers' turn: the WAL's pages
        copied back while the writers go on (a commit past 1,000 pages of WAL checkpoints inside its turn,
        every writer of the machine waiting: after a batch of deletions, tens of milliseconds)."""
        self.read(lambda connection: connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())

    def lease(self, name: str) -> FileLease:
        """One machine by definition: a lock file beside the database (`jobs.sqlite3.retention.lock`)."""
        return FileLease(f"{self.path}.{name}.lock")

    def close(self) -> None:
        super().close()  # the writer thread has ended: its lock file can go
        if self._turns is not None:
            self._turns.close()

    def _connect_writer(self) -> sqlite3.Connection:
        return self.connect()

    def _transaction(self, connection: sqlite3.Connection) -> Any:
        return _SQLiteTransaction(connection)

    def _read(self, op: Callable[[Any], T]) -> T:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self.connect()
        return op(connection)


@contextlib.contextmanager
def _holding(turns: TextIO) -> Iterator[None]:
    """The machine's writers' turn, on the lock file `turns` (a descriptor of its own: flock counts those)."""
    fcntl.flock(turns, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(turns, fcntl.LOCK_UN)


class FileLease:
    """A lease on one machine: a non-blocking exclusive `flock` on a lock file, held while its descriptor stays
    open; the kernel frees it when the process dies."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: TextIO | None = None

    def held(self) -> bool:
        if self._file is not None:
            return True
        file = open(self.path, "a")  # noqa: SIM115 (kept open while the lease is held)
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another process holds it
            file.close()
            return False
        self._file = file
        return True

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor frees its flock
            self._file = None


class _SQLiteTransaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): the write lock is taken at once, never upgraded."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind: object, *rest: object) -> None:
        self.connection.execute("ROLLBACK" if kind else "COMMIT")
