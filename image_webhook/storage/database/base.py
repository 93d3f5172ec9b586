"""A database of jobs and deliveries: the group-commit writer for writes, connections for reads."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from ...observability.logs import LOGGER
from ..errors import DatabaseUnavailable
from .tally import Tally
from .writer import GroupCommitWriter

log = logging.getLogger(LOGGER)
T = TypeVar("T")


class Lease(Protocol):
    """Who among the service's processes does a chore (the retention pass): the one holding the lease, until it
    gives it up or dies (the kernel, or PostgreSQL, then frees it for the next one to try)."""

    def held(self) -> bool:
        """Whether this process holds the lease, taking it if it is free; never waits."""
        ...

    def release(self) -> None:
        """Give the lease up, if held."""
        ...


class _Everyone:
    """The lease of a database no other process shares: always held."""

    def held(self) -> bool:
        return True

    def release(self) -> None:
        pass


class Database:
    """Connections to one database: a group-commit writer thread, and read connections for the readers.

    SQL is written once with `:name` parameters; `sql()` gives the driver's form. Writes go through
    `write()` (wait for the commit) or `write_later()` (queued in the same group commits, not awaited).
    """

    dialect = ""
    errors: tuple[type[BaseException], ...] = ()  # the driver's errors that mean "unavailable"

    def __init__(
        self,
        *,
        timeout: float,
        on_commit: Callable[[int, float], object] | None = None,
        on_error: Callable[[int], object] | None = None,
    ) -> None:
        self.timeout = timeout
        self.tally = Tally(self.dialect, self.sql)  # the rollups' changes of the writer's transaction (rollups.py)
        self.writer = GroupCommitWriter(
            self._connect_writer,
            self._transaction,
            errors=self.errors,
            timeout=timeout,
            turn=self.turn,
            on_commit=on_commit,
            on_error=on_error,
            finish=self.tally,
        )
        self._unavailable: tuple[type[BaseException], ...] = (*self.errors, TimeoutError)  # write(): 503

    def start(self) -> Database:
        self.writer.start()
        return self

    def write(self, op: Callable[[Any], T]) -> T:
        """Run `op(connection)` in the next group commit and return its result once committed; 503 when the
        database does not answer within the timeout (the op then never runs, or its transaction rolls back)."""
        try:
            return self.writer.submit(op)
        except self._unavailable:
            log.error("❌ [Image Webhook] Base de données indisponible", extra={"event": "database_unavailable"})
            raise DatabaseUnavailable() from None

    def write_later(self, op: Callable[[Any], object]) -> None:
        """Queue `op` for the next group commit without waiting (records whose loss is harmless)."""
        self.writer.submit_later(op)

    def read(self, op: Callable[[Any], T]) -> T:
        """Run `op(connection)` on a read connection; 503 when the database does not answer."""
        try:
            return self._read(op)
        except self.errors:
            raise DatabaseUnavailable() from None

    def turn(self) -> contextlib.AbstractContextManager[object]:
        """Where the machine's writers must take turns (SQLite), the writer thread waits for its turn here."""
        return contextlib.nullcontext()

    def not_ready(self) -> str | None:
        """Why the database cannot take the service's writes now, or None: it must answer a read and a write
        (a locked SQLite still answers reads); the write is an empty transaction in the next group commit."""
        unavailable: tuple[type[BaseException], ...] = (DatabaseUnavailable, *self.errors)
        try:
            self.probe()
            self.write(lambda connection: None)
        except unavailable:
            return "la base de données ne répond pas"
        return None

    def probe(self) -> None:
        self.read(lambda connection: connection.execute("SELECT 1").fetchone())

    def optimize(self) -> None:
        """Refresh the planner's statistics where the database does not do it itself."""

    def checkpoint(self) -> None:
        """Copy what the write-ahead log holds into the database, without blocking a writer, where a commit
        would otherwise do it (SQLite); a bulk deletion calls it between its batches."""

    def lease(self, name: str) -> Lease:
        """The lease `name` of the processes sharing this database (see Lease)."""
        return _Everyone()

    def sql(self, text: str) -> str:
        return text

    def close(self) -> None:
        self.writer.stop()

    def _connect_writer(self) -> Any:
        raise NotImplementedError

    def _transaction(self, connection: Any) -> Any:
        raise NotImplementedError

    def _read(self, op: Callable[[Any], T]) -> T:
        raise NotImplementedError


def stored_time(value: Any) -> Any:
    """A stored time as utc_now() writes it: SQLite gives that text back, PostgreSQL a datetime in its
    session's time zone."""
    return value.astimezone(UTC).isoformat(timespec="microseconds") if isinstance(value, datetime) else value
