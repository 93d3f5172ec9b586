"""The limit of the stack with durability: a bare Flask route that commits one row per request to SQLite.

The same pragmas as the service's database (WAL, synchronous=FULL, a busy timeout, BEGIN IMMEDIATE), one
connection per thread opened in the worker after the fork, a commit per request: what a straightforward
durable receiver costs on the same gunicorn configuration. The file is DATABASE_URL's (tests.servers
points it into the server's temporary directory); the table is created at start when missing.
"""

import os
import sqlite3
import threading
from datetime import UTC, datetime

from flask import Flask, jsonify, request

PATH = os.environ["DATABASE_URL"].removeprefix("sqlite:///")
TIMEOUT = float(os.environ.get("DB_TIMEOUT", 5))  # the service's default busy timeout, seconds
TABLE = """CREATE TABLE IF NOT EXISTS bench_jobs (id INTEGER PRIMARY KEY, job_id TEXT NOT NULL UNIQUE,
status TEXT NOT NULL, body BLOB NOT NULL, created_at TEXT NOT NULL)"""
INSERT = "INSERT INTO bench_jobs (job_id, status, body, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
_local = threading.local()


def connection() -> sqlite3.Connection:
    """This thread's connection, opened on its first request (in the worker, after the fork)."""
    db = getattr(_local, "db", None)
    if db is None:
        db = _local.db = sqlite3.connect(PATH, timeout=TIMEOUT, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout = {int(TIMEOUT * 1000)}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
    return db


connection().execute(TABLE)  # at import: each worker, after the fork (no preload); IF NOT EXISTS races safely
app = Flask(__name__)


@app.post("/api/webhooks/image-completion")
def image_completion():
    raw = request.get_data()
    payload = request.get_json()
    db = connection()
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(INSERT, (payload.get("job_id"), payload.get("status"), raw, datetime.now(UTC).isoformat()))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return jsonify(success=True, job_id=payload.get("job_id"))
