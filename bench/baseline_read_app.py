"""The limit of the stack for a read: a bare Flask route that reads one job's row from SQLite and answers it.

The same driver and pragmas as the service's database (sqlite3, WAL, synchronous=FULL, a busy timeout), one
connection per thread opened in the thread that uses it, the same columns decoded the same way (images and
metadata from their JSON text) and the same JSON options: what a straightforward read costs on the same
gunicorn configuration. The file is DATABASE_URL's, migrated by the service (bench/api.py starts it first).
"""

import json

from flask import Flask, jsonify

from bench.bare_sqlite import connection

FIND = """SELECT job_id, status, progress, message, prompt, images, metadata, error_message, user_id,
organization_id, created_at, updated_at, completed_at, processing_time_ms, deliveries, duplicates
FROM jobs WHERE job_id = ?"""


app = Flask(__name__)
app.json.ensure_ascii = False  # the service's JSON options: UTF-8, keys in column order
app.json.sort_keys = False


@app.get("/api/jobs/<job_id>")
def show(job_id):
    row = connection().execute(FIND, (job_id,)).fetchone()
    if row is None:
        return jsonify(error="Not Found"), 404
    job = dict(row)
    for column in ("images", "metadata"):
        if isinstance(job[column], str):
            job[column] = json.loads(job[column])
    return jsonify(job)
