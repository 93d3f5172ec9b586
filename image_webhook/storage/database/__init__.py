"""The job database: `open_database(url)` opens SQLite or PostgreSQL in the worker, after the fork."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...domain.notifications import utc_now
from ..errors import DatabaseUnavailable
from .base import Database, stored_time

__all__ = ["Database", "DatabaseUnavailable", "open_database", "stored_time", "utc_now"]


def open_database(url: str, *, timeout: float, **callbacks: Any) -> Database:
    """The Database of a SQLAlchemy-style URL (sqlite:////abs/path, postgresql://user:pw@host/db), started;
    `callbacks` (on_commit, on_error) go to its group-commit writer (the metrics)."""
    from .postgres import PostgresDatabase
    from .sqlite import SQLiteDatabase

    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SQLiteDatabase(path, timeout=timeout, **callbacks).start()
    return PostgresDatabase(url.replace("postgres://", "postgresql://", 1), timeout=timeout, **callbacks).start()
