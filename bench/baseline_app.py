"""The limit of the stack: a bare Flask route that only parses the JSON body and answers small JSON.

Run under the project's own gunicorn.conf.py, so only the application differs from the service.
"""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/api/webhooks/image-completion")
def image_completion():
    payload = request.get_json()
    return jsonify(success=True, job_id=payload.get("job_id"))
