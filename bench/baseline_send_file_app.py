"""The limit of serving a stored image: a bare Flask route answering one file with send_file (BENCH_FILE)."""

import os

from flask import Flask, send_file

app = Flask(__name__)
FILE = os.environ["BENCH_FILE"]


@app.get("/api/jobs/<job_id>/images/<int:position>")
def image(job_id, position):
    return send_file(FILE, mimetype="image/png", conditional=True, etag=True, max_age=None)
