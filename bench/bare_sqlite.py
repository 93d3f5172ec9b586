"""The bare SQLite routes' connection: the service's pragmas, one connection per thread, opened after the fork."""

import os
import sqlite3
import threading

PATH = os.environ["DATABASE_URL"].removeprefix("sqlite:///")
TIMEOUT = float(os.environ.get("DB_TIMEOUT", 5))  # the service's default busy timeout, seconds
_local = threading.local()


def connection() -> sqlite3.Connection:
    """This thread's connection, opened on its first request (in the worker, after the fork): WAL,
    synchronous=FULL, a busy timeout, foreign keys on, rows by column name, as image_webhook.storage.database.sqlite."""
    db = getattr(_local, "db", None)
    if db is None:
        db = _local.db = sqlite3.connect(PATH, timeout=TIMEOUT, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout = {int(TIMEOUT * 1000)}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        db.row_factory = sqlite3.Row
    return db
