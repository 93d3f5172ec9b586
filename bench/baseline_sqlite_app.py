"""The limit of the stack with durability: a bare Flask route that commits one row per request to SQLite.

The same pragmas as the service's database (WAL, synchronous=FULL, a busy timeout, BEGIN IMMEDIATE), one
connection per thread opened in the worker after the fork, a commit per request: what a straightforward
durable receiver costs on the same gunicorn configuration. The file is DATABASE_URL's (tests.servers
points it into the server's temporary directory); the table is created at start when missing.
"""

from datetime import UTC, datetime

from flask import Flask, jsonify, request

from bench.bare_sqlite import connection

TABLE = """CREATE TABLE IF NOT EXISTS bench_jobs (id INTEGER PRIMARY KEY, job_id TEXT NOT NULL UNIQUE,
status TEXT NOT NULL, body BLOB NOT NULL, created_at TEXT NOT NULL)"""
INSERT = "INSERT INTO bench_jobs (job_id, status, body, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"


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
