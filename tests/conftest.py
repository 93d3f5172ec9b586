"""Fixtures: an app per test (isolated store, no environment leaking in), its client, sample payloads."""
import copy
import logging
import os
import uuid

import pytest

import logs
from app import create_app

# the tests read the service's records with caplog; its stderr lines would only clutter the output
logs.configure(stream=open(os.devnull, "w", encoding="utf-8"))

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


@pytest.fixture
def clock():
    return FakeClock()


def pytest_generate_tests(metafunc):
    """Every test built on `make_app` runs against both stores, unless marked memory_only (it moves
    the memory store's clock, which Redis does not follow)."""
    if "backend" in metafunc.fixturenames:
        memory_only = metafunc.definition.get_closest_marker("memory_only")
        metafunc.parametrize("backend", ["memory"] if memory_only else ["memory", "redis"], scope="function")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """One real redis-server for the session (skipped with a how-to without one, failed in CI)."""
    from redis_server import RedisServer, require_redis_server

    require_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def store_config(backend, request):
    if backend == "memory":
        return {"IDEMPOTENCE_BACKEND": "memory"}
    url = request.getfixturevalue("redis_url")
    return {"IDEMPOTENCE_BACKEND": "redis", "REDIS_URL": url, "IDEMPOTENCE_KEY_PREFIX": f"test-{uuid.uuid4().hex}:"}


@pytest.fixture
def make_app(clock, store_config):
    """Build apps from a config mapping, never from the developer's environment; stop their threads."""
    apps = []

    def make(**config):
        settings = {"APP_ENV": "development", "CLOCK": clock, **store_config, **config}
        app = create_app(settings, environ={})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["image_webhook"].stop()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def prod_client(make_app):
    return make_app(APP_ENV="production", WEBHOOK_SECRET=SECRET).test_client()


@pytest.fixture
def logs(caplog):
    """The service's log messages, captured from INFO up."""
    caplog.set_level(logging.DEBUG, logger="image_webhook")
    return caplog
