"""SQLite: WAL, synchronous=FULL, a busy timeout, writes in BEGIN IMMEDIATE, a connection per thread."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from . import Database

T = TypeVar("T")


class SQLiteDatabase(Database):
    """A SQLite file: WAL, synchronous=FULL (a commit survives a power cut), a busy timeout, writes in
    BEGIN IMMEDIATE; one connection per thread, opened in the thread that uses it."""

    dialect = "sqlite"
    errors = (sqlite3.OperationalError,)  # locked past the busy timeout, read-only, disk full, I/O error

    def __init__(self, path: str, *, timeout: float) -> None:
        self.path = path
        self._local = threading.local()
        super().__init__(timeout=timeout)

    def connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=True)
        connection.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.row_factory = sqlite3.Row
        return connection

    def _connect_writer(self) -> sqlite3.Connection:
        return self.connect()

    def _transaction(self, connection: sqlite3.Connection) -> Any:
        return _SQLiteTransaction(connection)

    def _read(self, op: Callable[[Any], T]) -> T:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self.connect()
        return op(connection)


class _SQLiteTransaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): the write lock is taken at once, never upgraded."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind: object, *rest: object) -> None:
        self.connection.execute("ROLLBACK" if kind else "COMMIT")
