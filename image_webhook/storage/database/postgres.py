"""PostgreSQL through psycopg 3: a connection for the group-commit writer, a checked pool for the readers."""

from __future__ import annotations

import contextlib
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
