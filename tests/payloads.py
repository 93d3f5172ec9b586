"""The spec's sample payloads and the helpers that vary them, shared by the tests, bench and soak."""

import copy

URL = "/api/webhooks/image-completion"
SECRET = "test-secret-0123456789abcdefghijklmnopqrstuvwxyz"

# the spec's own sample payloads
COMPLETED = {
    "job_id": "e0145eaa-7430-4845-bf8e-df056076db14",
    "status": "completed",
    "timestamp": "2025-10-21T16:45:00Z",
    "environment": "development",
    "data": {
        "job_id": "e0145eaa-7430-4845-bf8e-df056076db14",
        "images": [
            {
                "file_path": "./generated_images/e0145eaa.../image_1.png",
                "url": "http://localhost:9006/generated_images/e0145eaa.../image_1.png",
                "description": "Un chat astronaute dans l'espace",
                "format": "PNG",
                "size_bytes": 2048576,
                "dimensions": "1024x1024",
            }
        ],
        "metadata": {
            "model_name": "gemini-2.0-flash-exp",
            "version": "latest",
            "generation_time_seconds": 12.5,
            "input_tokens": 45,
            "output_size_bytes": 2048576,
            "timestamp": "2025-10-21T16:45:00Z",
        },
        "status": "COMPLETED",
        "generated_at": "2025-10-21T16:45:00Z",
    },
}
FAILED = {
    "job_id": "e0145eaa-7430-4845-bf8e-df056076db14",
    "status": "failed",
    "timestamp": "2025-10-21T16:45:00Z",
    "environment": "development",
    "error_message": "Clé API Google invalide",
    "message": "Échec de la génération d'images",
}
PROGRESS = {
    "job_id": "e0145eaa-7430-4845-bf8e-df056076db14",
    "status": "generating",
    "timestamp": "2025-10-21T16:44:45Z",
    "progress": 50,
    "message": "Génération en cours...",
}


class FakeClock:
    """A monotonic clock the tests move by hand."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def payload(template, job_id=None, **changes):
    """A deep copy of `template` with another job id (also in data.job_id) and top-level changes."""
    body = copy.deepcopy(template)
    if job_id is not None:
        body["job_id"] = job_id
        if isinstance(body.get("data"), dict) and "job_id" in body["data"]:
            body["data"]["job_id"] = job_id
    body.update(changes)
    return body
