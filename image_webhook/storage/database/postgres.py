"""PostgreSQL through psycopg 3: a connection for the group-commit writer, a checked pool for the readers."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from .base import Database

T = TypeVar("T")
_NAMED = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")  # the :name parameters of the SQL written here


class PostgresDatabase(Database):
    """PostgreSQL through psycopg 3: a connection for the writer, a pool (checked on loan) for the readers."""

    dialect = "postgresql"
    # unreachable, shut down, statement timeout (QueryCanceled), disk full: all OperationalError
    errors = (psycopg.OperationalError, psycopg.InterfaceError)

    def __init__(self, url: str, *, timeout: float, pool_size: int = 8, **callbacks: Any) -> None:
        self.url = url
        self._options: dict[str, Any] = {
            "connect_timeout": max(1, round(timeout)),
            "autocommit": True,
            "row_factory": dict_row,
            "options": f"-c statement_timeout={int(timeout * 1000)} -c lock_timeout={int(timeout * 1000)}",
        }
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            timeout=timeout,
            open=False,
            check=ConnectionPool.check_connection,
            kwargs=self._options,
        )
        super().__init__(timeout=timeout, **callbacks)

    def start(self) -> Database:
        self.pool.open(wait=False)
        return super().start()

    def sql(self, text: str) -> str:
        return _postgres_sql(text)

    def close(self) -> None:
        super().close()
        self.pool.close()

    def probe(self) -> None:
        """A connection of its own: the pool waits out its reconnection backoff after a restart."""
        with psycopg.connect(self.url, **self._options) as connection:
            connection.execute("SELECT 1")

    def lease(self, name: str) -> AdvisoryLease:
        """Several hosts may share the database: a session-level advisory lock of this database."""
        return AdvisoryLease(lambda: psycopg.connect(self.url, **self._options), name)

    def _connect_writer(self) -> Any:
        return psycopg.connect(self.url, **self._options)

    @contextlib.contextmanager
    def _transaction(self, connection: Any) -> Iterator[Any]:
        with connection.transaction():
            yield connection

    def _read(self, op: Callable[[Any], T]) -> T:
        try:
            with self.pool.connection() as connection:
                return op(connection)
        except PoolTimeout:  # the pool may be waiting out its reconnection backoff while the database is back
            with psycopg.connect(self.url, **self._options) as connection:
                return op(connection)


@cache
def _postgres_sql(text: str) -> str:
    return _NAMED.sub(r"%(\1)s", text.replace("%", "%%"))


class AdvisoryLease:
    """A lease among the hosts sharing a PostgreSQL database: `pg_try_advisory_lock` on a connection of its own,
    held as long as that session lives; PostgreSQL frees it when the connection closes (the process died)."""

    def __init__(self, connect: Callable[[], Any], name: str) -> None:
        self.connect = connect
        self.key = int.from_bytes(hashlib.sha256(f"image_webhook.{name}".encode()).digest()[:8], "big", signed=True)
        self._connection: Any = None

    def held(self) -> bool:
        if self._connection is not None:
            try:
                self._connection.execute("SELECT 1")  # the session, and with it the lock, still there
                return True
            except (psycopg.OperationalError, psycopg.InterfaceError):
                self.release()  # lost with its session: another process may have it now
        connection = None
        try:
            connection = self.connect()
            if connection.execute("SELECT pg_try_advisory_lock(%s) AS held", (self.key,)).fetchone()["held"]:
                self._connection = connection
                return True
        except (psycopg.OperationalError, psycopg.InterfaceError):
            pass  # the database does not answer: no pass now
        if connection is not None:
            connection.close()
        return False

    def release(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()  # the session ends: its advisory locks with it
            self._connection = None
